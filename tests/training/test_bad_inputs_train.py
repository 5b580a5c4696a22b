"""Bad input to `floodwatch train`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest
import yaml

from tests.bad_inputs import Case, binary_file, check, params, plain_file, unsafe_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory, synth_root, make_spec):
    from floodwatch.config import load_spec, save_spec
    from tests.data import fakes

    d = tmp_path_factory.mktemp("bad_train")
    f = {"file": plain_file(d / "a_file"), "binary_spec": binary_file(d / "spec.yaml"),
         "unsafe": unsafe_checkpoint(d / "unsafe.pt"), "garbage": plain_file(d / "garbage.pt"),
         "spec": d / "good.yaml", "runs": d / "runs"}
    f["spec"].write_text(yaml.safe_dump(make_spec(synth_root, epochs=1)))
    specs = {"negative_seed": make_spec(synth_root, random_seed=-5),
             "huge_lr": make_spec(synth_root, learning_rate=1e9)}
    # unlabelled folders the model (VV, VH) cannot use: one band (OMBRIA), a band the data lack (HH)
    specs["one_band_unlabelled"] = make_spec(synth_root) | {"semi_supervised": {
        "unlabelled": [{"path": str(fakes.ombria(d / "ombria")), "format": "ombria"}]}}
    specs["otsu_hh"] = make_spec(synth_root) | {"semi_supervised": {"unlabelled": [str(synth_root)],
                                                                    "otsu_agreement": "HH"}}
    # fractions that leave no validation chip: the error named the section, not the field
    specs["no_val"] = make_spec(synth_root)
    specs["no_val"]["dataset_config"]["split"]["fractions"] = [1.0, 0.0, 0.0]
    # a split CSV of other chips: the error named neither the CSV nor its field
    (d / "other_chips.csv").write_text("id,split\nnot_a_chip,train\n")
    specs["csv_of_other_chips"] = make_spec(synth_root)
    specs["csv_of_other_chips"]["dataset_config"]["split"] = {"csv": str(d / "other_chips.csv")}
    # 32 px chips with BatchNorm, one a batch: torch's "Expected more than 1 value per channel" mid-epoch
    specs["bn_batch_of_one"] = make_spec(synth_root, batch_size=1)
    specs["bn_batch_of_one"]["model_config"]["use_batch_norm"] = True
    # crops larger than every chip: trained silently on 3/4 padding (TAO resizes chips to the input size)
    specs["crop_over_chips"] = make_spec(synth_root)
    specs["crop_over_chips"]["model_config"].update(model_input_height=64, model_input_width=64)
    for name, spec in specs.items():
        f[name] = d / f"{name}.yaml"
        f[name].write_text(yaml.safe_dump(spec))
    # a finished run, and a killed one whose spec said 60 epochs
    (d / "runs" / "done").mkdir(parents=True)
    plain_file(d / "runs" / "done" / "best.pt")
    killed = load_spec(f["spec"])
    killed.training_config.epochs = 60
    save_spec(killed, plain_file(d / "runs" / "killed" / "last.pt").parent / "spec.yaml")
    # a killed run started with --seed 9: the refusal said "resume with that spec", which was the one given
    seeded = load_spec(f["spec"])
    seeded.training_config.random_seed = 9
    save_spec(seeded, plain_file(d / "runs" / "seeded" / "last.pt").parent / "spec.yaml")
    return f


CASES = [
    Case("binary-spec", "train -e {binary_spec} -r {out}", ("{binary_spec}", "not UTF-8")),
    Case("results-under-file", "train -e {spec} -r {file}/x", ("{file} is a file",)),
    Case("unsafe-pretrained", "train -e {spec} -r {out} -m {unsafe}", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback", "this must never run")),
    Case("garbage-pretrained", "train -e {spec} -r {out} -m {garbage}", ("{garbage}", "not a torch file")),
    Case("model-name-unknown", "train -e {spec} -r {out} -m no-such-model", ("no-such-model", "registered")),
    Case("seed-negative", "train -e {spec} -r {out} --seed -5", ("--seed",)),
    Case("seed-negative-in-spec", "train -e {negative_seed} -r {out}",
         ("negative_seed.yaml: training_config.random_seed",)),
    Case("learning-rate-absurd", "train -e {huge_lr} -r {out}", ("huge_lr.yaml: training_config.learning_rate",
                                                                   "too large")),
    Case("name-escapes-results", "train -e {spec} -r {out}/runs -n ../escape", ("--name", "../escape")),
    Case("name-empty", "train -e {spec} -r {out} -n ''", ("--name", "not a folder name")),
    Case("name-holds-a-run", "train -e {spec} -r {runs} -n done", ("--name", "best.pt", "--resume", "--overwrite"),
         absent=()),
    Case("resume-other-spec", "train -e {spec} -r {runs} -n killed --resume",
         ("--resume", "training_config.epochs (60 -> 1)"), absent=()),
    Case("resume-other-seed", "train -e {spec} -r {runs} -n seeded --resume",
         ("--resume", "random_seed (9 -> 7)", "resumes with it (--seed 9)"), absent=()),
    Case("resume-and-overwrite", "train -e {spec} -r {runs} -n done --resume --overwrite",
         ("--resume, --overwrite",), absent=()),
    Case("unlabelled-bands", "train -e {one_band_unlabelled} -r {out}",
         ("one_band_unlabelled.yaml: semi_supervised.unlabelled[0]", "VV, VH")),
    Case("split-leaves-val-empty", "train -e {no_val} -r {out}", ("dataset_config.split:", "val split")),
    Case("split-csv-of-other-chips", "train -e {csv_of_other_chips} -r {out}",
         ("dataset_config.split.csv", "other_chips.csv", "not_a_chip")),
    Case("batch-norm-batch-of-one", "train -e {bn_batch_of_one} -r {out}",
         ("model_config.model_input_height/width", "32x32", "batch_size 1", "BatchNorm")),
    Case("otsu-band-missing", "train -e {otsu_hh} -r {out}", ("otsu_hh.yaml: semi_supervised.otsu_agreement", "HH")),
    Case("crop-over-every-chip", "train -e {crop_over_chips} -r {out}",
         ("model_config.model_input_height/width", "64x64", "32x32", "at most 32x32")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)


def test_refused_runs_are_left_as_they_were(files, run_cli, tmp_path):
    runs = files["runs"]
    before = {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()}
    for argv in (("-n", "done"), ("-n", "killed", "--resume")):
        assert run_cli("train", "-e", files["spec"], "-r", runs, *argv).returncode == 2
    assert {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()} == before
