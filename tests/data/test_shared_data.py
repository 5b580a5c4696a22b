"""The readers on the real data in ../shared/data (skipped where it is absent)."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.data import IGNORE_INDEX, WATER, open_dataset
from floodwatch.data.harmonise import EIGHT_BIT_TO_DB, fit_mode_map
from floodwatch.data.inspect import inspect_dataset
from floodwatch.errors import DataError

ETCI_SCENE = "etci2021/northal_20190302t234651"


def test_sen1floods11_real_chips(shared_data):
    ds = open_dataset(shared_data / "sen1floods11")
    assert ds.format == "sen1floods11" and len(ds) == 10
    assert set(ds.splits) == {"test"} and len(open_dataset(shared_data / "sen1floods11", split="test")) == 10
    # Ghana_7496, in the train list, is unlabelled: a labelled data set has no train chip
    with pytest.raises(DataError, match="none of the labelled chips here are in the 'train' split"):
        open_dataset(shared_data / "sen1floods11", split="train")
    paraguay, ghana_all_ignore, ghana_dry = ds.get("Paraguay_34417"), ds.get("Ghana_83483"), ds.get("Ghana_53713")
    assert not paraguay.valid.any() and paraguay.is_empty and (paraguay.mask == IGNORE_INDEX).all()
    assert ghana_all_ignore.is_empty and ghana_all_ignore.valid.any()
    assert not ghana_dry.is_empty and not (ghana_dry.mask == WATER).any()
    india = ds.get("India_900498")
    assert india.region == "India" and india.georef.crs == "EPSG:4326" and india.image.shape == (2, 512, 512)
    assert int((india.mask == WATER).sum()) == 123953  # chips.csv value_summary: 1:123953
    vv = india.image[0][india.valid]
    assert -60 < vv.min() and vv.max() < 20 and np.median(india.image[0][india.mask == WATER]) < -12
    assert len(open_dataset(shared_data / "sen1floods11", labelled_only=False)) == 12


def test_sen1floods11_inspect(shared_data):
    r = inspect_dataset(shared_data / "sen1floods11")
    assert r["chips"] == 12 and r["empty_chips"] == ["Ghana_83483", "Paraguay_34417"]
    assert r["class_balance"]["water"] == 458076 and r["class_balance"]["not_water"] == 1285954
    assert "Ghana_53713" in r["no_water_chips"] and r["per_region"]["Ghana"]["chips"] == 4


def test_etci_real_scene(shared_data):
    ds = open_dataset(shared_data / ETCI_SCENE)
    assert ds.format == "etci" and len(ds) == 356
    assert len(open_dataset(shared_data / "etci2021")) == 356 + 799  # North Alabama + Bangladesh
    grids = [r.extra["grid"] for r in ds.records]
    assert len(set(grids)) == 356
    fixed = ds.get("northal_20190302t234651_x-10_y-10")  # the default: one fixed ETCI map
    s = open_dataset(shared_data / ETCI_SCENE, harmonise="scene").get("northal_20190302t234651_x-10_y-10")
    assert s.image.shape == (2, 256, 256) and s.valid.all() and s.extra["grid"] == (10, 10)
    lo, hi = EIGHT_BIT_TO_DB["etci"]["VV"][1], EIGHT_BIT_TO_DB["etci"]["VV"][1] + 255 * EIGHT_BIT_TO_DB["etci"]["VV"][0]
    assert lo - 1e-3 <= fixed.image[0].min() and fixed.image[0].max() <= hi + 1e-3
    # the scene's own map lands within 0.2 dB of the source map fitted on the same scene's modes
    assert np.abs(s.image - fixed.image).max() < 0.2


def test_etci_scenes_get_their_own_db_maps(shared_data):
    """Bangladesh renders flood brighter (median VV 84 of 255 against 16): its own map puts its dark mode on
    the same dB as North Alabama's. Labels are used here only to check, never to fit."""
    bangla = open_dataset(shared_data / "etci2021" / "bangladesh_20170314t115609", harmonise="scene")
    s = bangla.get("bangladesh_20170314t115609_x-0_y-33")  # 48 % outside the swath: 255 in VV and VH
    assert 0.50 < s.valid.mean() < 0.53 and np.isnan(s.image[:, ~s.valid]).all()
    vv_map = s.extra["db_map"]["VV"]
    assert vv_map[0] > 2 * EIGHT_BIT_TO_DB["etci"]["VV"][0]  # a steeper map than North Alabama's
    flood_vv = np.concatenate([c.image[0][(c.mask == WATER) & c.valid] for c in (bangla[i] for i in range(0, 799, 40))])
    assert np.median(flood_vv) < -14.0  # was -11.6 dB (84 of 255) through the fixed map: land-like


def test_ombria_real(shared_data):
    ds = open_dataset(shared_data / "ombria_s1")
    assert ds.format == "ombria" and len(ds) == 694
    assert len(open_dataset(shared_data / "ombria_s1", split="train")) == 624
    assert len(open_dataset(shared_data / "ombria_s1", split="test")) == 70
    s = ds[0]
    assert s.image.shape == s.before.shape == (1, 256, 256) and set(np.unique(s.mask)) <= {0, 1}
    assert -22 < s.image.min() and s.image.max() < -2


def test_documented_etci_map_refits(shared_data):
    """The constants in harmonise.py come from fit_mode_map on these files (an eighth of ETCI here)."""
    s1 = open_dataset(shared_data / "sen1floods11")
    etci = open_dataset(shared_data / ETCI_SCENE, water_body=False)[::8]
    for b, band in enumerate(("VV", "VH")):
        ref = np.concatenate([s.image[b][s.valid] for s in s1])
        slope0, icpt0 = EIGHT_BIT_TO_DB["etci"][band]
        values = np.concatenate([((s.image[b] - icpt0) / slope0).round().ravel() for s in etci])
        slope, icpt = fit_mode_map(values, ref)
        assert slope == pytest.approx(slope0, rel=0.1) and icpt == pytest.approx(icpt0, abs=1.0), band
