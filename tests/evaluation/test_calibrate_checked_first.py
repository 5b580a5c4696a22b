"""--calibrate data the model cannot take (OMBRIA's one band for a VV+VH model) failed only after the whole
evaluation, with an error naming a bare chip id ("0001: data has 1 band(s)") and not the calibration data."""
from __future__ import annotations

import pytest

from floodwatch.errors import DataError
from floodwatch.evaluation.calibration import check_calibration_data
from tests.data import fakes


def test_cli_refuses_before_scoring_and_names_the_data(tmp_path, run_cli, tiny_checkpoint):
    data, cal = fakes.sen1floods11(tmp_path / "s1", chips=2), fakes.ombria(tmp_path / "om")
    out = tmp_path / "m.json"
    r = run_cli("evaluate", "-m", tiny_checkpoint, "--data", data, "--calibrate", cal, "-o", out, "-q")
    assert r.returncode != 0
    assert f"--calibrate {cal}: chip 0004: data has 1 band(s) (VV)" in r.stderr
    assert "IoU over" not in r.stdout and not out.exists() and "Traceback" not in r.stderr


def test_unlabelled_calibration_data_is_refused(tmp_path):
    from floodwatch.data import open_dataset
    from floodwatch.inference.predictor import load_predictor

    samples = [s for s in open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=1))]
    for s in samples:
        s.mask = None
    with pytest.raises(DataError, match="^cal: temperature: the calibration data has no labelled"):
        check_calibration_data(load_predictor(None), samples, "cal")


def test_a_temperature_at_the_end_of_its_range_is_said_to_be_no_fit(tmp_path):
    """An untrained model's fit ended at T = 20, the search's bound, printed as if fitted (T = 19.9999)."""
    import numpy as np

    from floodwatch.data import open_dataset
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.evaluation.calibration import bound_note, calibrate

    class Coin:  # probabilities that do not depend on the chip: no information about the labels
        preprocessing = Preprocessing()

        def predict(self, batch):
            rng = np.random.default_rng(0)
            return rng.choice([0.02, 0.98], size=(len(batch),) + np.shape(batch)[-2:]).astype(np.float32)

    samples = list(open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=2)))
    cal = calibrate(Coin(), samples)
    assert cal["temperature"] > 19.9 and "largest value searched (20)" in cal["note"]
    assert bound_note(1.3) is None and "smallest value searched" in bound_note(0.05)


def test_a_spec_given_to_calibrate_is_recorded_with_its_split(tmp_path, run_cli, tiny_checkpoint):
    """`--calibrate spec.yaml` fits on the spec's val split; the output said only "fitted on spec.yaml"."""
    import json

    import yaml

    data = fakes.sen1floods11(tmp_path / "s1", chips=4)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"dataset_config": {"data_root": str(data), "format": "sen1floods11",
                                                       "split": {"method": "random", "fractions": [0.5, 0.5, 0.0]}},
                                    "model_config": {"num_layers": 10, "model_input_height": 32,
                                                     "model_input_width": 32, "model_input_channels": 2}}))
    out = tmp_path / "m.json"
    r = run_cli("evaluate", "-m", tiny_checkpoint, "--data", data, "--calibrate", spec, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert f"fitted on {spec} (its val split)" in " ".join(r.stdout.split())
    assert json.loads(out.read_text())["calibration"]["data"] == f"{spec} (its val split)"
