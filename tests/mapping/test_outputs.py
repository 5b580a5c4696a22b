"""Raster outputs: GeoTIFF tiles that map's windows fill whole, and the quicklook's two halves."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.inference.tiling import TileGrid, WindowBlender
from floodwatch.mapping.outputs import MASK_NODATA, aligned_block
from floodwatch.mapping.quicklook import Quicklook


@pytest.mark.parametrize("tile, overlap, chunk_tiles, expected", [
    (512, 32, 8, (480, 480)),   # map's defaults: 480 px steps, 3,840 px chunks
    (512, 64, 8, (448, 512)),   # 448 px steps, 3,584 px chunks (7 x 512)
    (512, 50, 8, (256, 336)),   # 462 px steps: not a multiple of 16, so rows fall back to 256
])
def test_aligned_block_is_filled_whole_by_the_windows(tile, overlap, chunk_tiles, expected):
    step = tile - overlap
    block = aligned_block(step, step * chunk_tiles)
    assert block == expected
    assert all(side % 16 == 0 and 16 <= side <= 512 for side in block)
    grid = TileGrid(20 * step + 7, 3 * step * chunk_tiles + 11, tile, overlap)
    blender = WindowBlender(grid, chunk_tiles)
    for i in range(len(grid.row_origins) - 2):  # the last two strips end at the raster's edge instead
        r0, r1 = grid.finished_rows(i)
        if block[0] != 256:
            assert r0 % block[0] == 0 and r1 % block[0] == 0
    for j in range(len(blender.chunks) - 1):
        c0, c1 = blender._final_cols(j)
        assert c0 % block[1] == 0 and c1 % block[1] == 0


def test_quicklook_keeps_every_step_th_pixel_of_the_raster():
    rng = np.random.default_rng(0)
    vv = rng.normal(-12, 3, (37, 53)).astype(np.float32)
    mask = rng.integers(0, 2, (37, 53)).astype(np.uint8)
    look = Quicklook(300, 400, max_side=40)
    assert look.step == 10
    look.add_sar(123, vv, 57)
    look.add_mask(123, mask, 57)
    # reference: the window pasted into the whole raster, then every 10th row and column of it
    full_sar = np.full((300, 400), np.nan, np.float32)
    full_mask = np.full((300, 400), MASK_NODATA, np.uint8)
    full_sar[123:160, 57:110], full_mask[123:160, 57:110] = vv, mask
    np.testing.assert_array_equal(look.sar, full_sar[::10, ::10])
    np.testing.assert_array_equal(look.mask, full_mask[::10, ::10])
    assert look.sar[13, 6] == vv[7, 3]  # raster pixel (130, 60): row 7, column 3 of the window
