"""Tile grid, blending weight and strip accumulator (floodwatch.inference.tiling)."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.errors import FloodwatchError
from floodwatch.inference.tiling import (DEFAULT_OVERLAP, StripBlender, TileGrid, WindowBlender, blend_weight,
                                        check_tiling, default_overlap, tile_origins)


@pytest.mark.parametrize("size,tile,overlap", [(1, 64, 16), (64, 64, 16), (65, 64, 16), (200, 64, 16),
                                               (1000, 512, 64), (513, 512, 0), (97, 32, 16)])
def test_origins_cover_every_pixel_and_stay_inside(size, tile, overlap):
    origins = tile_origins(size, tile, overlap)
    covered = np.zeros(size, int)
    for o in origins:
        covered[o:o + tile] += 1
        assert o >= 0 and (o + tile <= size or size < tile)
    assert covered.min() >= 1
    assert origins == sorted(origins) and len(set(origins)) == len(origins)
    steps = np.diff(origins)
    assert (steps <= tile - overlap).all()  # neighbours overlap by at least `overlap`


def test_blend_weight_is_positive_symmetric_and_flat_inside():
    w = blend_weight(64, 16)
    assert w.shape == (64, 64) and w.min() > 0
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert (w[16:48, 16:48] == 1).all() and w[0, 0] < 1e-3 + 1e-9


def test_bad_tiling_is_a_floodwatch_error():
    with pytest.raises(FloodwatchError, match="overlap"):
        TileGrid(100, 100, 64, 40)
    with pytest.raises(FloodwatchError, match="tile"):
        TileGrid(100, 100, 4, 0)


def _blend(field: np.ndarray, grid: TileGrid, fn) -> np.ndarray:
    """Run a pointwise 'model' fn over the grid's tiles with the blender; return the blended raster."""
    t = grid.tile
    out = np.full(field.shape, np.nan, np.float32)
    blender = StripBlender(grid)
    for r in grid.row_origins:
        strip = np.pad(field[r:r + t], ((0, max(0, t - field[r:r + t].shape[0])), (0, max(0, t - field.shape[1]))))
        for c in grid.col_origins:
            blender.add(c, fn(strip[:, c:c + t]))
        r0, r1, rows = blender.finish_strip()
        out[r0:r1] = rows
    return out


@pytest.mark.parametrize("shape", [(150, 97), (40, 30), (128, 128)])
def test_blending_reproduces_pointwise_models_without_seams(shape):
    rng = np.random.default_rng(0)
    field = rng.uniform(0, 1, shape).astype(np.float32)
    grid = TileGrid(*shape, tile=64, overlap=16)
    const = _blend(field, grid, lambda x: np.full_like(x, 0.37))
    np.testing.assert_allclose(const, 0.37, rtol=0, atol=1e-6)
    # A model that looks at each pixel alone must come back unchanged wherever the tiles overlap.
    same = _blend(field, grid, lambda x: x ** 2)
    np.testing.assert_allclose(same, field ** 2, rtol=0, atol=1e-6)


def test_blending_weights_tile_centres_over_edges():
    # Two tiles disagree: the pixel in the middle of the overlap gets the mean, tile centres get their own.
    grid = TileGrid(64, 112, tile=64, overlap=16)
    assert grid.col_origins == [0, 48]
    blender = StripBlender(grid)
    blender.add(0, np.zeros((64, 64), np.float32))
    blender.add(48, np.ones((64, 64), np.float32))
    _, _, out = blender.finish_strip()
    assert out[32, 10] == 0 and out[32, 100] == 1
    np.testing.assert_allclose(out[32, 55:57].mean(), 0.5, atol=1e-6)
    assert np.all(np.diff(out[32, 48:64]) >= 0)  # a smooth ramp, not a step


