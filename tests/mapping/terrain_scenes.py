"""Synthetic terrain for the terrain tests and benchmark: DEMs with hills and bowls, and SAR scenes on
the same grid whose dark (water-like, VV < -15 dB) pixels are placed where we want them."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32633"
ORIGIN = (400000.0, 5300000.0)
PIXEL = 10.0
LAND_DB, DARK_DB = -8.0, -22.0


def transform(origin=ORIGIN, pixel=PIXEL):
    return from_origin(origin[0], origin[1], pixel, pixel)


def hill(shape, centre, height_m: float, sigma_m: float, base_m: float = 50.0, pixel=PIXEL) -> np.ndarray:
    """A Gaussian hill on flat ground (steep enough to cast a radar shadow when height/sigma is large)."""
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    d2 = ((r - centre[0]) ** 2 + (c - centre[1]) ** 2) * pixel ** 2
    return (base_m + height_m * np.exp(-d2 / (2 * sigma_m ** 2))).astype(np.float32)


def bowl(shape, centre, bottom_m: float, slope: float, pixel=PIXEL) -> np.ndarray:
    """A cone-shaped depression: ground = bottom + slope * distance from the centre (metres)."""
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return (bottom_m + slope * np.hypot(r - centre[0], c - centre[1]) * pixel).astype(np.float32)


def brute_force_shadow(dem: np.ndarray, incidence_deg: float, pixel=PIXEL, sensor: str = "west") -> np.ndarray:
    """Reference shadow for a sensor far to the west (or east), looking along rows: pixel (r, c) is dark if
    any pixel between it and the sensor rises above its line of sight (pairwise, no running maximum)."""
    z = dem.astype(np.float64) if sensor == "west" else dem[:, ::-1].astype(np.float64)
    cot = 1.0 / math.tan(math.radians(incidence_deg))
    out = np.zeros(z.shape, bool)
    for c in range(1, z.shape[1]):
        dist = (c - np.arange(c)) * pixel
        out[:, c] = (z[:, :c] - z[:, c:c + 1] - dist * cot > 0.01).any(axis=1)
    return out if sensor == "west" else out[:, ::-1]


def write_raster(path: Path, data: np.ndarray, *, nodata=None, tags: dict | None = None, origin=ORIGIN,
                 pixel=PIXEL, crs=CRS) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform(origin, pixel), nodata=nodata) as ds:
        ds.write(data, 1)
        if tags:
            ds.update_tags(**tags)
    return path


def write_sar(path: Path, dark: np.ndarray, *, tags: dict | None = None, origin=ORIGIN, pixel=PIXEL) -> Path:
    """Two-band VV/VH dB scene: DARK_DB where `dark`, LAND_DB elsewhere (VH 6 dB lower)."""
    vv = np.where(dark, DARK_DB, LAND_DB).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=vv.shape[1], height=vv.shape[0], count=2,
                       dtype="float32", crs=CRS, transform=transform(origin, pixel)) as ds:
        ds.write(np.stack([vv, vv - 6.0]))
        ds.set_band_description(1, "VV")
        ds.set_band_description(2, "VH")
        if tags:
            ds.update_tags(**tags)
    return path
