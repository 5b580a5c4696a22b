import json

import numpy as np
import pytest

from floodwatch.cli.main import main
from floodwatch.data import write_synthetic_dataset
from floodwatch.data.preprocess import Preprocessing
from floodwatch.evaluation.evaluate import evaluate


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "synth", chips=6, size=32, seed=1)


def test_cli_evaluate_writes_json_and_table(synth_dir, tiny_checkpoint, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(synth_dir), "-q",
                              "-o", str(tmp_path / "m.json"), "--save-predictions", str(tmp_path / "p")], capsys)
    assert code in (0, None), err
    result = json.loads((tmp_path / "m.json").read_text())  # strict JSON: undefined scores are null
    assert result["chips"] == 6 and set(result["regions"]) == {"SynthA", "SynthB", "SynthC", "SynthD"}
    assert "Otsu" in out and "SynthA" in out
    assert len(list((tmp_path / "p").glob("*.png"))) == 6


def test_cli_evaluate_downsample_is_recorded(synth_dir, tiny_checkpoint, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(synth_dir), "-q",
                              "--downsample", "2", "-o", str(tmp_path / "m.json")], capsys)
    assert code in (0, None), err
    assert json.loads((tmp_path / "m.json").read_text())["downsample"] == 2 and "downsample 2" in out
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(synth_dir), "-q",
                              "--downsample", "0"], capsys)
    assert code == 2 and "--downsample" in err


def test_cli_evaluate_and_infer_record_the_ensemble_weights_and_options(synth_dir, tiny_checkpoint, tmp_path,
                                                                       capsys):
    ensemble = ["-m", str(tiny_checkpoint), "-m", str(tiny_checkpoint), "--weights", "3,1", "-q"]
    code, out, err = run_cli(["evaluate", *ensemble, "--data", str(synth_dir), "-o", str(tmp_path / "m.json")], capsys)
    assert code in (0, None), err
    assert json.loads((tmp_path / "m.json").read_text())["weights"] == [0.75, 0.25]  # normalised
    code, out, err = run_cli(["infer", *ensemble, str(synth_dir / "S1Hand"), "-o", str(tmp_path / "o"),
                              "--tta-transforms", "hflip", "--refine", "clean:min=4"], capsys)
    assert code in (0, None), err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (summary["weights"], summary["tta"], summary["refine"]) == ([0.75, 0.25], ["hflip"], "clean:min=4,t=0.5")
    assert summary["downsample"] == 1 and summary["temperature"] is None


def test_cli_evaluate_self_train_records_each_regions_step(synth_dir, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import functools

    from floodwatch.inference import selftrain

    monkeypatch.setattr(selftrain, "SelfTraining", functools.partial(selftrain.SelfTraining, steps=1, batch=1))
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(synth_dir), "-q",
                              "--self-train", "-o", str(tmp_path / "m.json")], capsys)
    assert code in (0, None), err
    result = json.loads((tmp_path / "m.json").read_text())
    assert set(result["self_training"]) == {"SynthA", "SynthB", "SynthC", "SynthD"} and "self-train" in out
    assert sum(info["chips"] for info in result["self_training"].values()) == 6


def test_cli_evaluate_lists_every_region_with_its_empty_chips(tiny_checkpoint, tmp_path, capsys):
    from floodwatch.data.sample import IGNORE_INDEX, Sample
    from floodwatch.data.synthetic import synth_chips

    chips = synth_chips(4, size=32, seed=1)
    s = chips[0]
    ignored = Sample(image=s.image, mask=np.full(s.shape, IGNORE_INDEX), valid=s.valid, id="SynthA_7", region="SynthA")
    blank = Sample(image=np.full_like(s.image, np.nan), mask=np.zeros(s.shape, np.int64),
                   valid=np.zeros(s.shape, bool), id="Paraguay_9", region="Paraguay")
    data = write_synthetic_dataset(tmp_path / "d", samples=chips + [ignored, blank])
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(data), "-q",
                              "-o", str(tmp_path / "m.json")], capsys)
    assert code in (0, None), err

    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    result = json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse)
    regions = result["regions"]
    assert set(regions) == {"Paraguay", "SynthA", "SynthB", "SynthC", "SynthD"}
    assert result["empty_chips"] == 2 and regions["SynthA"]["empty_chips"] == 1
    assert sum(r["chips"] for r in regions.values()) == result["chips"] == 4
    assert sum(r["empty_chips"] for r in regions.values()) == result["empty_chips"]
    paraguay = regions["Paraguay"]
    assert (paraguay["chips"], paraguay["empty_chips"], paraguay["pixels"]) == (0, 1, 0)
    assert paraguay["water_iou"] is None and paraguay["ece"] is None and paraguay["otsu"]["water_iou"] is None
    assert "Paraguay" in out  # the table lists it too