def _blend_windows(field: np.ndarray, grid: TileGrid, fn, chunk_tiles: int) -> np.ndarray:
    t = grid.tile
    out = np.full(field.shape, np.nan, np.float32)
    blender = WindowBlender(grid, chunk_tiles)
    padded = np.pad(field, ((0, max(0, grid.row_origins[-1] + t - field.shape[0])), (0, max(0, t - field.shape[1]))))
    for i, r in enumerate(grid.row_origins):
        for j, chunk in enumerate(blender.chunks):
            blender.start(i, j)
            for c in chunk:
                blender.add(c, fn(padded[r:r + t, c:c + t]))
            r0, c0, rows = blender.finish()
            assert np.isnan(out[r0:r0 + rows.shape[0], c0:c0 + rows.shape[1]]).all()  # each pixel once
            out[r0:r0 + rows.shape[0], c0:c0 + rows.shape[1]] = rows
    return out


@pytest.mark.parametrize("pad_last_row", [False, True])
@pytest.mark.parametrize("shape,chunk", [((150, 97), 1), ((150, 97), 2), ((40, 30), 3), ((300, 410), 2),
                                         ((300, 410), 100)])
def test_window_blender_matches_the_strip_blender(shape, chunk, pad_last_row):
    rng = np.random.default_rng(1)
    field = rng.uniform(0, 1, shape).astype(np.float32)
    grid = TileGrid(*shape, tile=64, overlap=16, pad_last_row=pad_last_row)

    def model(x):  # not pointwise: the blend weights matter, so both blenders must weigh alike
        return (x + x.mean()).astype(np.float32)

    np.testing.assert_allclose(_blend_windows(field, grid, model, chunk), _blend(field, grid, model),
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(_blend_windows(field, grid, lambda x: x ** 2, chunk), field ** 2, atol=1e-6)


def test_window_blender_refuses_chunks_out_of_order():
    blender = WindowBlender(TileGrid(200, 200, 64, 16), chunk_tiles=1)
    with pytest.raises(FloodwatchError, match="out of order"):
        blender.start(0, 1)


def test_window_blender_carries_nothing_past_a_raster_under_a_tile_high():
    grid = TileGrid(40, 30, tile=64, overlap=16)
    blender = WindowBlender(grid, chunk_tiles=1)
    blender.start(0, 0)
    assert blender._next_carry.size == 0  # rows 40..63 of the only strip lie past the raster


def test_window_blender_holds_nothing_once_the_scene_is_done():
    """The last strip overlaps the one before it by more than the overlap (its origin moves back to fit), so
    a large carry lives through the last strip; the blender outlives the loop, and must let it go."""
    grid = TileGrid(150, 97, tile=64, overlap=16)
    blender = WindowBlender(grid, chunk_tiles=1)
    for i, _ in enumerate(grid.row_origins):
        for j, chunk in enumerate(blender.chunks):
            blender.start(i, j)
            if i == len(grid.row_origins) - 1 and j == 0:
                assert blender._carry.shape[1] > grid.overlap  # the case that matters
            for c in chunk:
                blender.add(c, np.ones((64, 64), np.float32))
            blender.finish()
    assert blender._carry.size == blender._next_carry.size == blender._right.size == 0


def test_a_padded_last_strip_stays_on_the_stride_and_carries_only_the_overlap():
    shifted, padded = TileGrid(150, 97, 64, 16), TileGrid(150, 97, 64, 16, pad_last_row=True)
    assert shifted.row_origins == [0, 48, 86] and padded.row_origins == [0, 48, 96]
    assert padded.col_origins == shifted.col_origins  # columns keep moving back: their carry is one tile high
    blender = WindowBlender(padded, chunk_tiles=1)
    carried = []
    for i, _ in enumerate(padded.row_origins):
        for j, chunk in enumerate(blender.chunks):
            blender.start(i, j)
            carried.append(blender._carry.shape[1])
            for c in chunk:
                blender.add(c, np.ones((64, 64), np.float32))
            blender.finish()
    assert max(carried) == padded.overlap  # the shifted grid carries 64 - (86 - 48) = 26 rows, up to a tile


@pytest.mark.parametrize("tile", [8, 31, 32, 64, 127, 128, 512, 1024])
def test_default_overlap_fits_every_allowed_tile(tile):
    # run and aoi watch have no --overlap: their default must pass the tiling check for any --tile map accepts
    check_tiling(tile, default_overlap(tile))
    assert default_overlap(512) == DEFAULT_OVERLAP  # map's default tile gets map's default overlap
