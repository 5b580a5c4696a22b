"""`floodwatch map` with an ensemble (-m repeated, --weights) and --temperature, as infer and evaluate take them:
checked against each model mapped alone on the same scene."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from floodwatch.cli.main import main

from .helpers import make_scene, read

# one 64 px tile: no overlap blending, so a pixel's probability is the predictor's own
COMMON = ["--tile", "64", "--overlap", "16", "--probability", "float32", "-q"]


def run(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(map(str, argv)))
    return exit_info.value.code


@pytest.fixture(scope="module")
def maps(tmp_path_factory, tiny_checkpoint):
    """The scene, both checkpoints (tiny_checkpoint and another seed's) and each one's float32 probability."""
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("ensemble")
    torch.manual_seed(1)
    cfg = dict(num_layers=10, in_channels=2, num_classes=2, all_projections=False, use_batch_norm=True)
    other = save_checkpoint(d / "other.pt", build_model(**cfg), model_config=cfg, preprocessing=Preprocessing())
    make_scene(d / "s.tif", 64, 64)
    prob = {}
    for name, model in (("a", tiny_checkpoint), ("b", other)):
        assert run(["map", d / "s.tif", "-m", model, "-o", d / name, *COMMON]) in (0, None)
        prob[name] = read(d / name / "s" / "flood_probability.tif")[0]
    assert np.abs(prob["a"] - prob["b"]).max() > 0.01  # two models that disagree: their mean is a real check
    return {"scene": d / "s.tif", "a": Path(tiny_checkpoint), "b": other, "prob": prob}


def _temperature(path: Path, t: float) -> Path:
    path.write_text(json.dumps({"temperature": t}))
    return path


def _sharpened(p: np.ndarray, t: float) -> np.ndarray:
    """sigmoid(logit(p) / T), written out independently of floodwatch.inference.temperature."""
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return 1 / (1 + ((1 - p) / p) ** (1 / t))


def test_an_ensemble_maps_the_weighted_mean_of_its_models(maps, tmp_path):
    out = tmp_path / "ab"
    code = run(["map", maps["scene"], "-m", maps["a"], "-m", maps["b"], "--weights", "3,1", "-o", out, *COMMON])
    assert code in (0, None)
    prob = read(out / "s" / "flood_probability.tif")[0]
    np.testing.assert_allclose(prob, 0.75 * maps["prob"]["a"] + 0.25 * maps["prob"]["b"], atol=1e-5)
    stats = json.loads((out / "s" / "stats.json").read_text())
    # every model file, as infer's summary.json and evaluate's JSON record an ensemble
    assert stats["model"] == [str(maps["a"].absolute()), str(maps["b"].absolute())]
    assert stats["weights"] == [0.75, 0.25]


def test_temperature_rescales_the_probability_as_its_file_says(maps, tmp_path):
    out = tmp_path / "t"
    code = run(["map", maps["scene"], "-m", maps["a"], "--temperature", _temperature(tmp_path / "t.json", 2.0),
                "-o", out, *COMMON])
    assert code in (0, None)
    prob = read(out / "s" / "flood_probability.tif")[0]
    np.testing.assert_allclose(prob, _sharpened(maps["prob"]["a"], 2.0), atol=1e-5)
    assert json.loads((out / "s" / "stats.json").read_text())["temperature"] == 2.0


@pytest.mark.slow  # a LocalCluster worker process
def test_dask_workers_map_with_the_ensemble_and_the_temperature(maps, tmp_path):
    """--workers: each worker loads the predictor from the model list and the predictor keywords it is sent."""
    out = tmp_path / "w"
    code = run(["map", maps["scene"], "-m", maps["a"], "-m", maps["b"], "--weights", "1,3", "--temperature",
                _temperature(tmp_path / "t.json", 0.5), "--workers", "1", "-o", out, *COMMON])
    assert code in (0, None)
    prob = read(out / "s" / "flood_probability.tif")[0]
    mean = 0.25 * maps["prob"]["a"] + 0.75 * maps["prob"]["b"]
    np.testing.assert_allclose(prob, _sharpened(mean, 0.5), atol=1e-5)
    stats = json.loads((out / "s" / "stats.json").read_text())
    assert stats["model"] == [str(maps["a"].absolute()), str(maps["b"].absolute())]
    assert stats["weights"] == [0.25, 0.75] and stats["temperature"] == 0.5
