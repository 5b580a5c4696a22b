"""Fake predictors with known behaviour and tiny real checkpoints for the accuracy tests."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing


class PixelwisePredictor:
    """sigmoid of a per-pixel function of the channels: equivariant to every flip and rotation."""

    def __init__(self, preprocessing: Preprocessing | None = None):
        self.preprocessing = preprocessing or Preprocessing()

    def predict(self, batch):
        x = np.asarray(batch, np.float64)
        return (1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1])))).astype(np.float32)


class PositionalPredictor:
    """Depends on where a pixel is (a ramp plus a bright-left-neighbour term): not equivariant at all."""

    def __init__(self, preprocessing: Preprocessing | None = None):
        self.preprocessing = preprocessing or Preprocessing()

    def predict(self, batch):
        x = np.asarray(batch, np.float64)
        n, _, h, w = x.shape
        ramp = np.linspace(0, 1, h * w).reshape(h, w)
        left = np.roll(x[:, 0], 1, axis=-1)
        return (0.5 * ramp[None] + 0.5 / (1 + np.exp(-left))).astype(np.float32)


class ConstantPredictor:
    def __init__(self, value: float, preprocessing: Preprocessing | None = None, meta: dict | None = None):
        self.value, self.preprocessing = value, preprocessing or Preprocessing()
        if meta is not None:
            self.meta = meta

    def predict(self, batch):
        b = np.asarray(batch)
        return np.full((b.shape[0],) + b.shape[2:], self.value, np.float32)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Two differently initialised ResNet-10 U-Nets with the same pre-processing."""
    import torch

    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    cfg = dict(num_layers=10, in_channels=2, num_classes=2, all_projections=False, use_batch_norm=True)
    folder = tmp_path_factory.mktemp("ckpts")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(save_checkpoint(folder / f"tiny{seed}.pt", build_model(**cfg), model_config=cfg,
                                     preprocessing=Preprocessing()))
    return paths


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory):
    from floodwatch.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", chips=4, size=32, seed=3)
