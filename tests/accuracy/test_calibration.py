import json

import numpy as np
import pytest

from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.errors import DataError
from floodwatch.evaluation.calibration import (CalibrationAccumulator, calibrate, expected_calibration_error,
                                               fit_temperature, reliability_png)
from floodwatch.inference.temperature import TemperaturePredictor, apply_temperature, load_temperature, save_temperature

from .conftest import ConstantPredictor


def test_ece_hand_made_example():
    # bin (0.0667, 0.1333]: p 0.1 x4, 1 water -> |0.1 - 0.25| = 0.15 over 4 of 10 pixels
    # bin (0.8667, 0.9333]: p 0.9 x6, 3 water -> |0.9 - 0.5| = 0.40 over 6 of 10
    prob = np.array([0.1] * 4 + [0.9] * 6)
    target = np.array([1, 0, 0, 0] + [1, 1, 1, 0, 0, 0])
    assert expected_calibration_error(prob, target) == pytest.approx(0.4 * 0.15 + 0.6 * 0.40)


def test_ece_ignores_invalid_and_ignore_pixels_and_is_zero_when_calibrated():
    prob = np.array([[0.5, 0.5, 0.99], [0.5, 0.5, 0.0]])
    target = np.array([[1, 0, 0], [1, 0, IGNORE_INDEX]])
    valid = np.array([[True, True, False], [True, True, True]])
    assert expected_calibration_error(prob, target, valid) == pytest.approx(0.0)
    acc = CalibrationAccumulator()
    acc.update(prob, target, valid)
    r = acc.reliability()
    assert sum(r["count"]) == 4 and r["water_share"][7] == pytest.approx(0.5)


def test_ece_agrees_with_an_independent_loop():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p ** 2).astype(int)
    edges = np.linspace(0, 1, 16)
    ref = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p > lo) & (p <= hi)
        if inside.any():
            ref += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    assert expected_calibration_error(p, y) == pytest.approx(ref, rel=1e-9)


def _overconfident(true_t: float, n: int = 200_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(np.uint8)  # labels drawn from sigmoid(z)
    return 1 / (1 + np.exp(-z * true_t)), y  # the model reports logits true_t times too large


def test_temperature_scaling_recovers_known_t_and_lowers_ece():
    prob, y = _overconfident(2.5)
    t = fit_temperature(prob, y)
    assert t == pytest.approx(2.5, rel=0.05)
    before = expected_calibration_error(prob, y)
    after = expected_calibration_error(apply_temperature(prob, t), y)
    assert before > 0.05 and after < 0.01


def test_temperature_predictor_keeps_the_mask_and_softens():
    base = ConstantPredictor(0.9)
    tp = TemperaturePredictor(base, 3.0)
    out = tp.predict(np.zeros((1, 2, 4, 4), np.float32))
    expected = 1 / (1 + np.exp(-np.log(9) / 3))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert (out >= 0.5).all()
    with pytest.raises(Exception, match="positive"):
        TemperaturePredictor(base, 0.0)


def test_temperature_file_roundtrip_and_errors(tmp_path):
    save_temperature(tmp_path / "t.json", 1.7, fitted_on="val")
    assert load_temperature(tmp_path / "t.json") == pytest.approx(1.7)
    (tmp_path / "bad.json").write_text(json.dumps({"temperature": -1}))
    with pytest.raises(DataError, match="bad.json.*positive"):
        load_temperature(tmp_path / "bad.json")
    with pytest.raises(DataError, match="missing.json: temperature file not found"):
        load_temperature(tmp_path / "missing.json")
    (tmp_path / "key.json").write_text(json.dumps({"temp": 2}))
    with pytest.raises(DataError, match=r"key.json: no 'temperature' key \(keys: temp\)"):
        load_temperature(tmp_path / "key.json")


def test_calibrate_on_chips_and_reliability_png(tmp_path):
    from floodwatch.data.synthetic import synth_chips

    chips = synth_chips(4, size=32, seed=1)
    # a constant 0.99 is badly over-confident where water is rare: T must grow, ECE fall
    cal = calibrate(ConstantPredictor(0.99), chips[:2], chips[2:], max_pixels=4000)
    assert cal["temperature"] > 1
    assert cal["check"]["ece_after"] < cal["check"]["ece_before"]
    assert cal["fit"]["nll_after"] < cal["fit"]["nll_before"]
    png = reliability_png([("before", cal["fit"]["reliability_before"]),
                           ("after", cal["fit"]["reliability_after"])], tmp_path / "rel.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
