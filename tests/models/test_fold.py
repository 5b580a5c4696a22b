"""fold_batch_norm: the same logits as the unfolded model, no BatchNorm left, and refused in training mode."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from floodwatch.errors import FloodwatchError
from floodwatch.models import build_model, fold_batch_norm


def _randomised(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, so a wrong fold cannot pass unnoticed."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


@pytest.mark.parametrize("config", [
    {"num_layers": 10},
    {"num_layers": 18, "all_projections": True},
    {"num_layers": 50, "widths": {"decoder.1.conv1": 64, "decoder.1.conv2": 64}},
    {"num_layers": 10, "widths": {"encoder.layer1.0.conv1": 20, "decoder.0.conv1": 40}},
])
def test_folded_model_gives_the_same_logits(config):
    torch.manual_seed(0)
    model = _randomised(build_model(in_channels=2, **config))
    x = torch.randn(2, 2, 64, 96)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batch_norm(model)
        got = folded(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_model_without_batch_norm_is_unchanged():
    model = build_model(num_layers=10, in_channels=2, use_batch_norm=False).eval()
    x = torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(fold_batch_norm(model)(x), expected)


def test_training_mode_is_refused():
    with pytest.raises(FloodwatchError, match="training mode"):
        fold_batch_norm(build_model(num_layers=10, in_channels=2).train())
