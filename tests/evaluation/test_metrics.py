import math

import numpy as np
import pytest
import torch

from floodwatch.errors import FloodwatchError
from floodwatch.evaluation.metrics import ConfusionAccumulator, confusion_counts, scores

# 3x3 chip, hand-counted: truth rows vs prediction
TARGET = np.array([[1, 1, 0],
                   [0, 0, 255],
                   [1, 0, 1]])
PRED = np.array([[1, 0, 0],
                 [1, 0, 1],
                 [1, 0, 0]])
# pixels (excluding the 255): (1,1) tp, (1,0) fn, (0,0) tn, (0,1) fp, (0,0) tn, [ignored], (1,1) tp, (0,0) tn, (1,0) fn
HAND = np.array([[3, 1], [2, 2]])


def test_confusion_counts_hand_numpy_and_torch():
    np.testing.assert_array_equal(confusion_counts(PRED, TARGET), HAND)
    c = confusion_counts(torch.from_numpy(PRED), torch.from_numpy(TARGET))
    assert c.dtype == np.int64
    np.testing.assert_array_equal(c, HAND)
    # boolean predictions and a batch dimension give the same thing
    np.testing.assert_array_equal(confusion_counts(PRED[None].astype(bool), TARGET[None]), HAND)


def test_valid_mask_excludes_pixels():
    valid = np.ones_like(TARGET, bool)
    valid[0, 1] = False  # the first fn
    np.testing.assert_array_equal(confusion_counts(PRED, TARGET, valid=valid), [[3, 1], [1, 2]])


def test_scores_from_hand_counts():
    s = scores(HAND)  # tn=3 fp=1 fn=2 tp=2
    assert s["water_iou"] == pytest.approx(2 / 5)
    assert s["not_water_iou"] == pytest.approx(3 / 6)
    assert s["miou"] == pytest.approx((2 / 5 + 3 / 6) / 2)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 4)
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert s["accuracy"] == pytest.approx(5 / 8)


def test_zero_over_zero_is_nan_and_skipped_in_chip_means():
    dry = scores([[10, 0], [0, 0]])
    assert math.isnan(dry["water_iou"]) and math.isnan(dry["precision"]) and math.isnan(dry["recall"])
    assert dry["not_water_iou"] == 1.0 and dry["miou"] == 1.0 and dry["accuracy"] == 1.0
    acc = ConfusionAccumulator()
    target = np.stack([np.zeros((4, 4), int), TARGET.repeat(2, 0).repeat(2, 1)[:4, :4], np.full((4, 4), 255)])
    pred = np.stack([np.zeros((4, 4), int), target[1].clip(0, 1), np.ones((4, 4), int)])
    acc.update(pred, target)
    out = acc.compute()
    assert out["chips"] == 2 and out["empty_chips"] == 1
    assert out["chips_with_defined_water_iou"] == 1
    assert out["water_iou_chip_mean"] == 1.0  # the dry chip's nan is skipped, not counted as 0 or 1
    assert out["water_iou"] == 1.0


def test_accumulator_matches_one_shot():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, (5, 8, 8))
    t[rng.random(t.shape) < 0.1] = 255
    p = rng.integers(0, 2, (5, 8, 8))
    acc = ConfusionAccumulator()
    for i in range(0, 5, 2):
        acc.update(p[i:i + 2], t[i:i + 2])
    np.testing.assert_array_equal(acc.counts, confusion_counts(p, t))
    assert acc.compute()["water_iou"] == pytest.approx(scores(confusion_counts(p, t))["water_iou"])
    per_chip = [scores(confusion_counts(p[i], t[i]))["f1"] for i in range(5)]
    assert acc.compute()["f1_chip_mean"] == pytest.approx(np.nanmean(per_chip))


def test_bad_input_raises():
    with pytest.raises(FloodwatchError, match="shape"):
        confusion_counts(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(FloodwatchError, match="other than"):
        confusion_counts(np.zeros((2, 2)), np.full((2, 2), 7))
