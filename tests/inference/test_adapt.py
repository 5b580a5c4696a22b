"""Test-time BatchNorm adaptation against statistics computed independently with torch."""
import numpy as np
import pytest
import torch
from torch import nn

from floodwatch.data.preprocess import network_input
from floodwatch.data.sample import Sample
from floodwatch.errors import FloodwatchError
from floodwatch.evaluation.evaluate import evaluate
from floodwatch.inference.adapt import SceneAdapter, adapt_batchnorm, mostly_valid, torch_models
from floodwatch.inference.predictor import TorchPredictor, load_predictor


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


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
    assert not bn.training and bn.momentum == 0.1  # back in eval mode, its momentum as it was


def test_scenes_are_kept_apart_and_training_statistics_restored():
    model = small_model()
    trained = model[1].running_mean.clone()
    adapter = SceneAdapter(model)
    for a, b in zip(batches(5.0), batches(-5.0, seed=1)):
        adapter.observe("wet", a)
        adapter.observe("dry", b)
    adapter.use("wet")
    wet = model[1].running_mean.clone()
    adapter.use("dry")
    dry = model[1].running_mean.clone()
    reference = SceneAdapter(small_model())
    for a in batches(5.0):
        reference.observe("wet", a)
    reference.use("wet")
    torch.testing.assert_close(wet, reference.model[1].running_mean)  # interleaving did not mix them
    assert not torch.allclose(wet, dry)
    assert adapter.chips == {"wet": 6, "dry": 6}
    adapter.use("never seen")
    torch.testing.assert_close(model[1].running_mean, trained)


def test_refuses_models_without_batchnorm_and_no_chips():
    with pytest.raises(FloodwatchError, match="no BatchNorm"):
        adapt_batchnorm(nn.Conv2d(2, 2, 1), batches(0.0))
    model = small_model()
    before = model[1].running_var.clone()
    with pytest.raises(FloodwatchError, match="no chip"):
        adapt_batchnorm(model, [])
    torch.testing.assert_close(model[1].running_var, before)


def test_mostly_valid():
    valid = np.ones((10, 10), bool)
    valid[0] = False
    assert mostly_valid(valid)
    valid[1] = False
    assert not mostly_valid(valid)


def test_evaluate_adapts_per_region(tiny_checkpoint):
    rng = np.random.default_rng(0)

    def chip(i: int, region: str, level: float) -> Sample:
        image = (rng.normal(level, 2.0, (2, 32, 32)) + np.array([0.0, -8.0])[:, None, None]).astype(np.float32)
        mask = (image[0] < level).astype(np.int64)
        valid = np.ones((32, 32), bool)
        if i == 0:
            valid[:16] = False  # half no data: scored, but left out of the statistics
        return Sample(image=image, mask=mask, valid=valid, id=f"{region}{i}", region=region)

    data = [chip(i, r, lv) for r, lv in (("bright", -8.0), ("dark", -20.0)) for i in range(5)]
    data = data[::2] + data[1::2]  # regions interleaved
    plain = evaluate(tiny_checkpoint, data, batch_size=2, otsu=False, progress=False)
    predictor = load_predictor(tiny_checkpoint)
    adapted = evaluate(predictor, data, batch_size=2, otsu=False, adapt=True, progress=False)
    assert adapted["adapted"] == {"bright": 4, "dark": 4}
    assert "adapted" not in plain
    # the model is left with its training statistics
    fresh = TorchPredictor(tiny_checkpoint)
    for a, b in zip(predictor.model.state_dict().values(), fresh.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    # each region scored as a model adapted on that region's chips alone would score it
    for region in ("bright", "dark"):
        own = [s for s in data if s.region == region]
        alone = TorchPredictor(tiny_checkpoint)
        inputs = [network_input(s, alone.preprocessing) for s in own if s.valid.all()]  # not the half-empty one
        adapt_batchnorm(alone.model, [np.stack(inputs[:2]), np.stack(inputs[2:])])
        r = evaluate(alone, own, batch_size=2, otsu=False, progress=False)
        assert r["confusion"] == adapted["regions"][region]["confusion"]
    assert plain["confusion"] != adapted["confusion"]


def test_torch_models_refuses_other_backends():
    class Onnx:
        preprocessing = None

    with pytest.raises(FloodwatchError, match="torch back-end"):
        torch_models(Onnx())
