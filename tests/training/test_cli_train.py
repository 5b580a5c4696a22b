"""`floodwatch train` on bad input: one line on stderr, exit 2, no traceback (run in-process: fast)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from floodwatch.cli.main import main


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    err = capsys.readouterr().err.strip()
    return exc.value.code, err


def _spec_file(tmp_path, spec: dict):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def _assert_one_line(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 0, err
    for n in needles:
        assert n in err, err


def test_missing_spec(capsys, tmp_path):
    _assert_one_line(*_run(capsys, "train", "-e", str(tmp_path / "nope.yaml"), "-r", str(tmp_path)), "nope.yaml",
                     "not found")


def test_bad_field(capsys, tmp_path, synth_root, make_spec):
    spec = make_spec(synth_root)
    spec["training_config"]["batch_size"] = -1
    _assert_one_line(*_run(capsys, "train", "-e", str(_spec_file(tmp_path, spec)), "-r", str(tmp_path)),
                     "training_config.batch_size")


def test_missing_data_folder(capsys, tmp_path, synth_root, make_spec):
    spec = make_spec(tmp_path / "no_such_data")
    _assert_one_line(*_run(capsys, "train", "-e", str(_spec_file(tmp_path, spec)), "-r", str(tmp_path)),
                     "no_such_data")


def test_pretrained_that_is_not_a_checkpoint(capsys, tmp_path, synth_root, make_spec):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"this is not a torch file")
    spec = _spec_file(tmp_path, make_spec(synth_root))
    _assert_one_line(*_run(capsys, "train", "-e", str(spec), "-r", str(tmp_path), "-m", str(junk)), "weights.pt")
    assert not (tmp_path / "model" / "last.pt").exists()


def test_pretrained_that_is_no_model_fails_before_the_data_are_read(capsys, tmp_path, monkeypatch, synth_root,
                                                                     make_spec):
    import torch

    def read_chips(*args, **kwargs):
        raise AssertionError("the chips were read")

    monkeypatch.setattr("floodwatch.training.loop.load_samples", read_chips)
    spec = _spec_file(tmp_path, make_spec(synth_root))
    junk, not_resnet = tmp_path / "junk.pt", tmp_path / "not_resnet.pt"
    junk.write_bytes(b"this is not a torch file")
    torch.save({"fc.weight": torch.zeros(2, 2)}, not_resnet)
    for weights, why in ((junk, "not a torch file"), (not_resnet, "conv1.weight")):
        _assert_one_line(*_run(capsys, "train", "-e", str(spec), "-r", str(tmp_path), "-m", str(weights)),
                         f"{weights}", why)
    assert not (tmp_path / "model").exists()


def test_channels_that_do_not_fit_the_model(capsys, tmp_path, synth_root, make_spec):
    spec = make_spec(synth_root)
    spec["model_config"]["model_input_channels"] = 3  # the data give VV, VH
    _assert_one_line(*_run(capsys, "train", "-e", str(_spec_file(tmp_path, spec)), "-r", str(tmp_path)),
                     "model_config.model_input_channels", "3 input channels", "give 2")


def test_seed_option_trains_as_the_spec_seed_would(capsys, tmp_path, synth_root, make_spec):
    import torch

    def weights(name, spec_seed, *flag):
        spec = make_spec(synth_root, epochs=1, random_seed=spec_seed)
        code, err = _run(capsys, "train", "-e", str(_spec_file(tmp_path, spec)), "-r", str(tmp_path), "-n", name,
                         "-q", *flag)
        assert code == 0, err
        saved = yaml.safe_load((tmp_path / name / "spec.yaml").read_text())
        return saved["training_config"]["random_seed"], torch.load(tmp_path / name / "last.pt",
                                                                   weights_only=True)["model_state"]

    seed, by_flag = weights("flag", 7, "--seed", "5")
    assert seed == 5
    _, by_spec = weights("spec", 5)
    _, other = weights("other", 7)
    assert all(torch.equal(by_flag[k], by_spec[k]) for k in by_spec)
    assert not all(torch.equal(by_flag[k], other[k]) for k in other)


def test_overwrite_replaces_a_run(capsys, tmp_path, synth_root, make_spec):
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))  # checkpoints: all
    argv = ("train", "-e", str(spec), "-r", str(tmp_path / "runs"), "-n", "run", "-q")
    assert _run(capsys, *argv)[0] == 0
    _assert_one_line(*_run(capsys, *argv), "--name", "already holds a training run", "--overwrite")
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1, checkpoints="best"))
    assert _run(capsys, *argv, "--overwrite")[0] == 0
    run = tmp_path / "runs" / "run"
    # nothing of the first run is left beside the second: its epoch_001.pt, last.pt and TensorBoard events
    assert sorted(p.name for p in run.glob("*.pt")) == ["best.pt"] and len(list(run.glob("events.*"))) == 1
    # what is not a run's stays: a folder merely called round_..., and a spec or model inside the run is refused
    (run / "round_trip_photos").mkdir()
    (run / "round_trip_photos" / "img.jpg").write_bytes(b"jpeg")
    inside = run / "my_spec.yaml"
    inside.write_text(spec.read_text())
    _assert_one_line(*_run(capsys, "train", "-e", str(inside), "-r", str(tmp_path / "runs"), "-n", "run", "-q",
                           "--overwrite"), "lies in the run")
    assert (run / "best.pt").is_file() and inside.is_file()
    assert _run(capsys, *argv, "--overwrite")[0] == 0
    assert (run / "round_trip_photos" / "img.jpg").is_file()


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", ["data", "interrupt", "diverged"])
def test_an_overwrite_that_fails_before_saving_keeps_the_old_run(failure, capsys, tmp_path, monkeypatch, synth_root,
                                                                  make_spec):
    from floodwatch.errors import DataError
    from floodwatch.training.loop import Trainer

    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))
    runs = tmp_path / "runs"
    argv = ("train", "-e", str(spec), "-r", str(runs), "-n", "run", "-q", "--overwrite")
    assert _run(capsys, *argv[:-1])[0] == 0
    (runs / "run" / "notes.txt").write_text("mine")
    before = _files(runs)
    original = Trainer._train_epoch

    def fail(self, epoch, *args):
        if failure == "interrupt":  # Ctrl-C in the first step
            raise KeyboardInterrupt
        for group in self.optimizer.param_groups:  # as a learning rate of 1e9 would do
            group["lr"] = 1e9
        return original(self, epoch, *args)

    def unreadable(*args, **kwargs):
        raise DataError("chip_3.tif: cannot read")

    if failure == "data":
        monkeypatch.setattr("floodwatch.training.loop.load_samples", unreadable)
    else:
        monkeypatch.setattr(Trainer, "_train_epoch", fail)
    code, err = _run(capsys, *argv)
    assert code == (130 if failure == "interrupt" else 2), err
    # the old run, byte for byte, and no set-aside or temporary folder beside it
    assert _files(runs) == before
    monkeypatch.undo()
    assert _run(capsys, *argv)[0] == 0
    after = _files(runs)
    assert sorted(p.name for p in runs.iterdir()) == ["run"]
    assert after["run/notes.txt"] == b"mine"
    assert after["run/best.pt"] != before["run/best.pt"]
    assert len(list((runs / "run").glob("events.*"))) == 1


def test_an_overwrite_drops_the_old_run_at_its_first_checkpoint(capsys, tmp_path, monkeypatch, synth_root,
                                                                 make_spec):
    from floodwatch.models.checkpoint import read_checkpoint
    from floodwatch.training.loop import Trainer

    runs = tmp_path / "runs"
    argv = ("-r", str(runs), "-n", "run", "-q")
    assert _run(capsys, "train", "-e", str(_spec_file(tmp_path, make_spec(synth_root, epochs=1))), *argv)[0] == 0
    seen = []
    original = Trainer._train_epoch

    def killed_in_epoch_2(self, epoch, *args):
        seen.append((runs / "run" / ".overwritten" / "best.pt").is_file())
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(Trainer, "_train_epoch", killed_in_epoch_2)
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=2, random_seed=8))
    assert _run(capsys, "train", "-e", str(spec), *argv, "--overwrite")[0] == 130
    # epoch 1 trains beside the old run, set aside; epoch 2 after it is gone. The new one's epoch 1 stays, to resume
    assert seen == [True, False]
    assert sorted(p.name for p in runs.iterdir()) == ["run"] and not (runs / "run" / ".overwritten").exists()
    assert read_checkpoint(runs / "run" / "last.pt")["spec"]["training_config"]["random_seed"] == 8
    monkeypatch.undo()
    assert _run(capsys, "train", "-e", str(spec), *argv, "--resume")[0] == 0


def test_an_overwrite_killed_before_saving_is_put_back_by_the_next_train(capsys, tmp_path, monkeypatch, synth_root,
                                                                         make_spec):
    from floodwatch.training import api
    from floodwatch.training.loop import Trainer

    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))
    runs = tmp_path / "runs"
    argv = ("train", "-e", str(spec), "-r", str(runs), "-n", "run", "-q")
    assert _run(capsys, *argv)[0] == 0
    before = _files(runs)

    def killed(self, epoch, *args):
        raise KeyboardInterrupt

    # SIGKILL in the first epoch: no clean-up runs, and the process is gone afterwards (its lock with it)
    monkeypatch.setattr(Trainer, "_train_epoch", killed)
    monkeypatch.setattr(api, "_settle", lambda out, aside, lock: os.close(lock))
    assert _run(capsys, *argv, "--overwrite")[0] == 130
    assert _files(runs) != before
    monkeypatch.undo()
    code, err = _run(capsys, *argv)
    assert code == 2 and "already holds a training run" in err.splitlines()[-1], err
    assert _files(runs) == before


def _set_aside_by_hand(runs):
    """The old run's entries in run/.overwritten, as an `overwrite` leaves them while its new run trains."""
    run = runs / "run"
    (run / ".overwritten").mkdir()
    for entry in list(run.iterdir()):
        if entry.name != ".overwritten":
            entry.rename(run / ".overwritten" / entry.name)
    return run / ".overwritten"


