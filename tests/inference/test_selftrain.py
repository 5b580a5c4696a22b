"""Test-time self-training: which pixels teach, what it learns from them, and that the model comes back."""
import numpy as np
import pytest
import torch
from torch import nn

from floodwatch.errors import DataError, InvalidArgumentError
from floodwatch.inference.base import water_probability
from floodwatch.inference.selftrain import IGNORE, SelfTraining, pseudo_labels, self_train, self_trained, torch_model


class PixelPredictor:
    """A per-pixel logistic model on the first channel: water logit - land logit = -k (x - boundary)."""

    def __init__(self, k: float = 1.5, boundary: float = -2.0):
        self.model = nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            self.model.weight.zero_()
            self.model.bias.zero_()
            self.model.weight[1, 0] = -k
            self.model.bias[1] = k * boundary
        self.preprocessing = None

    @torch.no_grad()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        return water_probability(self.model(torch.from_numpy(np.asarray(batch, np.float32))))


def chip(values: list[float], size: int = 16) -> np.ndarray:
    """A (2, size, size) chip whose first channel holds `values` in equal bands of rows."""
    x = np.zeros((2, size, size), np.float32)
    for i, rows in enumerate(np.array_split(np.arange(size), len(values))):
        x[0, rows] = values[i]
    return x


FAST = SelfTraining(steps=50, batch=4, crop=8, learning_rate=0.05, confidence=0.9)


def test_pseudo_labels_keep_only_confident_valid_pixels():
    prob = np.array([[0.95, 0.9, 0.5], [0.1, 0.05, 0.99]], np.float32)
    valid = np.array([[True, True, True], [True, True, False]])
    expected = np.array([[1, 1, IGNORE], [0, 0, IGNORE]])
    np.testing.assert_array_equal(pseudo_labels(prob, valid, 0.9), expected)


def test_what_it_is_sure_of_carries_to_what_it_was_not():
    # water at -4 dB-like values (p 0.95: confident), water at -1 (p 0.18: unsure, left out), land at +3 (confident)
    predictor = PixelPredictor()
    x = chip([-4.0, -1.0, 3.0])
    before = predictor.predict(x[None])[0]
    assert before[0, 0] > 0.9 and 0.1 < before[8, 0] < 0.5 and before[-1, 0] < 0.1
    info = self_train(predictor, [x], [np.ones((16, 16), bool)], FAST)
    after = predictor.predict(x[None])[0]
    assert info["steps_run"] == 50 and info["labelled_pixels"] == 16 * 16 - 5 * 16  # the middle band unlabelled
    assert info["pseudo_water_pixels"] == 6 * 16
    assert after[8, 0] > before[8, 0] + 0.2  # the unsure water moved towards water
    assert after[0, 0] > 0.9 and after[-1, 0] < 0.1  # and what it was sure of stays so


def test_nodata_pixels_teach_nothing():
    # a 1x1 model: nodata pixels' values reach no other pixel, so only the loss could feel them
    x = chip([-4.0, -1.0, 3.0])
    valid = np.ones((16, 16), bool)
    valid[:, :5] = False
    weights = []
    for fill in (-50.0, 50.0):
        predictor = PixelPredictor()
        y = x.copy()
        y[:, ~valid] = fill
        self_train(predictor, [y], [valid], FAST)
        weights.append([p.detach().clone() for p in predictor.model.parameters()])
    for a, b in zip(*weights):
        torch.testing.assert_close(a, b)


def test_the_weights_come_back_after_the_block():
    predictor = PixelPredictor()
    original = [p.detach().clone() for p in predictor.model.parameters()]
    x = chip([-4.0, -1.0, 3.0])
    with self_trained(predictor, [x], [np.ones((16, 16), bool)], FAST):
        assert not torch.allclose(predictor.model.bias, original[1])
    for a, b in zip(original, predictor.model.parameters()):
        torch.testing.assert_close(a, b)
    assert not predictor.model.training


