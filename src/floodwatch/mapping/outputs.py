"""Raster outputs: window-wise GeoTIFF writers, overviews, the COG conversion (the quicklook: `quicklook.py`)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import FloodwatchError

MASK_NODATA = 255
PROB_NODATA_U8 = 255
#: value of detected water that lies inside the permanent-water reference (only with water_mask)
PERMANENT = 2
#: value of detected water under a terrain exclusion flag (HAND, slope, shadow, layover, user mask)
EXCLUDED = 3


def open_strip_writer(path: Path, ref, dtype: str, nodata: float, block: tuple[int, int] = (256, 256)):
    """A tiled GeoTIFF on the scene's grid, written window by window and converted to a COG at the end.
    block: (height, width) of its tiles; `aligned_block` picks tiles that the windows fill whole."""
    return rasterio.open(path, "w", driver="GTiff", width=ref.width, height=ref.height, count=1, dtype=dtype,
                         crs=ref.crs, transform=ref.transform, nodata=nodata, tiled=True, blockxsize=block[1],
                         blockysize=block[0], compress="deflate", zlevel=1, bigtiff="if_safer")


def aligned_block(row_step: int, col_step: int) -> tuple[int, int]:
    """(height, width) of GeoTIFF tiles that windows starting at multiples of row_step and col_step fill
    whole: the largest multiple of 16 (TIFF's rule) from 128 to 512 that divides each step, else 256 (smaller
    tiles would mean tens of thousands of them in a large scene). A window that fills a tile only in part
    makes GDAL compress it, read it back and compress it again when the next window fills the rest."""
    def side(step: int) -> int:
        return next((s for s in range(512, 127, -16) if step % s == 0), 256)
    return side(row_step), side(col_step)


def write_window(ds, row0: int, col0: int, data: np.ndarray) -> None:
    ds.write(data, 1, window=Window(col0, row0, data.shape[1], data.shape[0]))


def overview_factors(height: int, width: int, block: int = 512) -> list[int]:
    """2, 4, ... until the smallest overview fits in one block (what GDAL's COG driver builds)."""
    factors, f = [], 2
    while max(height, width) / (f // 2) > block:
        factors.append(f)
        f *= 2
    return factors


def build_overviews(src: Path, *, resampling: str, description: str) -> None:
    """Internal overviews in the finished tiled GeoTIFF, so the COG copy only rearranges them."""
    with rasterio.open(src, "r+") as ds:
        ds.set_band_description(1, description)
        factors = overview_factors(ds.height, ds.width)
        if factors:
            ds.build_overviews(factors, Resampling[resampling])


#: deflate level of the COGs (GDAL's default)
DEFLATE_LEVEL = 6
#: deflate level of the probability COG: 3 takes a third of level 6's CPU for a 12 % larger file (real-size
#: scene: 6.9 -> 2.2 s, 42 -> 47 MB; docs/benchmarks.md, tenth session). Masks keep 6: they are small either way.
PROBABILITY_DEFLATE_LEVEL = 3


def to_cog(src: Path, dst: Path, level: int = DEFLATE_LEVEL) -> None:
    """Copy a tiled GeoTIFF with its overviews (`build_overviews`) to a Cloud-Optimised GeoTIFF (deflate `level`)."""
    rasterio.shutil.copy(src, dst, driver="COG", compress="deflate", level=level, blocksize=512,
                         overviews="FORCE_USE_EXISTING", bigtiff="if_safer")
    src.unlink()


def finish_raster(part: str, final: str, resampling: str, description: str, gdal_env: dict,
                  level: int = DEFLATE_LEVEL) -> dict[str, float]:
    """Overviews into the finished strip GeoTIFF `part`, then its COG at `final` with deflate `level` (`part` is
    removed); returns the seconds of each stage."""
    with rasterio.Env(**gdal_env):
        t0 = time.perf_counter()
        build_overviews(Path(part), resampling=resampling, description=description)
        t1 = time.perf_counter()
        to_cog(Path(part), Path(final), level)
    return {"overviews": t1 - t0, "cog": time.perf_counter() - t1}


def finish_raster_in_process(part: str, final: str, resampling: str, description: str, gdal_env: dict,
                             level: int = DEFLATE_LEVEL) -> dict[str, float]:
    """`finish_raster` in a fresh Python process (the caller's thread only waits), so that GDAL's copy does
    not slow what this process does meanwhile. A plain subprocess, not multiprocessing: it never imports the
    caller's script again and runs inside daemonic Dask workers too. Raises FloodwatchError with the helper's
    message if it fails."""
    job = json.dumps({"part": part, "final": final, "resampling": resampling, "description": description,
                      "gdal_env": gdal_env, "level": level})
    done = subprocess.run([sys.executable, "-c", "from floodwatch.mapping.outputs import _helper; _helper()"],
                          input=job, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise FloodwatchError(f"{final}: the COG helper process failed: {lines[-1]}")
    return json.loads(done.stdout)


def _helper() -> None:
    """The helper process of `finish_raster_in_process`: one job as JSON on stdin, its seconds on stdout."""
    job = json.loads(sys.stdin.read())
    try:
        seconds = finish_raster(**job)
    except Exception as exc:  # one line for the parent, which raises it
        print(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(seconds))
