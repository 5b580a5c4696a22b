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

from ..errors import DataError, FloodwatchError

#: Smallest weight at a tile's outer edge: >0 so scene-border pixels, covered by one tile only, still
#: get a value, and small so a neighbour's better-informed centre dominates inside the scene.
EDGE_WEIGHT = 1e-3
#: Tile overlap of `map`, `run` and `aoi watch`. 32 px, not 64: on mosaics of real ETCI tiles the mask moved
#: by 0.02-0.03 % of the pixels near tile borders against a 128 px overlap, IoU by under 0.001, for 8 % less
#: CPU per scene (benchmarks/seams.py, docs/benchmarks.md, ninth session).
DEFAULT_OVERLAP = 32


def tile_origins(size: int, tile: int, overlap: int, pad_last: bool = False) -> list[int]:
    """Start offsets along one axis: stride tile-overlap, the last tile shifted back so it ends at the
    edge (keeping real context instead of padding), or with `pad_last` kept on the stride and padded past
    the edge; a scene smaller than a tile gets one padded tile."""
    check_tiling(tile, overlap)
    if size <= tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((size - tile) / stride) + 1
    origins = [i * stride for i in range(n)]
    if not pad_last:
        origins[-1] = size - tile
    return sorted(set(origins))


def check_threshold(threshold: float) -> None:
    """A water-probability threshold lies strictly between 0 and 1 (0 maps everything as water, 1 nothing);
    every command that takes one (map, change, infer, client, evaluate) refuses the rest with this message."""
    if not 0.0 < threshold < 1.0:  # NaN too
        raise DataError(f"threshold: {threshold} must lie strictly between 0 and 1")


def check_prediction(threshold: float, batch: int) -> None:
    """The limits every sliding-window prediction (map_scene, change) sets: a water threshold inside (0, 1) and
    at least one tile per predictor call."""
    check_threshold(threshold)
    if batch < 1:
        raise FloodwatchError(f"batch: {batch} must be at least 1")


