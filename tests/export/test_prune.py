import pytest
import torch

from floodwatch.errors import ExportError, FloodwatchError
from floodwatch.export.prune import _groups, prune_checkpoint, prune_model
from floodwatch.models import build_model
from floodwatch.models.checkpoint import load_model, read_checkpoint


def test_removing_dead_filters_is_exact_and_removing_live_ones_is_not():
    """Channels whose BN gamma and beta are zero output exactly 0 after ReLU: pruning exactly those must
    leave the logits unchanged, which checks every weight slice (producer rows, BN, consumer columns)."""
    torch.manual_seed(0)
    model = build_model(num_layers=10, in_channels=2).eval()
    mods = dict(model.named_modules())
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.1, 0.1)
    for g in _groups(model):
        bn = mods[g["bn"]]
        dead = torch.randperm(bn.weight.shape[0])[: bn.weight.shape[0] // 2]
        bn.weight.data[dead] = 0.0
        bn.bias.data[dead] = 0.0
    x = torch.randn(2, 2, 32, 48)
    half, cfg, _ = prune_model(model, {"num_layers": 10, "in_channels": 2}, ratio=0.5, min_filters=4)
    quarter, _, _ = prune_model(model, {"num_layers": 10, "in_channels": 2}, ratio=0.75, min_filters=4, multiple_of=1)
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(half(x), ref, atol=1e-5)
        assert not torch.allclose(quarter(x), ref, atol=1e-3)
    assert build_model(**cfg).state_dict().keys() == half.state_dict().keys()


def test_kept_widths_round_up_to_the_multiple():
    model = build_model(num_layers=10, in_channels=2).eval()
    _, _, exact = prune_model(model, {"num_layers": 10, "in_channels": 2}, ratio=0.8, min_filters=1, multiple_of=1)
    _, cfg, rounded = prune_model(model, {"num_layers": 10, "in_channels": 2}, ratio=0.8, min_filters=1, multiple_of=8)
    for name, (before, after) in rounded.items():
        assert after % 8 == 0 and exact[name][1] <= after < exact[name][1] + 8 and after <= before, name
    assert any(exact[n][1] % 8 for n in exact)  # the rounding did something
    assert build_model(**cfg).eval()(torch.zeros(1, 2, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ExportError, match="multiple_of"):
        prune_model(model, {"num_layers": 10, "in_channels": 2}, ratio=0.5, multiple_of=0)


def test_half_ratio_halves_channels_and_fine_tuning_recovers(tmp_path, trained_ckpt, train_data, trainer):
    train_steps, mean_loss, recalibrate_batchnorm = trainer
    out = tmp_path / "pruned.pt"
    report = prune_checkpoint(trained_ckpt, out, ratio=0.5, min_filters=8)
    for name, (before, after) in report["layers"].items():
        assert after == max(8, before // 2), name
    assert report["params_ratio"] < 0.6 and report["macs_ratio"] < 0.6
    small, meta = load_model(out)  # model_config alone rebuilds the smaller net
    assert meta["model_config"]["widths"]["encoder.layer4.0.conv1"] == 256
    assert read_checkpoint(out)["pruning"]["ratio"] == 0.5
    assert small.decoder[4].conv2[0].out_channels == 8 and small.head.in_channels == 8
    x, y = train_data
    big, _ = load_model(trained_ckpt)
    loss_trained, loss_pruned = mean_loss(big, x, y), mean_loss(small, x, y)
    train_steps(small, x, y, steps=30, seed=5)
    recalibrate_batchnorm(small, x)
    loss_tuned = mean_loss(small, x, y)
    # The fixture is converged (loss ~0.02 on every BLAS build and thread count seen); halving every layer
    # costs 0.6-0.9 and 30 steps win nearly all of it back (~0.04), so the margins below are wide.
    assert loss_pruned > loss_trained + 0.2  # pruning costs something...
    assert loss_tuned < loss_trained + 0.25 * (loss_pruned - loss_trained)  # ...and fine-tuning wins it back


def test_threshold_l2_and_bad_arguments(tmp_path, trained_ckpt):
    report = prune_checkpoint(trained_ckpt, tmp_path / "t.pt", norm_threshold=1.0, min_filters=8, norm="l2")
    assert all(after == min(8, before) for before, after in report["layers"].values())
    for kwargs in ({}, {"ratio": 0.5, "norm_threshold": 0.1}, {"ratio": 1.0}, {"ratio": 0.5, "norm": "l3"}):
        with pytest.raises(ExportError):
            prune_checkpoint(trained_ckpt, tmp_path / "bad.pt", **kwargs)
    assert not (tmp_path / "bad.pt").exists()
    with pytest.raises(FloodwatchError, match="widths"):
        build_model(num_layers=10, widths={"encoder.layer1.0.conv2": 8})  # a residual output: not prunable


def test_pruned_checkpoint_does_not_claim_its_source_metrics(tmp_path, trained_ckpt):
    """The source's validation IoU is not the pruned net's (unpruned 0.80, pruned 0.0001 on Sen1Floods11 for the
    default model before fine-tuning): what reads `metrics` (the ONNX metadata, semi-supervised round 0) must not
    find it there, and the source's numbers stay readable under `pruning`."""
    from floodwatch.models.checkpoint import save_checkpoint

    model, meta = load_model(trained_ckpt)
    source = save_checkpoint(tmp_path / "scored.pt", model, model_config=meta["model_config"],
                             preprocessing=meta["preprocessing_obj"], epoch=3, metrics={"water_iou": 0.9})
    out = prune_checkpoint(source, tmp_path / "pruned.pt", ratio=0.5)["checkpoint"]
    state = read_checkpoint(out)
    assert "water_iou" not in state["metrics"]
    assert state["pruning"]["source_metrics"] == {"water_iou": 0.9}
