import numpy as np
import pytest

from floodwatch.data.sample import Sample
from floodwatch.errors import DataError
from floodwatch.evaluation.otsu import OtsuBaseline, otsu_threshold, otsu_water, pooled_threshold, scene_thresholds


def brute_force_between_variance(values, t):
    """Independent reference: between-class variance on the raw pixels for split `v < t`."""
    lo, hi = values[values < t], values[values >= t]
    if lo.size == 0 or hi.size == 0:
        return 0.0
    w0, w1 = lo.size / values.size, hi.size / values.size
    return w0 * w1 * (lo.mean() - hi.mean()) ** 2


def test_threshold_maximises_between_class_variance_on_raw_pixels():
    rng = np.random.default_rng(1)
    for seed_shift, (m_water, m_land, frac) in enumerate([(-22, -12, 0.3), (-25, -15, 0.1), (-20, -8, 0.6)]):
        n = 4000
        v = np.where(rng.random(n) < frac, rng.normal(m_water, 1.5, n), rng.normal(m_land, 2.0, n))
        t = otsu_threshold(v)
        # exhaustive search over every split between consecutive sorted pixel values
        s = np.sort(v)
        cands = (s[1:] + s[:-1]) / 2
        best = max(brute_force_between_variance(v, c) for c in cands[::7])
        assert brute_force_between_variance(v, t) >= 0.995 * best
        assert m_water < t < m_land


def test_otsu_water_excludes_nodata_and_marks_dark_pixels():
    img = np.full((16, 16), -10.0, np.float32)
    img[:, :6] = -24.0
    img[0, 0] = np.nan
    valid = np.ones((16, 16), bool)
    valid[:, -1] = False
    water = otsu_water(img, valid)
    expected = np.zeros((16, 16), bool)
    expected[:, :6] = True
    expected[0, 0] = False
    np.testing.assert_array_equal(water, expected)


def _sample(i, region, water_cols, extra=None):
    img = np.full((2, 8, 8), -8.0, np.float32)
    img[:, :, :water_cols] = -20.0
    return Sample(image=img, mask=None, valid=np.ones((8, 8), bool), id=f"c{i}", region=region, extra=extra or {})


def test_scene_scope_uses_one_threshold_per_region():
    # the dry chip alone would be split by its own per-chip threshold (noise); the scene threshold keeps it dry
    rng = np.random.default_rng(0)
    dry = _sample(0, "a", 0, {"source": "etci"})
    dry.image += rng.normal(0, 0.5, dry.image.shape).astype(np.float32)
    data = [dry, _sample(1, "a", 4, {"source": "etci"})]
    base = OtsuBaseline.for_dataset(data)
    assert base.scope == "scene" and base.band == "VV"
    assert not base.predict(data[0]).any()
    assert base.predict(data[1])[:, :4].all() and not base.predict(data[1])[:, 4:].any()
    assert OtsuBaseline(scope="chip").predict(data[0]).any()
    assert OtsuBaseline.for_dataset([_sample(0, "x", 3)]).scope == "chip"


def test_pooled_threshold_is_one_split_of_all_valid_pixels():
    rng = np.random.default_rng(3)
    chips = []
    for i, frac in enumerate((0.05, 0.4, 0.0)):  # mostly land, much water, dry
        n = 64 * 64
        v = np.where(rng.random(n) < frac, rng.normal(-25, 1.0, n), rng.normal(-14, 1.5, n))
        img = np.stack([v, v]).reshape(2, 64, 64).astype(np.float32)
        valid = np.ones((64, 64), bool)
        valid[:8] = False
        img[:, :8] = -45.0  # no-data pixels must not count
        chips.append(Sample(image=img, mask=None, valid=valid, id=f"c{i}", region=f"r{i}"))
    t = pooled_threshold(chips, "VH")
    values = np.concatenate([c.image[1][c.valid] for c in chips])
    assert abs(t - otsu_threshold(values)) < 0.3  # the histogram split of the pooled raw pixels
    assert -23 < t < -17
    # one region for all chips: the scene threshold is the same pooled split
    same = [Sample(image=c.image, mask=None, valid=c.valid, id=c.id, region="one") for c in chips]
    assert scene_thresholds(same, "VH") == {"one": t}
    empty = Sample(image=np.zeros((2, 4, 4), np.float32), mask=None, valid=np.zeros((4, 4), bool), id="e")
    assert np.isnan(pooled_threshold([empty], "VH"))
    vv_only = Sample(image=np.zeros((1, 4, 4), np.float32), mask=None, valid=np.ones((4, 4), bool), id="v",
                     bands=["VV"])
    with pytest.raises(DataError, match="v: no VH band"):
        pooled_threshold([vv_only], "VH")  # no silent fall-back to the first band


def test_etci_samples_as_a_bare_list_get_the_scene_vv_baseline(tmp_path):
    from floodwatch.data import open_dataset
    from floodwatch.evaluation.otsu import OtsuBaseline
    from tests.data import fakes

    samples = list(open_dataset(fakes.etci(tmp_path, cols=2, rows=1)))
    baseline = OtsuBaseline.for_dataset(samples)
    assert (baseline.band, baseline.scope) == ("VV", "scene")


def test_the_description_says_what_otsu_ran_on(tmp_path):
    """8-bit pictures (the course's folders, OMBRIA, ETCI) were described as "in dB" like measured backscatter,
    and a VV-only data set as "on VH" though Otsu fell back to its VV band."""
    from floodwatch.data import open_dataset, write_synthetic_dataset
    from tests.data import fakes

    def described(root):
        return OtsuBaseline.for_dataset(list(open_dataset(root))).describe()

    assert described(write_synthetic_dataset(tmp_path / "s1", chips=2, size=32, seed=0)) == \
        "Otsu on VH in dB, one threshold per chip"
    assert described(fakes.folders(tmp_path / "course", colour=True)) == \
        "Otsu on VH of 8-bit pictures (grey levels mapped to dB), one threshold per chip"
    assert described(fakes.ombria(tmp_path / "ombria")) == \
        "Otsu on VV of the after pictures (8-bit grey levels mapped to dB), one threshold per chip"
    assert described(fakes.etci(tmp_path / "etci", cols=2, rows=1)) == \
        "Otsu on VV of 8-bit pictures (grey levels mapped to dB), one threshold per scene"