def test_cli_evaluate_on_stac_overflow_chips(tiny_checkpoint, tmp_path, capsys):
    from tests.data import fakes

    root = fakes.stac_overflow(tmp_path / "so")  # one file per band, 0.0 missing, labels 255 missing
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(root), "-q",
                              "-o", str(tmp_path / "m.json")], capsys)
    assert code in (0, None), err
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["chips"] == 3 and set(result["regions"]) == {"Xawc", "Xkuo"}  # events from the metadata CSV
    # scored pixels: neither missing in a band (4 x 4 in VH, 2 x 2 in VV) nor labelled 255 (the last row)
    per_chip = fakes.SIZE * fakes.SIZE - 16 - 4 - fakes.SIZE
    assert sum(r["pixels"] for r in result["regions"].values()) == 3 * per_chip


def test_cli_not_a_checkpoint_is_one_line(synth_dir, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"not a checkpoint")
    code, out, err = run_cli(["evaluate", "-m", str(fake), "--data", str(synth_dir), "-q"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "model.pt: not a floodwatch checkpoint" in err


def test_cli_channel_mismatch_is_one_line(synth_dir, tmp_path, capsys):
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    cfg = dict(num_layers=10, in_channels=1)
    pp = Preprocessing(bands=["HH"], clip=[(-50, 5)], offset=[-12.0], scale=[0.2])
    path = save_checkpoint(tmp_path / "hh.pt", build_model(**cfg), model_config=cfg, preprocessing=pp)
    code, out, err = run_cli(["evaluate", "-m", str(path), "--data", str(synth_dir), "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data has 2 band(s) (VV, VH) but the model expects 1 (HH)" in err
    code, out, err = run_cli(["infer", "-m", str(path), str(synth_dir / "S1Hand"), "-o", str(tmp_path / "o"), "-q"],
                             capsys)
    assert code == 2 and "but the model expects 1 (HH)" in err and len(err.strip().splitlines()) == 1


def test_cli_footer_names_8bit_data(tiny_checkpoint, tmp_path, capsys):
    from tests.data import fakes

    course = fakes.folders(tmp_path / "course", colour=True)  # what `data convert` writes: 8-bit PNGs
    code, out, err = run_cli(["evaluate", "-m", str(tiny_checkpoint), "--data", str(course), "-q"], capsys)
    assert code in (0, None), err
    assert "Otsu on VH of 8-bit pictures (grey levels mapped to dB)" in out and "in dB" not in out


def test_cli_infer_folder(synth_dir, tiny_checkpoint, tmp_path, capsys):
    code, out, err = run_cli(["infer", "-m", str(tiny_checkpoint), str(synth_dir / "S1Hand"), "-o",
                              str(tmp_path / "o"), "-q"], capsys)
    assert code in (0, None), err
    assert len(list((tmp_path / "o").glob("*_mask.tif"))) == 6
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["model"] == str(tiny_checkpoint) and summary["threshold"] == 0.5  # what made these masks


def test_outputs_record_a_model_given_by_a_relative_path_absolute(synth_dir, tiny_checkpoint, tmp_path, capsys,
                                                                   monkeypatch):
    # the default model was recorded absolute and a user's -m as typed: a record read from elsewhere lost it
    monkeypatch.chdir(tiny_checkpoint.parent)
    code, out, err = run_cli(["infer", "-m", tiny_checkpoint.name, str(synth_dir / "S1Hand"), "-o",
                              str(tmp_path / "o"), "-q"], capsys)
    assert code in (0, None), err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["model"] == str(tiny_checkpoint.absolute())


def test_otsu_on_real_sen1floods11_matches_the_documented_score(shared_data):
    """The data README states Otsu (per chip, VH dB) scores water IoU 0.27 on these chips."""
    from floodwatch.data import open_dataset

    class Dark:  # a fixed VH threshold at about -21 dB: a second, simpler baseline
        preprocessing = Preprocessing()

        def predict(self, batch):
            return (batch[:, 1] < -0.4).astype(np.float32)

    r = evaluate(Dark(), open_dataset(shared_data / "sen1floods11"), progress=False)
    assert r["otsu"]["water_iou"] == pytest.approx(0.27, abs=0.01)
    assert r["chips"] == 8 and r["empty_chips"] == 2  # all-NaN Paraguay and all-ignore Ghana_83483
    # Ghana_53713 has no water (a real edge case): scored, with no water pixels
    assert next(c for c in r["per_chip"] if c["id"].startswith("Ghana_53713"))["water_pixels"] == 0


def test_real_sen1floods11_regions_keep_their_empty_chips(shared_data):
    from floodwatch.data import open_dataset

    class Dry:
        preprocessing = Preprocessing()

        def predict(self, batch):
            return np.zeros((len(batch),) + batch.shape[2:], np.float32)

    r = evaluate(Dry(), open_dataset(shared_data / "sen1floods11"), progress=False, otsu=False)
    ghana, paraguay = r["regions"]["Ghana"], r["regions"]["Paraguay"]
    assert (ghana["chips"], ghana["empty_chips"]) == (2, 1)  # Ghana_83483 is all ignore
    assert (paraguay["chips"], paraguay["empty_chips"], paraguay["pixels"]) == (0, 1, 0)  # all NaN
    assert sum(reg["chips"] for reg in r["regions"].values()) == r["chips"]
    assert sum(reg["empty_chips"] for reg in r["regions"].values()) == r["empty_chips"] == 2