def test_an_overwrite_put_back_killed_halfway_is_finished_by_the_next_train(capsys, tmp_path, synth_root, make_spec):
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))  # checkpoints: all
    runs = tmp_path / "runs"
    argv = ("train", "-e", str(spec), "-r", str(runs), "-n", "run", "-q")
    assert _run(capsys, *argv)[0] == 0
    before = _files(runs)
    # killed putting the old run back: the new run's files gone, the marker written, best.pt back (first of all)
    aside = _set_aside_by_hand(runs)
    (aside / "PUTTING_BACK").touch()
    (aside / "best.pt").rename(runs / "run" / "best.pt")
    code, err = _run(capsys, *argv)
    assert code == 2 and "already holds a training run" in err.splitlines()[-1], err
    assert "is back" in err
    assert _files(runs) == before


def test_an_overwrite_needs_no_write_access_to_the_results_folder(capsys, tmp_path, synth_root, make_spec):
    # as a run folder mounted into a container (-v /data/run:/results/model): it cannot be renamed
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))
    runs = tmp_path / "runs"
    argv = ("train", "-e", str(spec), "-r", str(runs), "-n", "run", "-q")
    assert _run(capsys, *argv)[0] == 0
    (runs / "run" / "notes.txt").write_text("mine")
    before = _files(runs)
    runs.chmod(0o555)
    try:
        code, err = _run(capsys, *argv, "--overwrite")
    finally:
        runs.chmod(0o755)
    assert code == 0, err
    after = _files(runs)
    assert after["run/notes.txt"] == b"mine" and after["run/best.pt"] != before["run/best.pt"]
    assert not (runs / "run" / ".overwritten").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_an_overwrite_in_progress_is_refused_to_others_and_settled_once_its_train_is_gone(capsys, tmp_path,
                                                                                           synth_root, make_spec):
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))
    runs = tmp_path / "runs"
    argv = ("train", "-e", str(spec), "-r", str(runs), "-n", "run", "-q")
    assert _run(capsys, *argv)[0] == 0
    before = _files(runs)
    aside = _set_aside_by_hand(runs)
    # the overwriting train, alive (any pid and host: in a container it may be pid 1 on a fresh hostname)
    hold = ("import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(aside / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        _assert_one_line(*_run(capsys, *argv), "--name", "is being replaced by another train")
        _assert_one_line(*_run(capsys, *argv, "--overwrite"), "--name", "is being replaced by another train")
        assert (aside / "best.pt").is_file() and not (runs / "run" / "best.pt").exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    code, err = _run(capsys, *argv)  # killed before its new run saved anything: the old run comes back
    assert code == 2 and "already holds a training run" in err.splitlines()[-1], err
    assert _files(runs) == before


def test_model_flag_takes_a_registered_model_to_fine_tune(capsys, tmp_path, monkeypatch, synth_root, make_spec,
                                                          tiny_checkpoint):
    from floodwatch.models.checkpoint import read_checkpoint
    from floodwatch.models.zoo import DEFAULT_MODEL
    from tests.models.zoo_checks import write_test_zoo

    write_test_zoo(tmp_path / "zoo", DEFAULT_MODEL, tiny_checkpoint)
    monkeypatch.setenv("FLOODWATCH_ZOO", str(tmp_path / "zoo"))
    spec = _spec_file(tmp_path, make_spec(synth_root, epochs=1))
    for flag, name in (("--model", "new"), ("--pretrained-model", "old"), ("-m", "short")):  # the old long name
        code, err = _run(capsys, "train", "-e", str(spec), "-r", str(tmp_path), "-n", name, flag, DEFAULT_MODEL, "-q")
        assert code == 0, err
        # whole-model fine-tuning: the registered checkpoint's model (use_batch_norm), not the spec's
        assert read_checkpoint(tmp_path / name / "best.pt")["model_config"]["use_batch_norm"] is True


def test_course_workflow_trains_on_converted_data(capsys, tmp_path, synth_root):
    """data split + data convert, then the course's TAO spec (examples/, as shipped but smaller and shorter)
    pointed at the converted folders: its channel count and its ignore class for no-data pixels (127) fit what
    data convert writes."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from floodwatch.models.checkpoint import read_checkpoint

    split = str(tmp_path / "split.csv")
    assert _run(capsys, "data", "split", str(synth_root), "--method", "random", "-o", split)[0] == 0
    assert _run(capsys, "data", "convert", str(synth_root), str(tmp_path / "data"), "--split-csv", split)[0] == 0
    assert any((np.asarray(Image.open(m)) == 127).any() for m in (tmp_path / "data" / "masks").glob("*/*.png"))
    tao = (Path(__file__).resolve().parents[2] / "examples" / "tao_unet_resnet18.txt").read_text()
    # dropout_rate: a TAO setting floodwatch drops, which training must say (it said nothing)
    for old, new in (("512", "32"), ("num_layers: 18", "num_layers: 10"), ("epochs: 30", "epochs: 1"),
                     ("arch:", "dropout_rate: 0.1\n  arch:")):
        assert old in tao
        tao = tao.replace(old, new)
    (tmp_path / "tao.txt").write_text(tao)  # its paths (data/images/train, ...) are relative to it
    code, err = _run(capsys, "train", "-e", str(tmp_path / "tao.txt"), "-r", str(tmp_path / "runs"), "-n", "course",
                     "-q")
    assert code == 0, err
    assert "not used by floodwatch, dropped: model_config.dropout_rate" in err
    # the model's classes: the ignore class marks pixels that are not scored, it is not an output
    assert [c["name"] for c in read_checkpoint(tmp_path / "runs" / "course" / "best.pt")["class_map"]] == \
        ["notflood", "flood"]


def test_tao_spec_test_folders_are_its_test_split(tmp_path):
    """A TAO spec's test_images_path + test_masks_path are its test split: what `evaluate -e` scores (it used the
    validation chips while the spec named test folders)."""
    from floodwatch.training.data import evaluation_samples
    from tests.data import fakes

    for part, n in (("train", 2), ("val", 2), ("test", 3)):
        fakes.folders(tmp_path / "data", n, split=part, seed=len(part), mask_values=(0, 1))
    spec = tmp_path / "tao.txt"
    spec.write_text("dataset_config {\n" + "".join(
        f'  {part}_{kind}_path: "data/{part}/{kind}"\n' for part in ("train", "val", "test")
        for kind in ("images", "masks")) + "}\n")
    chips, what = evaluation_samples(spec=spec)
    assert "test split" in what and len(chips) == 3
    assert len(evaluation_samples(spec=spec, split="val")[0]) == 2
    # the course's other layout, images/<part> and masks/<part>: its regions were all "images"
    for part in ("train", "val", "test"):
        for kind in ("images", "masks"):
            (tmp_path / "flat" / kind).mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / part / kind).rename(tmp_path / "flat" / kind / part)
    spec.write_text("dataset_config {\n" + "".join(
        f'  {part}_{kind}_path: "flat/{kind}/{part}"\n' for part in ("train", "val", "test")
        for kind in ("images", "masks")) + "}\n")
    chips, _ = evaluation_samples(spec=spec)
    assert len(chips) == 3 and {s.region for s in chips} == {"test"}


def test_a_split_csv_of_all_chips_splits_a_sources_kept_chips(tmp_path, synth_root):
    # a leave-one-out fold: the data set's split CSV lists the held-out event's chips too (it failed as ids
    # "not in the data set")
    from floodwatch.config import spec_from_dict
    from floodwatch.data import open_dataset
    from floodwatch.training.data import load_samples

    ids = open_dataset(synth_root).ids
    csv = tmp_path / "split.csv"
    csv.write_text("id,split\n" + "".join(f"{i},{'val' if n % 4 == 3 else 'train'}\n" for n, i in enumerate(ids)))
    spec = spec_from_dict({"dataset_config": {"sources": [
        {"path": str(synth_root), "format": "sen1floods11", "exclude_regions": ["SynthA"], "split": str(csv)}]}})
    parts = load_samples(spec, progress=False)
    kept = [s.id for part in parts.values() for s in part]
    assert kept and not any(i.startswith("SynthA") for i in kept)
    assert parts["train"] and parts["val"]
