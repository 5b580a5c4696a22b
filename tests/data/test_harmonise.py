"""The 8-bit <-> dB maps: the two-mode fit recovers a known line whatever the mix of the two modes."""
import numpy as np
import pytest

from floodwatch.data.harmonise import fit_mode_map, mode_medians, to_8bit, to_db


def _bimodal(rng, n, share_dark, dark, bright, spread):
    k = int(n * share_dark)
    return np.concatenate([rng.normal(dark, spread, k), rng.normal(bright, spread, n - k)])


def test_mode_medians_of_two_separated_modes():
    rng = np.random.default_rng(0)
    d, b = mode_medians(_bimodal(rng, 200_000, 0.3, -20.0, -8.0, 1.5))
    assert d == pytest.approx(-20.0, abs=0.1) and b == pytest.approx(-8.0, abs=0.1)
    with pytest.raises(ValueError, match="single mode"):
        mode_medians(np.full(10, 3.0))


@pytest.mark.parametrize("share_source,share_reference", [(0.05, 0.26), (0.3, 0.3), (0.5, 0.1)])
def test_fit_recovers_the_line_for_any_water_share(share_source, share_reference):
    """A rendering v = (dB - b) / a of the same two surfaces, with different water shares on each side
    (ETCI 5 %, Sen1Floods11 26 %), must give back (a, b): a quantile match would not."""
    rng = np.random.default_rng(1)
    a, b = 0.05, -15.0
    reference = _bimodal(rng, 300_000, share_reference, -20.0, -9.0, 1.0)
    source = (_bimodal(rng, 300_000, share_source, -20.0, -9.0, 1.0) - b) / a
    slope, intercept = fit_mode_map(source, reference)
    assert slope == pytest.approx(a, rel=0.03) and intercept == pytest.approx(b, abs=0.3)


def test_maps_round_trip_8bit():
    v = np.arange(256, dtype=np.uint8)
    for source, band in (("etci", "VV"), ("etci", "VH"), ("ombria", "VV"), ("folders", "VH")):
        np.testing.assert_array_equal(to_8bit(to_db(v, source, band), source, band), v)
