"""`floodwatch train` on bad input: one line on stderr, exit 2, no traceback (run in-process: fast)."""
from __future__ import annotations

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
