import json
import re

import numpy as np
import pytest

from floodwatch.data import open_dataset
from floodwatch.evaluation.accuracy_report import worst_chips, write_accuracy_report
from floodwatch.evaluation.evaluate import evaluate


def test_evaluate_reports_ece_matching_an_independent_computation(synth_dataset, tiny_checkpoints):
    from floodwatch.evaluation.calibration import expected_calibration_error
    from floodwatch.data.preprocess import network_input
    from floodwatch.inference import load_predictor

    samples = list(open_dataset(synth_dataset))
    predictor = load_predictor(tiny_checkpoints[0])
    result = evaluate(predictor, samples, progress=False)
    labelled = [s for s in samples if s.mask is not None and not s.is_empty]
    probs = [predictor.predict(network_input(s, predictor.preprocessing)[None])[0] for s in labelled]
    ref = expected_calibration_error(np.stack(probs), np.stack([s.mask for s in labelled]),
                                     np.stack([s.valid for s in labelled]))
    assert result["ece"] == pytest.approx(ref, abs=1e-6)
    assert sum(result["reliability"]["count"]) == result["pixels"]
    assert all("ece" in r for r in result["regions"].values())


def test_report_writes_index_with_sections_and_worst_chips(synth_dataset, tiny_checkpoints, tmp_path):
    from floodwatch.inference import load_predictor

    samples = list(open_dataset(synth_dataset))
    predictor = load_predictor(tiny_checkpoints[0])
    result = evaluate(predictor, samples, progress=False)
    index = write_accuracy_report(tmp_path / "rep", {"synthetic": result}, predictor=predictor,
                                  samples={"synthetic": samples}, worst=2)
    page = index.read_text()
    for section in ("id=scores", "id=reliability", "id=worst", "Otsu IoU", "ECE"):
        assert section in page
    assert len(re.findall(r"<figcaption>synthetic / [^<]* \(VH\): IoU", page)) == 2  # the backdrop's band
    images = re.findall(r"src='?([^ '>]+\.png)", page)
    assert "reliability.png" in images and len([i for i in images if i.startswith("worst_")]) == 2
    for name in images:
        assert (index.parent / name).read_bytes()[:4] == b"\x89PNG"
    # the gallery shows the lowest IoUs, in order
    worst = worst_chips(result, 2)
    defined = sorted(r["water_iou"] for r in result["per_chip"] if not np.isnan(r["water_iou"]))
    assert [w["water_iou"] for w in worst] == defined[:2]
    for region in result["regions"]:
        assert f"<td>{region}</td>" in page


def test_cli_evaluate_ensemble_tta_calibrate_report(run_cli, synth_dataset, tiny_checkpoints, tmp_path):
    a, b = tiny_checkpoints
    out = run_cli("evaluate", "-m", a, "-m", b, "--tta-transforms", "hflip", "--data", synth_dataset,
              "--calibrate", synth_dataset,
              "--save-temperature", tmp_path / "t.json", "--report", tmp_path / "rep", "-o", tmp_path / "m.json", "-q")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["model"] == [str(a), str(b)] and metrics["tta"] == ["hflip"]
    assert 0 <= metrics["ece"] <= 1
    t = json.loads((tmp_path / "t.json").read_text())["temperature"]
    assert t == pytest.approx(metrics["calibration"]["temperature"])
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "id=calibration" in page and (tmp_path / "rep" / "calibration.png").is_file()
    # the saved temperature applies and single-model evaluate still works; a rerun replaces the report
    out = run_cli("evaluate", "-m", a, "--data", synth_dataset, "--temperature", tmp_path / "t.json", "-q",
                  "--report", tmp_path / "rep")
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "rep" / "calibration.png").exists()  # this run fitted no temperature
    # but never a folder holding what the report did not write
    (tmp_path / "rep" / "notes.txt").write_text("mine")
    out = run_cli("evaluate", "-m", a, "--data", synth_dataset, "-q", "--report", tmp_path / "rep")
    assert out.returncode == 2 and "notes.txt" in out.stderr and out.stderr.count("\n") == 1
    assert (tmp_path / "rep" / "notes.txt").read_text() == "mine"


def test_cli_bad_options_are_one_line(run_cli, synth_dataset, tiny_checkpoints, tmp_path):
    a, b = tiny_checkpoints
    for args, message in (
        (["-m", a, "--tta-transforms", "spin"], "unknown transform"),
        (["-m", a, "-m", b, "--weights", "1"], "1 weights for 2 models"),
        (["-m", a, "--temperature", tmp_path / "none.json"], "none.json: temperature file not found"),
        (["-m", a, "--save-temperature", tmp_path / "t.json"], "needs --calibrate"),
    ):
        out = run_cli("evaluate", "--data", synth_dataset, "-q", *args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_cli_infer_with_ensemble_and_tta(run_cli, synth_dataset, tiny_checkpoints, tmp_path):
    a, b = tiny_checkpoints
    out = run_cli("infer", synth_dataset / "S1Hand", "-m", a, "-m", b, "--tta",
              "-o", tmp_path / "out", "-q")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "out").glob("*_mask.tif"))) == 4


def test_cli_data_stats_plot(run_cli, synth_dataset, tmp_path):
    from tests.data import fakes

    etci = fakes.etci(tmp_path / "etci")
    out = run_cli("data", "stats", synth_dataset, etci, "--plot", tmp_path / "h.png")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    out = run_cli("data", "stats", synth_dataset)
    assert out.returncode == 2 and "--plot" in out.stderr
