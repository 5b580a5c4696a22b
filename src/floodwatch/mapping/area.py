"""True ground area of raster pixels, in any CRS, without holding the raster.

A pixel's ground area varies across a scene (with latitude in EPSG:4326, with the scale factor in UTM),
so pixels are counted per block of BLOCK x BLOCK, and each block's area is measured by projecting its
corners into a Lambert azimuthal equal-area projection centred on the scene, where planar area equals
area on the WGS84 ellipsoid.
"""
from __future__ import annotations

import numpy as np
from pyproj import CRS, Transformer

BLOCK = 64


def pixel_to_crs(transform, col, row):
    a, b, c, d, e, f = tuple(transform)[:6]
    return a * col + b * row + c, d * col + e * row + f


def equal_area_crs(crs, transform, height: int, width: int) -> CRS:
    lon, lat = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True).transform(
        *pixel_to_crs(transform, width / 2, height / 2))
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.8f} +lon_0={lon:.8f} +ellps=WGS84 +units=m +no_defs")


class AreaCounter:
    """Counts pixels of named categories per block; `km2(name)` turns counts into ground area."""

    def __init__(self, crs, transform, height: int, width: int, block: int = BLOCK):
        self.height, self.width, self.block = height, width, block
        rows = np.unique(np.r_[np.arange(0, height, block), height])
        cols = np.unique(np.r_[np.arange(0, width, block), width])
        self._col_starts = cols[:-1]
        cc, rr = np.meshgrid(cols.astype(np.float64), rows.astype(np.float64))
        x, y = pixel_to_crs(transform, cc, rr)
        to_ea = Transformer.from_crs(CRS.from_user_input(crs), equal_area_crs(crs, transform, height, width),
                                     always_xy=True)
        ex, ey = to_ea.transform(x, y)
        # Shoelace on each cell's four corners (in equal-area metres).
        area = 0.5 * np.abs((ex[:-1, :-1] * ey[:-1, 1:] - ex[:-1, 1:] * ey[:-1, :-1])
                            + (ex[:-1, 1:] * ey[1:, 1:] - ex[1:, 1:] * ey[:-1, 1:])
                            + (ex[1:, 1:] * ey[1:, :-1] - ex[1:, :-1] * ey[1:, 1:])
                            + (ex[1:, :-1] * ey[:-1, :-1] - ex[:-1, :-1] * ey[1:, :-1]))
        npix = np.outer(np.diff(rows), np.diff(cols))
        #: m² per pixel in each block
        self.pixel_m2 = area / npix
        self.counts: dict[str, np.ndarray] = {}

    def add(self, name: str, row0: int, mask: np.ndarray, col0: int = 0) -> None:
        """Count the True pixels of `mask` (a window of the raster at row0, col0) under `name`."""
        counts = self.counts.setdefault(name, np.zeros(self.pixel_m2.shape, np.int64))
        row1, col1 = row0 + mask.shape[0], col0 + mask.shape[1]
        if mask.shape[1] == 0:
            return
        # block columns the window touches, and where each starts inside the window
        b0, b1 = col0 // self.block, (col1 - 1) // self.block + 1
        starts = np.maximum(self._col_starts[b0:b1] - col0, 0)
        for b in range(row0 // self.block, (row1 - 1) // self.block + 1):
            a, z = max(row0, b * self.block), min(row1, (b + 1) * self.block)
            colsum = mask[a - row0:z - row0].sum(axis=0, dtype=np.int64)
            counts[b, b0:b1] += np.add.reduceat(colsum, starts)

    def km2(self, name: str) -> float:
        c = self.counts.get(name)
        return 0.0 if c is None else float((c * self.pixel_m2).sum() / 1e6)

    def pixels(self, name: str) -> int:
        c = self.counts.get(name)
        return 0 if c is None else int(c.sum())
