"""TorchPredictor runs channels-last (NHWC) by default: the same probabilities as a plain NCHW forward pass."""
from __future__ import annotations

import numpy as np
import torch

from floodwatch.inference.predictor import TorchPredictor
from floodwatch.models.checkpoint import load_model


def test_channels_last_matches_a_plain_forward_pass(tiny_checkpoint):
    x = np.random.default_rng(0).normal(0, 1, (3, 2, 64, 96)).astype(np.float32)
    model, _ = load_model(tiny_checkpoint, "cpu")
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).double()  # torch's default layout, the reference
    expected = torch.softmax(logits, dim=1)[:, 1].numpy()

    nhwc = TorchPredictor(tiny_checkpoint, device="cpu")
    conv = next(m for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    got = nhwc.predict(x)
    assert got.shape == (3, 64, 96) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)

    nchw = TorchPredictor(tiny_checkpoint, device="cpu", channels_last=False)
    conv = next(m for m in nchw.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(nchw.predict(x), expected, atol=1e-5)
