"""benchmarks/seams.py: a pixel-wise predictor (the mapping tests' fake) leaves no seam at any overlap; border
bands by known geometry."""
from __future__ import annotations

import numpy as np
import pytest

from tests.mapping.helpers import WATER_DB, ThresholdPredictor

from .helpers import load_benchmark


@pytest.fixture(scope="module")
def seams():
    return load_benchmark("seams")


@pytest.mark.parametrize("pad_last_row", [True, False])
@pytest.mark.parametrize("overlap", [0, 16, 32, 64])
def test_pixel_wise_predictor_is_unchanged_by_tiling(seams, overlap, pad_last_row):
    rng = np.random.default_rng(1)
    image = rng.normal(-12, 5, (2, 300, 700)).astype(np.float32)
    valid = np.ones((300, 700), bool)
    got = seams.sliding_window(ThresholdPredictor(), image, valid, tile=128, overlap=overlap,
                               pad_last_row=pad_last_row)
    np.testing.assert_allclose(got, (image[0] < WATER_DB).astype(np.float32), rtol=1e-5)


def test_border_band_geometry(seams):
    # tile 128, overlap 0 on 300 px. Rows, as map's padded grid: origins 0, 128, 256 -> inner edges at 128, 256.
    # Columns move back: origins 0, 128, 172 -> inner edges at 128, 172, 256.
    near = seams.near_tile_borders((300, 300), 128, 0)
    rows = np.flatnonzero(near[:, 50])   # column 50: far from every column edge
    assert rows.tolist() == sorted(set(range(96, 160)) | set(range(224, 288)))
    cols = np.flatnonzero(near[50, :])   # row 50: far from every row edge
    assert cols.tolist() == sorted(set(range(96, 160)) | set(range(140, 204)) | set(range(224, 288)))