def default_overlap(tile: int) -> int:
    """The overlap `run` and `aoi watch` use (they have no --overlap): DEFAULT_OVERLAP, at most a quarter tile."""
    return min(DEFAULT_OVERLAP, tile // 4)


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
    #: the last strip stays on the stride and reaches past the raster (padded) instead of moving back to end at
    #: its edge: a shifted last strip overlaps the one before by up to a tile, and WindowBlender would carry
    #: that many rows of the scene's width (77 MB at 25,000 px) through it
    pad_last_row: bool = False

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise FloodwatchError(f"raster size {self.height}x{self.width} is empty")
        check_tiling(self.tile, self.overlap)

    @property
    def row_origins(self) -> list[int]:
        return tile_origins(self.height, self.tile, self.overlap, pad_last=self.pad_last_row)

    @property
    def col_origins(self) -> list[int]:
        return tile_origins(self.width, self.tile, self.overlap)

    def __len__(self) -> int:
        return len(self.row_origins) * len(self.col_origins)

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


class WindowBlender:
    """Weighted-probability accumulator that walks the grid strip by strip and, inside a strip, chunk by
    chunk of `chunk_tiles` tile columns, so memory is O(tile x chunk width + overlap x scene width), not
    O(tile x scene width): a 25,000 px wide scene needs no more than a 5,000 px one.

    For each chunk: `start(i, j)` -> (rows, cols) of the window to read, `add(col, prob)` per tile,
    `finish()` -> (row0, col0, probability) of the pixels no later tile touches (NaN where no tile
    predicted). Chunks must come in order: strip 0 chunk 0, 1, ..., strip 1 chunk 0, ...
    """

    def __init__(self, grid: TileGrid, chunk_tiles: int = 8):
        if chunk_tiles < 1:
            raise FloodwatchError(f"chunk_tiles: {chunk_tiles} must be at least 1")
        self.grid = grid
        self.weight = blend_weight(grid.tile, grid.overlap)
        cols = grid.col_origins
        self.chunks = [cols[k:k + chunk_tiles] for k in range(0, len(cols), chunk_tiles)]
        self._rows = grid.row_origins
        # Rows below the finished ones carry their partial sums into the next strip (full width, few rows).
        self._carry = np.zeros((2, 0, grid.width), np.float32)
        self._next_carry = self._carry
        self._right = np.zeros((2, grid.tile, 0), np.float32)  # partial sums left of the next chunk
        self._pos = (0, -1)

    def window(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) that chunk j of strip i covers, clipped to the raster."""
        t, chunk = self.grid.tile, self.chunks[j]
        r0, c0 = self._rows[i], chunk[0]
        return r0, min(r0 + t, self.grid.height), c0, min(chunk[-1] + t, self.grid.width)

    def _final_cols(self, j: int) -> tuple[int, int]:
        stop = self.chunks[j + 1][0] if j + 1 < len(self.chunks) else self.grid.width
        return self.chunks[j][0], stop

    def start(self, i: int, j: int) -> None:
        t = self.grid.tile
        pi, pj = self._pos
        expected = (pi, pj + 1) if pj + 1 < len(self.chunks) else (pi + 1, 0)
        if (i, j) != expected:
            raise FloodwatchError(f"WindowBlender: chunk ({i}, {j}) out of order, expected {expected}")
        if j == 0 and i > 0:
            self._carry, self._right = self._next_carry, np.zeros((2, t, 0), np.float32)
        if j == 0:
            n = self.grid.finished_rows(i)[1] - self._rows[i]
            # The last strip carries nothing: its rows below the finished ones lie past the raster's end
            # (a padded last strip, TileGrid.pad_last_row, or a raster under a tile high).
            rows = 0 if i == len(self._rows) - 1 else max(t - n, 0)
            self._next_carry = np.zeros((2, rows, self.grid.width), np.float32)
        self._pos = (i, j)
        c0 = self.chunks[j][0]
        width = self.chunks[j][-1] + t - c0
        self.buf = np.zeros((2, t, width), np.float32)  # [weighted sum, weight sum]
        # The previous chunk's right edge already holds the carried sums of its columns: take those once.
        k = self._right.shape[2]
        self.buf[:, :, :k] = self._right
        carried = self._carry[:, :, c0 + k:c0 + width]
        self.buf[:, :carried.shape[1], k:k + carried.shape[2]] += carried

    def add(self, col: int, prob: np.ndarray) -> None:
        """Blend one (tile, tile) probability whose window starts at column `col` (one of this chunk's)."""
        t = self.grid.tile
        c = col - self.chunks[self._pos[1]][0]
        self.buf[0, :, c:c + t] += prob * self.weight
        self.buf[1, :, c:c + t] += self.weight

    def finish(self) -> tuple[int, int, np.ndarray]:
        i, j = self._pos
        r0, r1 = self.grid.finished_rows(i)
        n = r1 - r0
        c0, c1 = self._final_cols(j)
        w = c1 - c0
        self._right = self.buf[:, :, w:].copy()
        carry = self._next_carry.shape[1]
        self._next_carry[:, :, c0:c1] = self.buf[:, n:n + carry, :w]
        acc, wsum = self.buf[0, :n, :w], self.buf[1, :n, :w]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(wsum > 0, acc / wsum, np.float32(np.nan)).astype(np.float32)
        self.buf = None
        # The scene is done: hold nothing (the blender lives on while the outputs are finished and vectorised).
        # Without pad_last_row the last strip's carry is up to a tile high by the scene's width.
        if (i, j) == (len(self._rows) - 1, len(self.chunks) - 1):
            self._carry = self._next_carry = np.zeros((2, 0, self.grid.width), np.float32)
            self._right = np.zeros((2, self.grid.tile, 0), np.float32)
        return r0, c0, out
