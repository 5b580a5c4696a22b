"""The inference API as a notebook calls it: load_predictor reads model references and options as the commands
do, with one-line errors naming the argument; predict_samples predicts Samples; the back-ends refuse a batch that
is not pre-processed network input; infer_chips records what the CLI records."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing, network_input
from floodwatch.data.sample import Sample
from floodwatch.data.synthetic import synth_chips
from floodwatch.errors import DataError, InvalidArgumentError
from floodwatch.inference import load_predictor
from floodwatch.models.zoo import DEFAULT_MODEL

from tests.data import fakes
from tests.models.zoo_checks import default_zoo, tiny_onnx  # noqa: F401


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    return min((fakes.sen1floods11(tmp_path_factory.mktemp("api") / "s", chips=1) / "S1Hand").glob("*.tif"))


def test_infer_chips_from_python_writes_the_summary_the_cli_writes(chip, tiny_checkpoint, run_cli, tmp_path):
    from floodwatch.inference.chips import infer_chips

    other = shutil.copy(tiny_checkpoint, tmp_path / "other.pt")
    r = run_cli("infer", chip, "-m", tiny_checkpoint, "-m", other, "--weights", "2,1", "--tta-transforms", "hflip",
                "--downsample", "2", "-o", tmp_path / "cli", "-q")
    assert r.returncode == 0, r.stderr
    infer_chips(load_predictor([tiny_checkpoint, other], weights=[2, 1], tta="hflip", downsample=2), [chip],
                tmp_path / "py", progress=False)
    cli, py = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("cli", "py"))
    assert py["model"] == [str(tiny_checkpoint.absolute()), str(other.absolute())]
    assert (py["tta"], py["weights"], py["downsample"]) == (["hflip"], [pytest.approx(2 / 3), pytest.approx(1 / 3)], 2)
    assert {k: v for k, v in py.items() if k != "chips"} == {k: v for k, v in cli.items() if k != "chips"}


def test_predict_samples_gives_each_samples_probability_from_its_network_input(tiny_checkpoint):
    from floodwatch.inference import predict_samples

    samples = synth_chips(3, size=32, seed=1) + synth_chips(2, size=40, seed=2)  # two sizes: two batches
    samples[0].valid[:4] = False
    p = load_predictor(tiny_checkpoint)
    got = predict_samples(p, samples, batch=2)
    assert [g.shape for g in got] == [(32, 32)] * 3 + [(40, 40)] * 2
    for s, g in zip(samples, got):
        want = p.predict(network_input(s, p.preprocessing)[None])[0]
        np.testing.assert_allclose(g[s.valid], want[s.valid], atol=1e-5)
        assert np.isnan(g[~s.valid]).all()
    with pytest.raises(InvalidArgumentError, match="^batch: 0"):
        predict_samples(p, samples, batch=0)


def test_db_given_as_network_input_is_refused_by_name_and_network_input_never_is(tiny_checkpoint):
    """dB straight into predict gave confident nonsense without a word."""
    p = load_predictor(tiny_checkpoint)
    s = synth_chips(1, size=32, seed=0)[0]
    with pytest.raises(DataError, match=r"tiny\.pt: takes pre-processed inputs.*\(VH\).*network_input"):
        p.predict(s.image[None])
    # a chip at the noise floor (every pixel clipped to -50 dB) is as low as network input goes: it is taken
    floor = Sample(image=np.full((2, 32, 32), -60.0, np.float32), mask=None, valid=np.ones((32, 32), bool), id="f")
    x = network_input(floor, Preprocessing())[None]
    assert x.min() < -6 and p.predict(x).shape == (1, 32, 32)
    assert p.predict(np.random.default_rng(0).normal(0, 1.5, (2, 2, 64, 64))).shape == (2, 64, 64)


@pytest.mark.parametrize("shape", [(2, 64, 64), (1, 3, 64, 64)], ids=["rank-3", "three-channels"])
def test_a_batch_of_the_wrong_shape_is_refused_naming_the_shape_expected(tiny_checkpoint, shape):
    with pytest.raises(DataError, match=r"tiny\.pt: takes a batch .* of shape \(N, 2, H, W\), got shape"):
        load_predictor(tiny_checkpoint).predict(np.zeros(shape, np.float32))


def test_model_references_mean_what_they_mean_on_the_command_line(default_zoo):
    from floodwatch.inference.base import predictor_model_file

    onnx, checkpoint = str(default_zoo / DEFAULT_MODEL / "model.onnx"), str(default_zoo / DEFAULT_MODEL / "model.pt")
    assert predictor_model_file(load_predictor(None)) == onnx  # auto runs a registered model's ONNX file, as -m
    assert predictor_model_file(load_predictor(DEFAULT_MODEL)) == onnx
    assert predictor_model_file(load_predictor(DEFAULT_MODEL, "torch")) == checkpoint


WRONG = [
    ({"model": {"model": "m.pt"}}, "^model: expected a model file.*got dict"),
    ({"model": 3}, "^model: expected a model file.*got int 3"),
    ({"model": ["m.pt", 3]}, "^model: expected"),
    ({"tta": 5}, "^tta: expected True, 'd4' or transform names.*got 5"),
    ({"weights": "2,1"}, "^weights: expected a list of 2 numbers.*'2,1'"),
]


@pytest.mark.parametrize("kwargs, message", WRONG, ids=["model-dict", "model-int", "model-list-int", "tta-int",
                                                         "weights-string"])
def test_wrong_types_are_one_line_errors_naming_the_argument(tiny_checkpoint, kwargs, message):
    kwargs = {"model": [tiny_checkpoint, tiny_checkpoint] if "weights" in kwargs else tiny_checkpoint, **kwargs}
    with pytest.raises(InvalidArgumentError, match=message) as err:
        load_predictor(**kwargs)
    assert "\n" not in str(err.value)


def test_temperature_is_a_number_or_a_temperature_file(tiny_checkpoint, tmp_path):
    from floodwatch.inference.base import predictor_settings
    from floodwatch.inference.temperature import TemperaturePredictor, save_temperature

    saved = save_temperature(tmp_path / "t.json", 1.5)
    assert predictor_settings(load_predictor(tiny_checkpoint, temperature=saved))["temperature"] == 1.5
    with pytest.raises(DataError, match="missing.json"):
        load_predictor(tiny_checkpoint, temperature=str(tmp_path / "missing.json"))
    with pytest.raises(InvalidArgumentError, match="^temperature: expected a number, got the path 't.json'"):
        TemperaturePredictor(load_predictor(tiny_checkpoint), "t.json")


def test_an_unknown_backend_is_refused_before_the_model_is_fetched(monkeypatch, tmp_path):
    """Refused only after resolving the model, a URL model was downloaded (or its server's error reported)
    before the misspelt back-end was."""
    from tests.ports import free_port

    monkeypatch.setenv("FLOODWATCH_CACHE", str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{free_port()}/m/model.onnx#sha256={'a' * 64}"
    with pytest.raises(InvalidArgumentError, match=r"^backend: unknown back-end 'tensorrt' \(auto, torch, onnx, "
                                                   r"triton\)$"):
        load_predictor(url, backend="tensorrt")
