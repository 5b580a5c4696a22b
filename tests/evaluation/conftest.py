"""Fake predictors whose output is known, and a tiny real checkpoint, for evaluation tests."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.sample import WATER
from floodwatch.data.preprocess import network_input


class OraclePredictor:
    """Returns each chip's truth (or its inverse), found by the pre-processed input it is given."""

    def __init__(self, samples, invert=False, preprocessing=None):
        self.preprocessing = preprocessing or Preprocessing()
        self.truth = {}
        for s in samples:
            if s.mask is not None and s.valid.any():
                water = (s.mask == WATER).astype(np.float32)
                self.truth[network_input(s, self.preprocessing).tobytes()] = 1.0 - water if invert else water
        self.calls = 0

    def predict(self, batch):
        self.calls += 1
        return np.stack([self.truth[x.tobytes()] for x in np.asarray(batch, np.float32)])


@pytest.fixture(scope="session")
def oracle():
    return OraclePredictor
