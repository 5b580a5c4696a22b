"""Reading one raster or picture file, turning every failure into a DataError that names the file."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from .sample import GeoRef


def read_geotiff(path: Path, *, bands: int | None = None) -> tuple[np.ndarray, GeoRef | None, tuple]:
    """(array (C,H,W), georef or None, band descriptions). `bands`: the band count required."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if bands is not None and src.count != bands:
                    raise DataError(f"{path}: has {src.count} band(s), expected {bands}")
                data = src.read()
                georef = GeoRef.from_rasterio(src) if src.crs is not None else None
                return data, georef, tuple(src.descriptions)
    except RasterioError as exc:  # unreadable, truncated or corrupt: GDAL's text is the useful part
        raise DataError(f"{path}: unreadable GeoTIFF ({str(exc).splitlines()[0][:200]})") from None


def read_picture(path: Path) -> np.ndarray:
    """An 8-bit PNG/JPG as (H,W) for gray or (H,W,C) for colour; palette and 16-bit images are converted."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode in ("I;16", "I", "F"):
                raise DataError(f"{path}: {im.mode} pictures are not 8-bit; expected an 8-bit PNG/JPG")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable or truncated picture ({exc})") from None
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: pixel type {arr.dtype}, expected 8-bit")
    if arr.ndim == 3 and arr.shape[2] == 4:  # alpha carries no backscatter
        arr = arr[..., :3]
    return arr


def gray(arr: np.ndarray, path: Path) -> np.ndarray:
    """One channel of a picture that should be gray; an RGB copy of gray (ETCI's PNGs) is fine."""
    if arr.ndim == 2:
        return arr
    first = arr[..., 0]
    if not all(np.array_equal(first, arr[..., c]) for c in range(1, arr.shape[2])):
        raise DataError(f"{path}: colour picture where a single-band image was expected")
    return first


def check_same_size(shape_a: tuple, path_a: Path, shape_b: tuple, path_b: Path) -> None:
    if tuple(shape_a[-2:]) != tuple(shape_b[-2:]):
        raise DataError(f"{path_b}: size {shape_b[-2]}x{shape_b[-1]} does not match "
                        f"{Path(path_a).name} ({shape_a[-2]}x{shape_a[-1]})")
