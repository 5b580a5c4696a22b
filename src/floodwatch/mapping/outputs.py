"""Raster outputs: strip-wise GeoTIFF writers, the COG conversion, quicklook."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

MASK_NODATA = 255
PROB_NODATA_U8 = 255
#: value of detected water that lies inside the permanent-water reference (only with water_mask)
PERMANENT = 2
#: value of detected water under a terrain exclusion flag (HAND, slope, shadow, layover, user mask)
EXCLUDED = 3


def open_strip_writer(path: Path, ref, dtype: str, nodata: float):
    """A tiled GeoTIFF on the scene's grid, written strip by strip and converted to a COG at the end."""
    return rasterio.open(path, "w", driver="GTiff", width=ref.width, height=ref.height, count=1, dtype=dtype,
                         crs=ref.crs, transform=ref.transform, nodata=nodata, tiled=True, blockxsize=256,
                         blockysize=256, compress="deflate", zlevel=1, bigtiff="if_safer")


def write_rows(ds, row0: int, data: np.ndarray) -> None:
    ds.write(data, 1, window=Window(0, row0, data.shape[1], data.shape[0]))


def to_cog(src: Path, dst: Path, *, resampling: str, description: str) -> None:
    """Copy a finished tiled GeoTIFF to a Cloud-Optimised GeoTIFF with internal overviews."""
    with rasterio.open(src, "r+") as ds:
        ds.set_band_description(1, description)
    rasterio.shutil.copy(src, dst, driver="COG", compress="deflate", blocksize=512, overview_resampling=resampling,
                         bigtiff="if_safer")
    src.unlink()


class Quicklook:
    """Keeps every f-th row/column of the SAR backdrop and the mask; renders a PNG at the end."""

    def __init__(self, height: int, width: int, max_side: int = 1200):
        self.step = max(1, math.ceil(max(height, width) / max_side))
        self.sar, self.mask = [], []

    def add(self, row0: int, vv_db: np.ndarray, mask: np.ndarray) -> None:
        first = (-row0) % self.step
        self.sar.append(vv_db[first::self.step, ::self.step].copy())
        self.mask.append(mask[first::self.step, ::self.step].copy())

    def save(self, path: Path, title: str) -> None:
        """PNG: SAR backdrop (VV, -25..0 dB) with flood red, permanent water blue, excluded water yellow,
        no data black."""
        from PIL import Image, ImageDraw

        sar = np.concatenate(self.sar) if self.sar else np.zeros((1, 1), np.float32)
        mask = np.concatenate(self.mask) if self.mask else np.full((1, 1), MASK_NODATA, np.uint8)
        grey = np.clip((np.nan_to_num(sar, nan=-25.0) + 25.0) / 25.0, 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        legend = {"flood": (1, (242, 38, 25)), "permanent water": (PERMANENT, (25, 90, 242)),
                  "excluded (terrain)": (EXCLUDED, (245, 200, 40)),
                  "no data": (MASK_NODATA, (0, 0, 0))}
        for value, colour in legend.values():
            sel = mask == value
            alpha = 1.0 if value == MASK_NODATA else 0.65
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * np.array(colour) / 255.0
        h, w = grey.shape
        header = 40
        canvas = Image.new("RGB", (max(w, 480), h + header), (255, 255, 255))
        canvas.paste(Image.fromarray((rgb * 255).astype(np.uint8)), (0, header))
        draw = ImageDraw.Draw(canvas)
        draw.text((6, 4), title, fill=(0, 0, 0))
        x = 6
        for name, (_, colour) in legend.items():
            draw.rectangle((x, 22, x + 12, 34), fill=colour, outline=(0, 0, 0))
            draw.text((x + 16, 22), name, fill=(0, 0, 0))
            x += 22 + 7 * len(name)
        canvas.save(path)
