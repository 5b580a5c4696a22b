import numpy as np
import pytest
from PIL import Image

from floodwatch.data.harmonise import EIGHT_BIT_TO_DB
from floodwatch.data.preprocess import Preprocessing
from floodwatch.monitoring import score_change_on_ombria


class VVThreshold:
    """Single-date stand-in model on 1-band (VV) input: dark is water."""

    preprocessing = Preprocessing(bands=["VV"], clip=[(-50, 5)], offset=[-12.0], scale=[0.2])
    meta = {"model_config": {"temporal": "single"}}

    def predict(self, x):
        return (x[:, 0] < (-15 + 12) * 0.2).astype(np.float32)


class StackedDrop(VVThreshold):
    """Bi-temporal stand-in: [before, after] channels; new water where after is 3 dB darker."""

    meta = {"model_config": {"temporal": "bitemporal"}}

    def predict(self, x):
        assert x.shape[1] == 2
        return ((x[:, 1] - x[:, 0]) < -3 * 0.2).astype(np.float32)


def test_logratio_baseline_matches_raw_pixels(shared_data):
    root = shared_data / "ombria_s1"
    res = score_change_on_ombria(root)
    assert res["chips"] == 70
    # independent reference from the PNGs: the reader's 8-bit->dB map is linear, dB = slope * v + intercept
    inter = union = 0
    for after in sorted((root / "test" / "AFTER").glob("*.png")):
        n = after.stem.split("_")[-1]
        a = np.asarray(Image.open(after), np.float64)
        b = np.asarray(Image.open(root / "test" / "BEFORE" / f"S1_before_{n}.png"), np.float64)
        m = np.asarray(Image.open(root / "test" / "MASK" / f"S1_mask_{n}.png")) == 255
        p = EIGHT_BIT_TO_DB["ombria"]["VV"][0] * (a - b) < -3.0
        inter += (p & m).sum()
        union += (p | m).sum()
    assert res["iou"]["logratio_-3db"] == pytest.approx(inter / union, abs=2e-3)
    assert 0 < res["iou"]["logratio_otsu"] < 1


def test_model_methods(shared_data):
    single = score_change_on_ombria(shared_data / "ombria_s1", VVThreshold())
    assert set(single["iou"]) == {"logratio_-3db", "logratio_otsu", "difference", "water_after"}
    stacked = score_change_on_ombria(shared_data / "ombria_s1", StackedDrop())
    # the stand-in bi-temporal model is the -3 dB log-ratio, so the scores agree
    assert stacked["iou"]["bitemporal"] == pytest.approx(stacked["iou"]["logratio_-3db"], abs=5e-3)