def test_nothing_confident_leaves_the_model_as_it_was():
    predictor = PixelPredictor(k=0.1)  # p within 0.45-0.55 everywhere
    original = [p.detach().clone() for p in predictor.model.parameters()]
    info = self_train(predictor, [chip([-1.0, 1.0])], [np.ones((16, 16), bool)], FAST)
    assert info["labelled_pixels"] == 0 and info["steps_run"] == 0
    for a, b in zip(original, predictor.model.parameters()):
        torch.testing.assert_close(a, b)


def test_small_chips_make_small_crops_and_many_chips_are_sampled():
    predictor = PixelPredictor()
    chips = [chip([-4.0, 3.0], size=6) for _ in range(10)]
    info = self_train(predictor, chips, [np.ones((6, 6), bool)] * 10,
                      SelfTraining(steps=3, batch=2, crop=256, max_chips=4))
    assert info["chips"] == 4 and info["steps_run"] == 3


def test_an_edge_chip_smaller_than_a_crop_sits_out_and_leaves_the_crops_whole(monkeypatch):
    from floodwatch.inference import selftrain

    sizes = []
    crop = selftrain._crop
    monkeypatch.setattr(selftrain, "_crop", lambda x, labels, size, rng: sizes.append((x.shape, size))
                        or crop(x, labels, size, rng))
    chips = [chip([-4.0, 3.0], size=16), chip([-4.0, 3.0], size=4)]
    info = self_train(PixelPredictor(), chips, [np.ones((16, 16), bool), np.ones((4, 4), bool)],
                      SelfTraining(steps=4, batch=2, crop=8))
    assert info["steps_run"] == 4 and {size for _, size in sizes} == {8} and {s for s, _ in sizes} == {(2, 16, 16)}


def test_steps_without_a_labelled_pixel_are_not_counted():
    # the top half of a 16 px chip confident, the rest not: about half the 2 px crops hold no labelled pixel
    # (8 of 15 crop rows do), so among 20 single-crop batches some are skipped and some are not
    x = np.zeros((2, 16, 16), np.float32)  # p = sigmoid(-1.5 * 2) = 0.047: land
    x[0, 8:] = -2.0  # p = 0.5: unsure, left out
    info = self_train(PixelPredictor(), [x], [np.ones((16, 16), bool)], SelfTraining(steps=20, batch=1, crop=2))
    assert info["labelled_pixels"] == 8 * 16 and 0 < info["steps_run"] < 20


def test_refuses_what_cannot_learn_and_bad_settings():
    class OnnxLike:
        preprocessing = None

        def predict(self, batch):
            return np.zeros(batch.shape[:1] + batch.shape[2:], np.float32)

    with pytest.raises(InvalidArgumentError, match="self_train: needs one torch checkpoint"):
        torch_model(OnnxLike())
    with pytest.raises(InvalidArgumentError, match="self_train: confidence 0.4"):
        SelfTraining(confidence=0.4).validate()
    with pytest.raises(InvalidArgumentError, match="self_train: steps 0"):
        SelfTraining(steps=0).validate()
    with pytest.raises(InvalidArgumentError, match="self_train: seed -1 must be at least 0"):
        SelfTraining(seed=-1).validate()
    with pytest.raises(InvalidArgumentError, match="self_train: steps 2.5 must be an integer"):
        SelfTraining(steps=2.5).validate()

    class Downsampled:  # what load_predictor(..., downsample=2) wraps the torch back-end in
        def __init__(self, base):
            self.base, self.preprocessing = base, None
    Downsampled.__name__ = "DownsampledPredictor"
    with pytest.raises(InvalidArgumentError, match="self_train: .*not with `downsample`"):
        torch_model(Downsampled(PixelPredictor()))
    with pytest.raises(DataError, match="no chip"):
        self_train(PixelPredictor(), [], [])
