"""TorchPredictor runs channels-last (NHWC) with BatchNorm folded by default: the same probabilities as a plain
NCHW forward pass of the unfolded model (the folding itself: tests/models/test_fold.py)."""
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
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in nhwc.model.modules())
    got = nhwc.predict(x)
    assert got.shape == (3, 64, 96) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)

    nchw = TorchPredictor(tiny_checkpoint, device="cpu", channels_last=False)
    conv = next(m for m in nchw.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(nchw.predict(x), expected, atol=1e-5)


def test_batch_norm_is_kept_on_request(tiny_checkpoint):
    """Test-time adaptation (inference/adapt.py) re-estimates BatchNorm statistics: it needs them unfolded."""
    kept = TorchPredictor(tiny_checkpoint, device="cpu", fold_batch_norm=False)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in kept.model.modules())


def test_the_model_file_recorded_for_a_predictor_goes_through_wrappers_and_ensembles(tiny_checkpoint, tmp_path):
    import shutil

    from floodwatch.inference import load_predictor
    from floodwatch.inference.base import predictor_model_file

    other = tmp_path / "other.pt"
    shutil.copy(tiny_checkpoint, other)
    one = str(tiny_checkpoint.absolute())
    assert predictor_model_file(load_predictor(tiny_checkpoint, tta=True)) == one
    both = load_predictor([tiny_checkpoint, other], tta=True, weights=[2.0, 1.0])
    assert predictor_model_file(both) == [one, str(other.absolute())]
