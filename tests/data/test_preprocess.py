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


def _anchored(**kw):
    return Preprocessing(offset=[-10.0, -17.0], scale=[0.2, 0.2], clip=[(-30.0, 5.0), (-40.0, 0.0)],
                         anchor_percentile=80.0, anchor_db=[-9.0, -16.0], **kw)


def test_anchor_moves_each_chips_percentile_to_its_level_per_band():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(-11.0, 2.0, (2, 16, 16)), rng.normal(-6.0, 1.0, (2, 16, 16))]).astype(np.float32)
    x[:, 1] -= 7.0  # VH darker
    pp = _anchored()
    y = pp.derive(x)
    for n in range(2):
        for b, level in enumerate([-9.0, -16.0]):
            assert np.percentile(y[n, b], 80) == pytest.approx(level, abs=1e-4)
            # a shift, not a stretch: differences within the band are kept
            assert np.allclose(y[n, b] - y[n, b, 0, 0], x[n, b] - x[n, b, 0, 0], atol=1e-5)


def test_anchored_input_does_not_depend_on_a_chips_absolute_level():
    rng = np.random.default_rng(1)
    x = rng.normal([[[-12.0]], [[-19.0]]], 3.0, (2, 32, 32)).astype(np.float32)
    pp = _anchored()
    assert np.allclose(pp.apply(x), pp.apply(x + np.float32(4.0)), atol=1e-5)
    assert np.allclose(pp.apply(x), pp.apply(x - np.array([[[2.0]], [[5.0]]], np.float32)), atol=1e-5)
    absolute = Preprocessing(offset=[-10.0, -17.0], scale=[0.2, 0.2], clip=[(-30.0, 5.0), (-40.0, 0.0)])
    assert not np.allclose(absolute.apply(x), absolute.apply(x + np.float32(4.0)))


def test_anchor_ignores_nodata_and_invalid_pixels_and_clips_after():
    x = np.full((2, 4, 4), -10.0, np.float32)
    x[:, 0, :] = -40.0         # marked invalid below: would drag the percentile down if counted
    x[:, 1, 0] = np.nan
    valid = np.ones((4, 4), bool)
    valid[0, :] = False
    pp = Preprocessing(offset=[0.0, 0.0], scale=[1.0, 1.0], clip=[(-12.0, 0.0), (-30.0, 0.0)],
                       anchor_percentile=50.0, anchor_db=[-5.0, -20.0])
    y = pp.apply(x, valid)
    assert np.allclose(y[0, 2:], -5.0) and np.allclose(y[1, 2:], -20.0)
    assert np.all(y[:, 0, :] == 0.0) and np.all(y[:, 1, 0] == 0.0)  # nodata -> fill
    # anchored first, then clipped: VV lands on -5, within (-12, 0); a level beyond the clip is clipped
    low = Preprocessing(offset=[0.0, 0.0], scale=[1.0, 1.0], clip=[(-12.0, 0.0), (-30.0, 0.0)],
                        anchor_percentile=50.0, anchor_db=[-15.0, -20.0])
    assert np.allclose(low.apply(x, valid)[0, 2:], -12.0)


def test_anchor_round_trips_and_bad_settings_are_named():
    pp = _anchored()
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    assert any("p80" in line and "-9;-16" in line for line in pp.nvinfer_lines())
    with pytest.raises(FloodwatchError, match="anchor_db: 1 levels for 2 bands"):
        Preprocessing(anchor_percentile=80, anchor_db=[-9.0])
    with pytest.raises(FloodwatchError, match="go together"):
        Preprocessing(anchor_percentile=80)
    with pytest.raises(FloodwatchError, match="anchor_percentile: 120"):
        Preprocessing(anchor_percentile=120, anchor_db=[-9.0, -16.0])
    batch = np.stack([np.full((2, 8, 8), -10.0, np.float32), np.full((2, 8, 8), -3.0, np.float32)])
    assert np.allclose(pp.apply(batch)[0], pp.apply(batch)[1])  # a batch: each chip its own anchor
