"""MixStyle: the re-styling against numpy's statistics; hooks that act only while training; the trainer's use."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from floodwatch.config import spec_from_dict
from floodwatch.errors import InvalidArgumentError, SpecError
from floodwatch.models import build_model
from floodwatch.training import distributed as dist_util
from floodwatch.training.loop import Trainer
from floodwatch.training.mixstyle import MixStyle, mix_styles


def _stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a.mean(axis=(2, 3)), a.std(axis=(2, 3))  # the population's, as mix_styles takes


def test_mix_styles_gives_each_chip_the_mixed_statistics_numpy_computes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 9, 7)) * rng.uniform(0.5, 3, size=(4, 3, 1, 1)) + rng.normal(size=(4, 3, 1, 1)) * 5
    lam = np.array([0.0, 1.0, 0.3, 0.8])
    perm = np.array([2, 0, 3, 1])
    out = mix_styles(torch.tensor(x, dtype=torch.float32), torch.tensor(lam), torch.tensor(perm)).double().numpy()
    mu, sig = _stats(x)
    want_mu = lam[:, None] * mu + (1 - lam[:, None]) * mu[perm]
    want_sig = lam[:, None] * sig + (1 - lam[:, None]) * sig[perm]
    got_mu, got_sig = _stats(out)
    np.testing.assert_allclose(got_mu, want_mu, atol=1e-4)
    np.testing.assert_allclose(got_sig, want_sig, rtol=1e-4)
    # the content (each chip's normalised pattern) is kept
    norm = lambda a: (a - _stats(a)[0][..., None, None]) / _stats(a)[1][..., None, None]  # noqa: E731
    np.testing.assert_allclose(norm(out), norm(x), atol=1e-4)
    np.testing.assert_allclose(out[1], x[1], rtol=1e-5, atol=1e-5)  # lam 1: the chip's own style


def test_a_one_pixel_map_stays_finite():
    # a deep layer of a small crop: no unbiased variance there (it gave NaN)
    out = mix_styles(torch.randn(3, 4, 1, 1), torch.full((3,), 0.5), torch.tensor([1, 2, 0]))
    assert torch.isfinite(out).all()


def test_the_statistics_carry_no_gradient():
    x = torch.randn(3, 2, 5, 5, requires_grad=True)
    y = mix_styles(x, torch.ones(3), torch.tensor([1, 2, 0]))
    y.sum().backward()
    # with lam 1 and the statistics detached, y = (x - mu) / sig * sig + mu: the gradient is 1 everywhere
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_hooks_restyle_only_while_training_and_detach_cleanly():
    torch.manual_seed(0)
    model = build_model(num_layers=10, in_channels=2, use_batch_norm=False)  # no running statistics to move
    x = torch.randn(4, 2, 64, 64)
    model.eval()
    plain = model(x)
    ms = MixStyle(probability=1.0, alpha=0.1, seed=3).attach(model)
    torch.testing.assert_close(model(x), plain)  # eval: the plain network
    assert ms.mixed == 0
    model.train()
    restyled = model(x)
    assert ms.mixed == 2  # layer1 and layer2
    ms.detach()
    model.eval()
    torch.testing.assert_close(model(x), plain)
    assert not torch.allclose(restyled, model.train()(x))


def test_probability_zero_never_restyles_and_the_stream_is_seeded():
    model = build_model(num_layers=10, in_channels=2).train()
    ms = MixStyle(probability=0.0, seed=1).attach(model)
    model(torch.randn(2, 2, 32, 32))
    assert ms.mixed == 0
    a, b = MixStyle(seed=5), MixStyle(seed=5)
    assert a.rng.random() == b.rng.random()
    b.manual_seed(6)
    assert a.manual_seed(6).rng.random() == b.rng.random()


@pytest.mark.parametrize("kwargs, field", [({"probability": 1.5}, "probability"), ({"alpha": 0}, "alpha"),
                                           ({"layers": ["layer5"]}, "layers"), ({"layers": []}, "layers")])
def test_bad_settings_are_refused_by_name(kwargs, field, make_spec, synth_root):
    with pytest.raises(InvalidArgumentError, match=f"mixstyle.{field}"):
        MixStyle(**{"probability": 0.5, "alpha": 0.1, "layers": ["layer1"], **kwargs})
    spec = make_spec(synth_root, epochs=1)
    spec["training_config"]["mixstyle"] = kwargs
    with pytest.raises(SpecError, match=f"mixstyle.{field}"):
        spec_from_dict(spec)


def test_the_trainer_restyles_training_batches_only(tmp_path, synth_root, make_spec):
    """Not validation, and not the re-estimation of BatchNorm's statistics after each epoch (train-mode passes
    whose statistics the saved model keeps: they must describe the features inference sees)."""
    spec = make_spec(synth_root, epochs=1)
    spec["training_config"]["mixstyle"] = {"probability": 1.0, "layers": ["layer1"]}
    spec["model_config"]["use_batch_norm"] = True
    trainer = Trainer(spec_from_dict(spec), tmp_path / "run", dist_util.init(0, 1, 0), progress=False)
    trainer.fit()
    assert trainer.mixstyle.mixed == len(trainer.train_loader)  # one hook, every training batch, nothing else


@pytest.mark.slow
def test_resume_after_a_kill_equals_the_uninterrupted_run_with_mixstyle(tmp_path, synth_root, make_spec,
                                                                         kill_in_epoch_2):
    """The re-styling draws from its own stream, re-seeded each epoch: a resumed run draws what the
    uninterrupted one drew."""
    from floodwatch.models.checkpoint import read_checkpoint
    from floodwatch.training import train

    spec = spec_from_dict(make_spec(synth_root, mixstyle={"probability": 0.5, "layers": ["layer1", "layer2"]}))
    train(spec, tmp_path, name="whole", progress=False)
    revive = kill_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        train(spec, tmp_path, name="killed", progress=False)
    revive()
    train(spec, tmp_path, name="killed", resume=True, progress=False)
    a = read_checkpoint(tmp_path / "whole" / "last.pt")["model_state"]
    b = read_checkpoint(tmp_path / "killed" / "last.pt")["model_state"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
