"""Preprocessing: the one normalisation, checked against numpy."""
import numpy as np
import pytest

from floodwatch.data.preprocess import DEFAULT_CLIP, Preprocessing
from floodwatch.errors import FloodwatchError


def test_apply_is_scale_times_x_minus_offset_after_clipping_and_fills_nodata():
    pp = Preprocessing(offset=[-10.0, -20.0], scale=[0.5, 0.25])
    x = np.array([[[-60.0, -10.0], [0.0, np.nan]], [[-20.0, 10.0], [-24.0, -30.0]]], np.float32)
    valid = np.array([[True, True], [True, False]])
    y = pp.apply(x, valid)
    clipped = np.clip(x, *DEFAULT_CLIP)
    expected = (clipped - np.array([-10.0, -20.0]).reshape(2, 1, 1)) * np.array([0.5, 0.25]).reshape(2, 1, 1)
    expected[:, 1, 1] = 0.0
    assert np.allclose(y, expected) and y.dtype == np.float32


def test_one_band_gets_one_clip_range_and_round_trips():
    pp = Preprocessing(bands=["VV"], offset=[-15.0], scale=[0.2])
    assert pp.clip == [DEFAULT_CLIP]
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    assert Preprocessing.from_stats([-15.0], [5.0], bands=["VV"]).clip == [DEFAULT_CLIP]


def test_derived_difference_channel_and_mismatch_errors():
    pp = Preprocessing(derived="diff", offset=[0, 0, 0], scale=[1, 1, 1])
    x = np.array([[[-10.0]], [[-18.0]]], np.float32)
    assert np.allclose(pp.apply(x)[:, 0, 0], [-10.0, -18.0, 8.0])
    with pytest.raises(FloodwatchError, match="expects 2"):
        pp.apply(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(FloodwatchError, match="offset/scale"):
        Preprocessing(offset=[0.0], scale=[1.0])
