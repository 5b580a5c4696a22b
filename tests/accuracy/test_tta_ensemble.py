import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import CheckpointError, FloodwatchError
from floodwatch.inference import load_predictor
from floodwatch.inference.ensemble import EnsemblePredictor
from floodwatch.inference.predictor import Predictor
from floodwatch.inference.tta import D4, TTAPredictor, parse_transforms

from .conftest import ConstantPredictor, PixelwisePredictor, PositionalPredictor

BATCH = np.random.default_rng(0).normal(size=(3, 2, 16, 16)).astype(np.float32)


def test_tta_is_exact_for_an_equivariant_predictor():
    base = PixelwisePredictor()
    tta = TTAPredictor(base, D4)
    assert isinstance(tta, Predictor)
    np.testing.assert_allclose(tta.predict(BATCH), base.predict(BATCH), rtol=0, atol=1e-6)


def test_tta_equals_manual_numpy_average_for_a_positional_predictor():
    base = PositionalPredictor()
    views = [
        base.predict(BATCH),
        np.flip(base.predict(np.flip(BATCH, -1).copy()), -1),
        np.flip(base.predict(np.flip(BATCH, -2).copy()), -2),
        np.rot90(base.predict(np.rot90(BATCH, 1, axes=(2, 3)).copy()), -1, axes=(1, 2)),
        np.swapaxes(base.predict(np.swapaxes(BATCH, 2, 3).copy()), 1, 2),
    ]
    manual = np.mean(views, axis=0)
    got = TTAPredictor(base, ("identity", "hflip", "vflip", "rot90", "transpose")).predict(BATCH)
    np.testing.assert_allclose(got, manual, atol=1e-6)
    # and it is not trivially the identity view
    assert np.abs(got - views[0]).max() > 1e-3


def test_tta_rot90_on_non_square_batch_returns_input_shape():
    batch = BATCH[:, :, :8, :]
    assert TTAPredictor(PositionalPredictor(), ("rot90", "rot270")).predict(batch).shape == (3, 8, 16)


def test_parse_transforms():
    assert parse_transforms(True) == ("identity", "hflip", "vflip", "rot90")
    assert parse_transforms("d4") == D4
    assert parse_transforms("hflip, vflip") == ("hflip", "vflip")
    with pytest.raises(FloodwatchError, match="unknown transform.*spin"):
        parse_transforms("hflip,spin")


def test_ensemble_weighted_average():
    ens = EnsemblePredictor([ConstantPredictor(0.2), ConstantPredictor(0.8)], weights=[3, 1])
    np.testing.assert_allclose(ens.predict(BATCH), 0.35, atol=1e-6)
    equal = EnsemblePredictor([ConstantPredictor(0.2), PixelwisePredictor()])
    np.testing.assert_allclose(equal.predict(BATCH), (0.2 + PixelwisePredictor().predict(BATCH)) / 2, atol=1e-6)


def test_ensemble_rejects_mismatched_preprocessing_naming_the_model():
    other = Preprocessing(offset=[-10.0, -20.0])
    with pytest.raises(CheckpointError, match="b.pt: its preprocessing"):
        EnsemblePredictor([ConstantPredictor(0.1), ConstantPredictor(0.1, other)], names=["a.pt", "b.pt"])
    with pytest.raises(FloodwatchError, match="weights"):
        EnsemblePredictor([ConstantPredictor(0.1), ConstantPredictor(0.1)], weights=[1, -1])
    bitemporal = ConstantPredictor(0.1, meta={"model_config": {"temporal": "bitemporal"}})
    with pytest.raises(CheckpointError, match="model 2"):
        EnsemblePredictor([ConstantPredictor(0.1), bitemporal])


def test_load_predictor_builds_ensemble_tta_and_temperature(tiny_checkpoints):
    a, b = tiny_checkpoints
    batch = np.random.default_rng(1).normal(size=(2, 2, 32, 32)).astype(np.float32)
    pa, pb = load_predictor(a).predict(batch), load_predictor(b).predict(batch)
    ens = load_predictor([a, b])
    assert isinstance(ens, EnsemblePredictor)
    np.testing.assert_allclose(ens.predict(batch), (pa + pb) / 2, atol=1e-5)
    tta = load_predictor([a], tta="hflip")
    flipped = np.flip(load_predictor(a).predict(np.flip(batch, -1).copy()), -1)
    np.testing.assert_allclose(tta.predict(batch), flipped, atol=1e-5)
    hot = load_predictor(a, temperature=2.0).predict(batch)
    z = np.log(pa) - np.log1p(-pa)
    np.testing.assert_allclose(hot, 1 / (1 + np.exp(-z / 2)), atol=1e-4)
    with pytest.raises(FloodwatchError, match="weights"):
        load_predictor(a, weights=[1.0])
