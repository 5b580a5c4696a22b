"""Test-time BatchNorm adaptation against statistics computed independently with torch."""
import numpy as np
import pytest
import torch
from torch import nn

from floodwatch.errors import FloodwatchError
from floodwatch.inference.adapt import adapt_batchnorm, mostly_valid


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv2d(4, 2, 1))


def batches(offset: float, n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(offset, 1.0, (2, 2, 8, 8)).astype(np.float32) for _ in range(n)]


def test_statistics_are_the_scenes_own():
    model = small_model()
    data = batches(offset=5.0)
    assert adapt_batchnorm(model, data) == 6
    with torch.no_grad():
        features = model[0](torch.from_numpy(np.concatenate(data)))
    bn = model[1]
    # equal-sized batches: the cumulative average of batch means is the mean over every chip
    torch.testing.assert_close(bn.running_mean, features.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    per_batch_var = [f.var(dim=(0, 2, 3), unbiased=True) for f in features.split(2)]
    torch.testing.assert_close(bn.running_var, torch.stack(per_batch_var).mean(0), rtol=1e-5, atol=1e-5)
    assert not model.training and not bn.training and bn.momentum == 0.1  # eval mode, momentum as it was
    # eval mode: the adapted model is deterministic (dropout off) and normalises with the new statistics
    x = torch.from_numpy(data[0])
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
        expected = (features[:2] - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
        torch.testing.assert_close(model[1](features[:2]), expected * bn.weight[:, None, None] + bn.bias[:, None, None])


def test_a_darker_scene_moves_the_statistics_and_the_weights_stay():
    bright, dark = small_model(), small_model()
    weights = [p.clone() for p in bright.parameters()]
    adapt_batchnorm(bright, batches(5.0))
    adapt_batchnorm(dark, batches(-5.0))
    assert not torch.allclose(bright[1].running_mean, dark[1].running_mean)
    for before, after in zip(weights, bright.parameters()):
        torch.testing.assert_close(before, after)


def test_refuses_models_without_batchnorm_and_no_chips():
    with pytest.raises(FloodwatchError, match="no BatchNorm"):
        adapt_batchnorm(nn.Conv2d(2, 2, 1), batches(0.0))
    model = small_model()
    before = (model[1].running_mean.clone(), model[1].running_var.clone())
    with pytest.raises(FloodwatchError, match="no chip"):
        adapt_batchnorm(model, [])
    torch.testing.assert_close(model[1].running_mean, before[0])
    torch.testing.assert_close(model[1].running_var, before[1])
    assert model[1].momentum == 0.1


def test_mostly_valid():
    valid = np.ones((10, 10), bool)
    valid[0] = False
    assert mostly_valid(valid)
    valid[1] = False
    assert not mostly_valid(valid)
