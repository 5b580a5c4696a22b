"""Training runs on tiny synthetic data: learning, checkpoints, resume after a kill, DDP == one process."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

from floodwatch.config import load_spec, save_spec, spec_from_dict
from floodwatch.errors import SpecError
from floodwatch.data.preprocess import DEFAULT_CLIP
from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.models.checkpoint import load_model, read_checkpoint
from floodwatch.training import train
from floodwatch.training.data import load_samples
from floodwatch.models import build_model, model_from_config
from floodwatch.training import distributed as dist_util
from floodwatch.training.loop import (PRECISE_BN_BATCHES, Trainer, _initialise, autocast_dtype, check_resume_spec,
                                     seed_everything, spec_as_trained)


@pytest.fixture(scope="module")
def full_run(synth_root, tmp_path_factory, make_spec):
    spec = spec_from_dict(make_spec(synth_root, loss="cross_dice_sum", regularizer={"type": "L2", "weight": 1e-5},
                                    lr_scheduler="cosine"))
    out = tmp_path_factory.mktemp("runs")
    return spec, out, train(spec, out, name="full", progress=False)


def _weights(path):
    return read_checkpoint(path)["model_state"]


def test_two_epochs_learn_and_write_everything(full_run):
    spec, out, result = full_run
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2]
    assert h[1]["train_loss"] < h[0]["train_loss"]
    run = out / "full"
    for name in ("best.pt", "last.pt", "epoch_001.pt", "epoch_002.pt", "metrics.csv", "spec.yaml"):
        assert (run / name).is_file(), name
    # the learning curve as a picture, as the demo's report shows it (only TensorBoard events before)
    with Image.open(run / "learning_curve.png") as im:
        assert im.format == "PNG" and np.asarray(im.convert("L")).std() > 10
    assert list(run.glob("events.out.tfevents.*"))
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train_loss"]) for r in rows] == pytest.approx([r["train_loss"] for r in h], rel=1e-8)
    # best.pt is the epoch with the highest validation water IoU
    best_epoch = max(h, key=lambda r: r["water_iou"])["epoch"]
    model, meta = load_model(run / "best.pt")
    assert meta["epoch"] == best_epoch
    assert meta["model_config"]["num_layers"] == 10 and meta["spec"]["training_config"]["loss"] == "cross_dice_sum"
    assert {c["name"] for c in meta["class_map"]} == {"notflood", "flood"}
    assert "optimizer_state" not in meta  # best.pt is for deployment; resuming reads last.pt
    assert "optimizer_state" in load_model(run / "last.pt")[1] and "scheduler_state" in load_model(run / "last.pt")[1]
    # the cosine schedule moved the learning rate after epoch 1
    assert h[1]["lr"] < h[0]["lr"]
    # no writes left half-done
    assert not list(run.glob(".*.part*"))


def _checkpoint_files(run):
    return sorted(p.name for p in run.glob("*.pt"))


def test_default_keeps_best_only_and_a_killed_run_still_resumes(full_run, tmp_path, monkeypatch, synth_root,
                                                                 make_spec, kill_in_epoch_2):
    spec_dict = make_spec(synth_root, loss="cross_dice_sum", regularizer={"type": "L2", "weight": 1e-5},
                          lr_scheduler="cosine")
    del spec_dict["training_config"]["checkpoints"]  # the default
    spec = spec_from_dict(spec_dict)
    assert spec.training_config.checkpoints == "best"
    revive = kill_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        train(spec, tmp_path, name="run", progress=False)
    assert _checkpoint_files(tmp_path / "run") == ["best.pt", "last.pt"]  # last.pt: what resume needs
    revive()
    resumed = train(spec, tmp_path, name="run", resume=True, progress=False)
    assert _checkpoint_files(tmp_path / "run") == ["best.pt"] and resumed.last_checkpoint is None
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    # the same weights as the run that kept every checkpoint, wherever best.pt landed
    best_epoch = max(resumed.history, key=lambda r: r["water_iou"])["epoch"]
    a, b = _weights(full_run[1] / "full" / f"epoch_{best_epoch:03d}.pt"), _weights(tmp_path / "run" / "best.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    # resuming a finished run trains nothing and keeps its history
    monkeypatch.setattr(Trainer, "_train_epoch", lambda *a: pytest.fail("a finished run trained again"))
    again = train(spec, tmp_path, name="run", resume=True, progress=False)
    assert [r["epoch"] for r in again.history] == [1, 2] and _checkpoint_files(tmp_path / "run") == ["best.pt"]


def test_checkpoints_last_keeps_last_but_no_epoch_files(tmp_path, synth_root, make_spec):
    spec = spec_from_dict(make_spec(synth_root, epochs=1, checkpoints="last"))
    result = train(spec, tmp_path, name="run", progress=False)
    assert _checkpoint_files(tmp_path / "run") == ["best.pt", "last.pt"]
    assert result.last_checkpoint == tmp_path / "run" / "last.pt"


def test_preprocessing_is_fitted_on_the_training_chips(full_run):
    spec, out, _ = full_run
    prep = read_checkpoint(out / "full" / "last.pt")["preprocessing"]
    train_chips = load_samples(spec)["train"]
    vv = np.concatenate([np.clip(s.image[0][s.valid], *DEFAULT_CLIP) for s in train_chips])
    assert prep["offset"][0] == pytest.approx(float(vv.mean()), abs=1e-3)
    assert 1 / prep["scale"][0] == pytest.approx(float(vv.std()), rel=1e-3)


def test_training_seed_leaves_the_split_alone(synth_root, make_spec):
    def split_ids(split=None, **training):
        spec = make_spec(synth_root, **training)
        if split is not None:
            spec["dataset_config"]["split"]["seed"] = split
        return {k: sorted(s.id for s in v) for k, v in load_samples(spec_from_dict(spec), progress=False).items()}

    # a seed ensemble: every member must hold out the same chips
    assert split_ids(random_seed=1) == split_ids(random_seed=2)
    assert split_ids(split=1) != split_ids(split=2)  # the split's own seed still draws it


@pytest.mark.slow
def test_resume_after_a_kill_equals_the_uninterrupted_run(full_run, kill_in_epoch_2):
    spec, out, result = full_run
    revive = kill_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        train(spec, out, name="killed", progress=False)
    assert read_checkpoint(out / "killed" / "last.pt")["epoch"] == 1
    revive()
    resumed = train(spec, out, name="killed", resume=True, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    a, b = _weights(out / "full" / "last.pt"), _weights(out / "killed" / "last.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert resumed.history[1]["train_loss"] == pytest.approx(result.history[1]["train_loss"], rel=1e-6)


def test_fine_tuning_takes_the_checkpoint_model(full_run, make_spec):
    spec, out, result = full_run
    other = make_spec(spec.dataset_config.data_root, epochs=1)
    other["model_config"]["num_layers"] = 18  # ignored: the checkpoint's architecture wins
    tuned = train(spec_from_dict(other), out, name="tuned", pretrained=result.best_checkpoint, progress=False)
    meta = read_checkpoint(tuned.last_checkpoint)
    assert meta["model_config"]["num_layers"] == 10
    assert meta["preprocessing"] == read_checkpoint(result.best_checkpoint)["preprocessing"]
    # the run's record says what trained: training again from its spec.yaml builds the checkpoint's network
    recorded = load_spec(out / "tuned" / "spec.yaml")
    assert recorded.model.num_layers == 10 and recorded.model.build_kwargs() == spec.model.build_kwargs()
    assert recorded.training_config.epochs == 1  # the rest is the spec's
    assert meta["spec"]["model_config"]["num_layers"] == 10  # the checkpoint's own record agrees
    # ... and resuming with the spec and checkpoint it was started with is not taken for another spec, nor is
    # a run that recorded the spec's model (as runs did before)
    again = train(spec_from_dict(other), out, name="tuned", pretrained=result.best_checkpoint, resume=True,
                  progress=False)
    assert [r["epoch"] for r in again.history] == [1]
    # without the checkpoint the model differs from the run's, and the refusal says where it came from
    with pytest.raises(SpecError, match=r"num_layers \(10 -> 18\).*give it again: `pretrained`"):
        check_resume_spec(spec_from_dict(other), out / "tuned")
    save_spec(spec_from_dict(other), out / "tuned" / "spec.yaml")
    assert train(spec_from_dict(other), out, name="tuned", pretrained=result.best_checkpoint, resume=True,
                 progress=False).history


def test_a_checkpoint_model_without_some_keys_is_recorded_as_it_was_built(make_spec, synth_root):
    # load_model builds what a checkpoint leaves out with build_model's defaults, not with the spec's
    d = make_spec(synth_root)
    d["model_config"].update(num_layers=34, all_projections=True)
    recorded = spec_as_trained(spec_from_dict(d), {"in_channels": 2}).model
    built = model_from_config({"in_channels": 2})
    assert (recorded.num_layers, recorded.all_projections) == (18, False)
    assert sum(p.numel() for p in build_model(**recorded.build_kwargs()).parameters()) == \
        sum(p.numel() for p in built.parameters())


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process(synth_root, tmp_path, make_spec):
    # 2 gloo processes x batch 1 == 1 process x batch 2 (same global batches, loss normalised globally).
    # A large Adam epsilon makes the update proportional to the gradient: with the usual 1e-8 a gradient
    # that is ~0 moves its weight by +-lr on the sign of rounding noise, which no tolerance can absorb.
    adam = {"adam": {"epsilon": 1.0}}
    one = train(spec_from_dict(make_spec(synth_root, epochs=1, batch_size=2, optimizer=adam, learning_rate=0.05)),
                tmp_path, name="one", progress=False)
    two = train(spec_from_dict(make_spec(synth_root, epochs=1, batch_size=1, optimizer=adam, learning_rate=0.05)),
                tmp_path, name="two", gpus=2, progress=False)
    a, b = _weights(one.last_checkpoint), _weights(two.last_checkpoint)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)
    # ... and training did move the weights well beyond that tolerance
    seed_everything(7)
    init = model_from_config(read_checkpoint(one.last_checkpoint)["model_config"])  # it records temporal too
    _initialise(init, "HE_NORMAL")
    assert max(float((init.state_dict()[k] - a[k]).abs().max()) for k in a) > 1e-3
    assert two.history[0]["water_iou"] == pytest.approx(one.history[0]["water_iou"], abs=1e-6)
    assert two.history[0]["train_loss"] == pytest.approx(one.history[0]["train_loss"], rel=1e-5)


def test_batchnorm_statistics_describe_the_final_weights(tmp_path, synth_root, make_spec):
    """After an epoch the running mean of the first BatchNorm is the mean of its input over the epoch's
    (un-augmented) training crops under the final weights, not a momentum average over older weights."""
    spec_dict = make_spec(synth_root, epochs=1)
    spec_dict["model_config"]["use_batch_norm"] = True
    trainer = Trainer(spec_from_dict(spec_dict), tmp_path / "run", dist_util.init(0, 1, 0), progress=False)
    trainer.fit()
    bn = trainer.model.encoder.bn1  # its input (conv1's output) depends on no BatchNorm statistics
    means = []
    hook = bn.register_forward_hook(lambda m, inputs, out: means.append(inputs[0].double().mean(dim=(0, 2, 3))))
    trainer.model.eval()
    with torch.no_grad():
        for image, *_ in trainer.train_loader:  # the same crops, in the same order, as the epoch's
            trainer.model(image)
    hook.remove()
    expected = torch.stack(means[:PRECISE_BN_BATCHES]).mean(0)  # batches weigh equally, as BatchNorm does
    torch.testing.assert_close(bn.running_mean.double(), expected, rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1  # training's own momentum is back


@pytest.mark.parametrize("precision, device, expected", [
    ("auto", "cpu", None), ("auto", "cuda", torch.float16), ("float32", "cuda", None),
    ("bfloat16", "cpu", torch.bfloat16), ("bfloat16", "cuda", torch.bfloat16)])
def test_training_precision_picks_the_autocast_dtype(precision, device, expected):
    assert autocast_dtype(precision, torch.device(device)) is expected


def test_bfloat16_training_computes_in_bfloat16_and_keeps_float32_weights(tmp_path, synth_root, make_spec):
    spec_dict = make_spec(synth_root, epochs=1, precision="bfloat16")
    spec_dict["model_config"]["use_batch_norm"] = True
    trainer = Trainer(spec_from_dict(spec_dict), tmp_path / "run", dist_util.init(0, 1, 0), progress=False)
    image, *_ = next(iter(trainer.train_loader))
    trainer.model.eval()
    with torch.no_grad():
        reference = trainer.model(image)  # float32, the same weights
        with trainer._autocast():
            low = trainer.model(image)
    assert low.dtype == torch.bfloat16
    # bfloat16 keeps 8 bits of mantissa: logits agree to a few parts in a hundred, not exactly
    torch.testing.assert_close(low.float(), reference, rtol=0.05, atol=0.05 * float(reference.abs().max()))
    assert not torch.equal(low.float(), reference)

    seen = []
    hook = trainer.model.encoder.conv1.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    trainer.fit()
    hook.remove()
    assert set(seen) == {torch.bfloat16}  # every training, recalibration and validation forward pass
    assert math.isfinite(trainer.history[0]["train_loss"])
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    state = _weights(tmp_path / "run" / "best.pt")
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point())


@pytest.mark.parametrize("epoch", [1, 2])
def test_a_diverging_run_stops_before_saving_non_finite_weights(epoch, tmp_path, synth_root, make_spec,
                                                                 monkeypatch):
    from floodwatch.errors import FloodwatchError
    from floodwatch.training.loop import read_metrics

    spec = spec_from_dict(make_spec(synth_root, epochs=3))  # checkpoints: all
    original = Trainer._train_epoch

    def far_too_fast_from(self, e, *args):
        if e == epoch:  # as a learning rate of 1e9 would do (the spec refuses it)
            for group in self.optimizer.param_groups:
                group["lr"] = 1e9
        return original(self, e, *args)

    monkeypatch.setattr(Trainer, "_train_epoch", far_too_fast_from)
    with pytest.raises(FloodwatchError, match=f"training diverged in epoch {epoch} .*training_config.learning_rate"):
        train(spec, tmp_path, name="run", progress=False)
    run = tmp_path / "run"
    if epoch == 1:  # nothing worth keeping: no run folder either
        assert not run.exists()
        return
    # the epochs before stay, finite; nothing of the diverged epoch was written
    assert _checkpoint_files(run) == ["best.pt", "epoch_001.pt", "last.pt"]
    assert [r["epoch"] for r in read_metrics(run / "metrics.csv")] == [1]
    for name in ("best.pt", "last.pt"):
        state = read_checkpoint(run / name)
        assert state["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in state["model_state"].values() if v.is_floating_point())


def test_resume_takes_only_the_spec_the_run_started_with(full_run, tmp_path, monkeypatch):
    import shutil

    from floodwatch.errors import SpecError

    spec, out, _ = full_run
    run = shutil.copytree(out / "full", tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    shorter = spec.model_copy(deep=True)
    shorter.training_config.epochs = 1
    with pytest.raises(SpecError, match=r"resume: .*spec\.yaml\) in training_config\.epochs \(2 -> 1\)"):
        train(shorter, tmp_path, name="run", resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # last.pt and spec.yaml untouched
    # what changes no weight may differ: here the run is finished, so nothing trains
    chattier = spec.model_copy(deep=True)
    chattier.training_config.log_summary_steps = 5
    monkeypatch.setattr(Trainer, "_train_epoch", lambda *a: pytest.fail("a finished run trained again"))
    assert [r["epoch"] for r in train(chattier, tmp_path, name="run", resume=True, progress=False).history] == [1, 2]


def test_ignore_boundary_px_reaches_the_training_loss_not_validation(tmp_path, synth_root, make_spec):
    from floodwatch.training.losses import ignore_boundaries

    spec_dict = make_spec(synth_root, epochs=1)
    spec_dict["training_config"]["ignore_boundary_px"] = 2
    trainer = Trainer(spec_from_dict(spec_dict), tmp_path / "run", dist_util.init(0, 1, 0), progress=False)
    seen = []
    loss = trainer.loss_fn
    trainer.loss_fn = lambda logits, mask: (seen.append((logits.requires_grad, mask.clone())), loss(logits, mask))[1]
    trainer.fit()
    trained = [m for grad, m in seen if grad]
    scored = [m for grad, m in seen if not grad]
    assert trained and scored
    for m in trained:  # no labelled pixel left near both classes
        torch.testing.assert_close(ignore_boundaries(m, 2), m)
    assert any((ignore_boundaries(m, 2) == IGNORE_INDEX).sum() > (m == IGNORE_INDEX).sum() for m in scored)


def test_a_spec_object_gets_the_data_checks_a_spec_file_gets(tmp_path, make_spec):
    """A missing data_root was named by the reader alone ("LayoutError .../none: folder not found"), since the
    checks ran for a spec file only: the field is named either way, before any run folder is made."""
    from floodwatch.config import SpecProblems

    spec = spec_from_dict(make_spec(tmp_path / "none"))
    with pytest.raises(SpecProblems, match=r"^dataset_config\.data_root: .*none: folder not found"):
        train(spec, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()
