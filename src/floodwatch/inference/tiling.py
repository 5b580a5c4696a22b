"""Sliding-window inference over rasters of any size: the tile grid, the blending weight, and a
strip accumulator that keeps only one row of tiles in memory.

A scene is cut into `tile` x `tile` windows that overlap by `overlap` pixels. Each tile's water
probability is weighted by a window that is 1 in the middle and falls off with a raised cosine over
the overlap, and every pixel's result is the weighted sum divided by the summed weights, so a model
that predicts a constant gives exactly that constant everywhere (no seams).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import FloodwatchError

#: Smallest weight at a tile's outer edge: >0 so scene-border pixels, covered by one tile only, still
#: get a value, and small so a neighbour's better-informed centre dominates inside the scene.
EDGE_WEIGHT = 1e-3


def tile_origins(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: stride tile-overlap, the last tile shifted back so it ends at the
    edge (keeping real context instead of padding); a scene smaller than a tile gets one padded tile."""
    check_tiling(tile, overlap)
    if size <= tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((size - tile) / stride) + 1
    origins = [i * stride for i in range(n)]
    origins[-1] = size - tile
    return sorted(set(origins))


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 8:
        raise FloodwatchError(f"tile: {tile} px is too small (at least 8)")
    if not 0 <= overlap <= tile // 2:
        raise FloodwatchError(f"overlap: {overlap} px must be between 0 and half the tile ({tile // 2})")


def blend_weight(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) float32 weight: raised-cosine ramps of `overlap` px at each edge, flat 1 inside."""
    ramp = np.ones(tile, np.float64)
    if overlap > 0:
        t = (np.arange(overlap) + 0.5) / overlap
        r = np.sin(0.5 * np.pi * t) ** 2
        ramp[:overlap] = r
        ramp[-overlap:] = r[::-1]
    ramp = np.maximum(ramp, EDGE_WEIGHT)
    return np.outer(ramp, ramp).astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """The windows covering a `height` x `width` raster, grouped in rows of tiles (strips)."""

    height: int
    width: int
    tile: int
    overlap: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise FloodwatchError(f"raster size {self.height}x{self.width} is empty")
        check_tiling(self.tile, self.overlap)

    @property
    def row_origins(self) -> list[int]:
        return tile_origins(self.height, self.tile, self.overlap)

    @property
    def col_origins(self) -> list[int]:
        return tile_origins(self.width, self.tile, self.overlap)

    def __len__(self) -> int:
        return len(self.row_origins) * len(self.col_origins)

    def strip_rows(self, i: int) -> tuple[int, int]:
        """Rows [start, stop) that strip i reads (clipped to the raster)."""
        r0 = self.row_origins[i]
        return r0, min(r0 + self.tile, self.height)

    def finished_rows(self, i: int) -> tuple[int, int]:
        """Rows that no later strip touches once strip i is blended: they can be written."""
        origins = self.row_origins
        stop = origins[i + 1] if i + 1 < len(origins) else self.height
        return origins[i], stop


class StripBlender:
    """Weighted-probability accumulator for the current strip only: memory O(tile x width)."""

    def __init__(self, grid: TileGrid):
        self.grid = grid
        self.weight = blend_weight(grid.tile, grid.overlap)
        self.acc = np.zeros((grid.tile, grid.width), np.float32)
        self.wsum = np.zeros((grid.tile, grid.width), np.float32)
        self.strip = 0

    def add(self, col: int, prob: np.ndarray) -> None:
        """Blend one (tile, tile) probability whose window starts at column `col` of the current strip."""
        t = self.grid.tile
        w = min(t, self.grid.width - col)
        self.acc[:, col:col + w] += prob[:, :w] * self.weight[:, :w]
        self.wsum[:, col:col + w] += self.weight[:, :w]

    def finish_strip(self) -> tuple[int, int, np.ndarray]:
        """Return (row0, row1, blended probability rows) for the rows now final, and move to the next strip.

        Pixels no tile predicted (all-nodata tiles are skipped) come back as NaN."""
        r0, r1 = self.grid.finished_rows(self.strip)
        n = r1 - r0
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(self.wsum[:n] > 0, self.acc[:n] / self.wsum[:n], np.float32(np.nan)).astype(np.float32)
        # Slide the buffer up: rows beyond the finished ones already hold the next strip's partial sums.
        for buf in (self.acc, self.wsum):
            if n < len(buf):
                buf[:-n] = buf[n:].copy()
            buf[-n:] = 0
        self.strip += 1
        return r0, r1, out
