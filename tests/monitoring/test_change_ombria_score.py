"""score_change_on_ombria on small OMBRIA folders written here: models get each date as change gives it,
pixels outside the swath are not scored, and a method without any IoU says null (strict JSON)."""
import json

import numpy as np
import pytest
from PIL import Image

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import DataError
from floodwatch.monitoring import score_change_on_ombria


class AllWater:
    """A single-date stand-in model that calls every pixel water."""

    def __init__(self, bands=("VV",)):
        self.preprocessing = Preprocessing(bands=list(bands), offset=[-12.0] * len(bands), scale=[0.2] * len(bands))
        self.meta = {"model_config": {"temporal": "single"}}

    def predict(self, x):
        return np.ones((x.shape[0],) + x.shape[2:], np.float32)


def _ombria(root, after, before, mask, n=1):
    for kind, picture in (("AFTER", after), ("BEFORE", before), ("MASK", mask)):
        (root / "test" / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture.astype(np.uint8)).save(root / "test" / kind / f"S1_{kind.lower()}_{n:04d}.png")
    return root


def test_a_model_of_other_bands_is_refused_naming_the_chip(tmp_path):
    flat = np.full((32, 32), 150)
    root = _ombria(tmp_path, flat, flat, np.zeros((32, 32)))
    for bands in (("VH",), ("VV", "VH")):
        with pytest.raises(DataError, match="^0001: data has 1 band"):
            score_change_on_ombria(root, AllWater(bands))


def test_pixels_outside_the_swath_are_not_scored(tmp_path):
    after = np.full((32, 32), 150)
    after[:, :16] = 255  # outside the swath: half the chip
    mask = np.zeros((32, 32))
    mask[:8, 16:] = 255  # a quarter of what was seen flooded
    res = score_change_on_ombria(_ombria(tmp_path, after, np.full((32, 32), 150), mask), AllWater())
    # all water where seen: 128 flooded pixels of the 512 seen
    assert res["iou"]["water_after"] == pytest.approx(128 / 512)
    assert res["flood_fraction"] == pytest.approx(128 / 512)


def test_a_method_with_nothing_predicted_or_labelled_has_no_iou(tmp_path):
    flat = np.full((32, 32), 150)
    res = score_change_on_ombria(_ombria(tmp_path, flat, flat, np.zeros((32, 32))))
    assert res["iou"]["logratio_-3db"] is None
    json.dumps(res, allow_nan=False)
