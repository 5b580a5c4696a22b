"""Chip files in, water masks out, through a Triton server (what `floodwatch client` runs)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.files import missing_db
from ..data.sample import IGNORE_INDEX, NOT_WATER, WATER
from ..errors import DataError
from ..io import atomic_path, check_output_dir
from .client import FloodClient


def read_chip(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A GeoTIFF chip in dB (bands first) -> (image, valid, rasterio profile)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            image = src.read().astype(np.float32)
            nodata = src.nodata
            profile = src.profile.copy()
    except rasterio.errors.RasterioError as exc:
        raise DataError(f"{path}: not a readable raster ({exc})") from None
    valid = ~missing_db(image, nodata).any(axis=0)
    return image, valid, profile


def write_mask(path: Path, mask: np.ndarray, profile: dict) -> Path:
    import rasterio

    out = {k: v for k, v in profile.items() if k in ("crs", "transform", "width", "height")}
    out.update(driver="GTiff", count=1, dtype="uint8", nodata=IGNORE_INDEX, compress="deflate")
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **out) as dst:
            dst.write(mask[None])
    return path


def write_preview(path: Path, mask: np.ndarray) -> Path:
    """Blue water, light grey land, black nodata: a mask is quicker seen than read."""
    from PIL import Image

    colours = np.zeros((256, 3), np.uint8)
    colours[NOT_WATER], colours[WATER] = (220, 220, 210), (30, 90, 200)
    with atomic_path(path) as tmp:
        Image.fromarray(colours[mask]).save(tmp, format="PNG")
    return path


def classify_rasters(client: FloodClient, inputs: Iterable[str | Path], out_dir: str | Path, *,
                     threshold: float = 0.5, preview: bool = True, progress: bool = True) -> list[Path]:
    """Each input chip -> `<out_dir>/<stem>_mask.tif` (uint8: 1 water, 0 not, 255 nodata) (+ `_mask.png`)."""
    from rich.progress import track

    inputs, out_dir = [Path(p) for p in inputs], check_output_dir(out_dir)
    for p in inputs:
        if not p.is_file():
            raise DataError(f"{p}: input chip not found")
    written = []
    for path in track(inputs, description="classifying", disable=not progress):
        image, valid, profile = read_chip(path)
        if image.shape[0] != len(client.preprocessing.bands):
            raise DataError(f"{path}: {image.shape[0]} bands, but model '{client.model_name}' takes "
                            f"{len(client.preprocessing.bands)} ({', '.join(client.preprocessing.bands)})")
        prob = client.predict_db(image[None], valid[None])[0]
        mask = np.where(prob >= threshold, WATER, NOT_WATER).astype(np.uint8)
        mask[~valid] = IGNORE_INDEX
        written.append(write_mask(out_dir / f"{path.stem}_mask.tif", mask, profile))
        if preview:
            write_preview(out_dir / f"{path.stem}_mask.png", mask)
    return written
