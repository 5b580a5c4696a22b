"""water_probability: the two-class shortcut (sigmoid of the logit difference) is the softmax."""
from __future__ import annotations

import numpy as np
import torch

from floodwatch.inference.predictor import water_probability


def test_two_and_three_classes_match_the_softmax():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        logits = rng.normal(0, 8, (3, k, 17, 9)).astype(np.float32)
        expected = torch.softmax(torch.from_numpy(logits).double(), dim=1)[:, 1].numpy()
        got = water_probability(logits)
        assert got.shape == (3, 17, 9) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-6)
    extreme = np.array([[[[80.0]], [[-80.0]]]], np.float32)  # no overflow to NaN at large logits
    assert water_probability(extreme)[0, 0, 0] == 0.0 and np.isfinite(water_probability(-extreme)).all()
