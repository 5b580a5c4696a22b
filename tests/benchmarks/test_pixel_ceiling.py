"""benchmarks/pixel_ceiling.py: the per-pixel oracle ceilings against brute force and known cases."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import load_benchmark


@pytest.fixture(scope="module")
def ceiling():
    return load_benchmark("pixel_ceiling")


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    return float((pred & truth).sum() / (pred | truth).sum())


def test_best_threshold_matches_brute_force(ceiling):
    rng = np.random.default_rng(0)
    water = rng.random(5000) < 0.3
    vv = np.where(water, rng.normal(-18, 3, 5000), rng.normal(-9, 3, 5000)).astype(np.float32)
    vv = np.round(vv * 4) / 4 + 0.1  # on the 0.25 dB grid, off its edges, so both see the same cuts
    brute = max(_iou(vv <= t, water) for t in np.unique(vv))
    assert ceiling.best_threshold_iou(vv, water, 0.25) == pytest.approx(brute)


def test_separable_bands_reach_one_and_overlap_costs_what_it_should(ceiling):
    # VV alone cannot separate (same value), VH can: the 2-D ceiling is 1, the VV threshold is not
    water = np.array([True] * 100 + [False] * 300)
    vv = np.full(400, -15.0)
    vh = np.where(water, -25.0, -15.0)
    assert ceiling.pixel_ceiling_iou(vv, vh, water, 0.25) == pytest.approx(1.0)
    assert ceiling.best_threshold_iou(vv, water, 0.25) == pytest.approx(100 / 400)
    # 100 water pixels in their own bin, 100 more water and 100 land sharing one bin, 200 land apart:
    # taking the shared bin gives 200 / 300, leaving it 100 / 200, so the ceiling is 2/3
    water = np.array([True] * 200 + [False] * 300)
    vv = np.concatenate([np.full(100, -25.0), np.full(100, -18.0), np.full(100, -18.0), np.full(200, -5.0)])
    assert ceiling.pixel_ceiling_iou(vv, vv.copy(), water, 0.25) == pytest.approx(2 / 3)


def test_no_water_has_no_ceiling(ceiling):
    assert np.isnan(ceiling.pixel_ceiling_iou(np.zeros(4), np.zeros(4), np.zeros(4, bool), 0.25))
