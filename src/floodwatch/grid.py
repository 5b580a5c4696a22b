"""A target raster grid and the windowed warp onto it: shared by catalog scenes (`acquisition/`) and terrain
layers (`mapping/terrain_sources.py`), so that neither stage imports the other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A target raster grid, where windowed reads land (scenes from a catalog, terrain layers)."""

    crs: Any
    transform: Any  # affine.Affine, north-up
    height: int
    width: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        xs = [t.c, t.c + t.a * self.width]
        ys = [t.f, t.f + t.e * self.height]
        return min(xs), min(ys), max(xs), max(ys)


def warp_to_grid(src: Any, grid: Grid, band: int = 1, *, resampling: Any = None,
                 src_nodata: float | None = None) -> np.ndarray:
    """Band `band` of an open rasterio dataset warped onto `grid` as float32, NaN where the source has no data
    (`src_nodata`, default the file's). Only the blocks under the grid are read. resampling: default nearest."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                   resampling=Resampling.nearest if resampling is None else resampling,
                   src_nodata=src.nodata if src_nodata is None else src_nodata, nodata=np.nan,
                   dtype="float32") as vrt:
        return vrt.read(band).astype(np.float32, copy=False)
