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


@pytest.mark.parametrize("overlap", [0, 16, 32, 64])
def test_pixel_wise_predictor_is_unchanged_by_tiling(seams, overlap):
    rng = np.random.default_rng(1)
    image = rng.normal(-12, 5, (2, 300, 700)).astype(np.float32)
    valid = np.ones((300, 700), bool)
    got = seams.sliding_window(ThresholdPredictor(), image, valid, tile=128, overlap=overlap)
    np.testing.assert_allclose(got, (image[0] < WATER_DB).astype(np.float32), rtol=1e-5)


def test_border_band_geometry(seams):
    # tile 128, overlap 0 on 300 px: origins 0, 128, 172 -> inner edges at 128, 172, 256
    near = seams.near_tile_borders((300, 10), 128, 0)
    rows = np.flatnonzero(near[:, 0])
    expected = sorted(set(range(96, 160)) | set(range(140, 204)) | set(range(224, 288)))
    assert rows.tolist() == expected and near.all(axis=1)[rows].all()
