"""The synthetic generator: determinism, class statistics in dB, nodata, GeoTIFF round trip."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from scipy import special

from floodwatch.data.sample import IGNORE_INDEX, WATER
from floodwatch.data.synthetic import (LAND_DB, PHENOMENA, WATER_DB, synth_chips, synth_scene, write_scene,
                                       write_synthetic_dataset)
from floodwatch.errors import DataError, InvalidArgumentError


def test_deterministic_and_seed_dependent():
    a, b, c = synth_scene(96, 80, seed=7), synth_scene(96, 80, seed=7), synth_scene(96, 80, seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (2, 96, 80) and a.image.dtype == np.float32
    assert a.mask.shape == (96, 80) and a.valid.dtype == bool


def test_class_statistics_in_db():
    s = synth_scene(256, 256, seed=3, water_fraction=0.3)
    water, land = s.mask == WATER, s.mask == 0
    # means of dB values land on the targets because the speckle's dB bias is compensated
    for band in range(2):
        assert abs(s.image[band][water].mean() - WATER_DB[band]) < 1.0
        assert abs(s.image[band][land].mean() - LAND_DB[band]) < 1.0
    # speckle: gamma with L looks has a dB std of 10/ln10 * sqrt(trigamma(L)); land adds texture on top
    speckle_std = 10 / np.log(10) * np.sqrt(special.polygamma(1, s.extra["looks"]))
    assert abs(s.image[0][water].std() - speckle_std) < 1.0
    assert s.image[0][land].std() > speckle_std
    # the classes separate at a threshold between them (what Otsu would find)
    assert ((s.image[0] < -14) == water).mean() > 0.9


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5])
def test_water_fraction_is_honoured(fraction):
    s = synth_scene(128, 128, seed=1, water_fraction=fraction)
    assert abs((s.mask == WATER).mean() - fraction) < 0.01
    assert s.extra["water_fraction"] == pytest.approx((s.mask == WATER).mean())


def test_nodata_border_is_nan_and_ignored():
    s = synth_scene(128, 96, seed=2, nodata_border=10)
    for edge in (s.valid[:10], s.valid[-10:], s.valid[:, :10], s.valid[:, -10:]):
        assert not edge.any()
    assert np.isnan(s.image[:, ~s.valid]).all() and np.isfinite(s.image[:, s.valid]).all()
    assert (s.mask[~s.valid] == IGNORE_INDEX).all() and (s.mask[s.valid] != IGNORE_INDEX).all()


def test_georef_is_real():
    s = synth_scene(32, 32, origin=(600000.0, 4000000.0), pixel_size=20.0)
    assert s.georef.rasterio_crs().to_epsg() == 32616
    assert s.georef.affine() @ (0, 0) == (600000.0, 4000000.0)
    assert s.georef.affine() @ (32, 32) == (600640.0, 3999360.0)


def test_chips_vary_and_span_regions():
    chips = synth_chips(10, size=32, seed=0)
    assert [c.id for c in chips[:5]] == ["SynthA_0", "SynthB_1", "SynthC_2", "SynthD_3", "SynthA_4"]
    assert {c.region for c in chips} == {"SynthA", "SynthB", "SynthC", "SynthD"}
    fractions = [float((c.mask == WATER).mean()) for c in chips]
    assert fractions[4] == 0.0 and fractions[9] == 0.0 and max(fractions) > 0.2
    assert not chips[6].valid.all()  # every 7th chip has a nodata border
    assert len({c.georef.transform for c in chips}) == 10
    again = synth_chips(10, size=32, seed=0)
    assert all(np.array_equal(a.image, b.image, equal_nan=True) for a, b in zip(chips, again))


def test_write_scene_round_trip(tmp_path):
    s = synth_scene(48, 40, seed=4, nodata_border=4)
    write_scene(s, tmp_path / "img.tif", label_path=tmp_path / "lbl.tif")
    with rasterio.open(tmp_path / "img.tif") as src:
        assert src.count == 2 and src.dtypes == ("float32", "float32") and src.descriptions == ("VV", "VH")
        assert np.isnan(src.nodata) and src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert src.crs.to_epsg() == 32616 and tuple(src.transform)[:6] == s.georef.transform
        np.testing.assert_array_equal(src.read(), s.image)
    with rasterio.open(tmp_path / "lbl.tif") as src:
        label = src.read(1)
    assert label.dtype == np.int16 and set(np.unique(label)) <= {-1, 0, 1}
    np.testing.assert_array_equal(label == -1, s.mask == IGNORE_INDEX)
    np.testing.assert_array_equal(label == 1, s.mask == WATER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "lbl.tif"]  # no temporary leftovers


def test_write_synthetic_dataset_layout(tmp_path):
    out = write_synthetic_dataset(tmp_path / "ds", chips=5, size=32, seed=1)
    assert sorted(p.name for p in (out / "S1Hand").iterdir())[:2] == ["SynthA_0_S1Hand.tif", "SynthA_4_S1Hand.tif"]
    assert len(list((out / "LabelHand").glob("*_LabelHand.tif"))) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="^water_fraction: "):
        synth_scene(16, 16, water_fraction=1.5)
    with pytest.raises(InvalidArgumentError, match="^height, width: "):
        synth_scene(1, 16)


def _painted(name: str, seed: int = 4):
    """The scene with one phenomenon, the same scene without, and the pixels it changed. The speckle draws are
    the same in both, so the dB difference is exactly the change of the mean."""
    base = synth_scene(256, 256, seed=seed, water_fraction=0.3)
    with_it = synth_scene(256, 256, seed=seed, water_fraction=0.3, phenomena=[name])
    change = with_it.image - base.image
    return base, with_it, change, np.abs(change).max(axis=0) > 1e-3


@pytest.mark.parametrize("name", PHENOMENA)
def test_phenomena_keep_the_labels_and_report_their_share(name):
    base, s, _, painted = _painted(name)
    np.testing.assert_array_equal(s.mask, base.mask)  # what is water does not change, only how it looks
    share = s.extra["phenomena"][name]
    assert 0.001 < share < 0.5
    if name == "shadow":  # fore slopes brighten too, beside the shadow the share counts
        assert painted.mean() > share
    else:
        assert painted.mean() == pytest.approx(share, abs=1e-6)


def test_land_look_alikes_are_dark_like_water_and_not_water():
    base = synth_scene(256, 256, seed=4, water_fraction=0.3)
    open_water_vv = base.image[0][base.mask == WATER].mean()
    _, sand, _, dunes = _painted("sand")
    assert (sand.mask[dunes] == 0).all()
    assert abs(sand.image[0][dunes].mean() - open_water_vv) < 2.0  # as dark as water in VV
    assert abs(sand.image[1][dunes].mean() - (-29.0)) < 1.0
    _, shadow, change, _ = _painted("shadow")
    back = change[0] < -5  # back slopes fall from land (~-8 dB) to the noise floor
    assert back.any() and (shadow.mask[back] == 0).all()
    assert abs(shadow.image[0][back].mean() - (-23.0)) < 1.0
    fore = change[0] > 0
    np.testing.assert_allclose(change[0][fore], 4.0, atol=1e-3)  # foreshortening: +4 dB VV, +3 dB VH
    np.testing.assert_allclose(change[1][fore], 3.0, atol=1e-3)


def test_bright_land_and_bright_water():
    base = synth_scene(256, 256, seed=4, water_fraction=0.3)
    land_vv = base.image[0][base.mask == 0].mean()
    _, urban, _, town = _painted("urban")
    assert (urban.mask[town] == 0).all() and urban.image[0][town].mean() > land_vv + 2
    _, veg, _, flooded = _painted("vegetation")
    assert (veg.mask[flooded] == WATER).all()  # flooded vegetation is water, brighter than open water
    assert abs(veg.image[0][flooded].mean() - (-11.0)) < 1.5
    assert abs(veg.image[1][flooded].mean() - (-19.0)) < 1.5
    _, wind, change, gust = _painted("wind")
    assert (wind.mask[gust] == WATER).all()
    assert (change[0][gust] > 1.0).all()
    np.testing.assert_allclose(change[1][gust], 0.5 * change[0][gust], atol=1e-3)  # VH roughens half as much


def test_all_phenomena_and_bad_names():
    s = synth_scene(128, 128, seed=2, phenomena=["all"])
    assert list(s.extra["phenomena"]) == list(PHENOMENA)
    dry = synth_scene(64, 64, seed=2, water_fraction=0.0, phenomena="wind, sand")  # no water to roughen
    assert dry.extra["phenomena"]["wind"] == 0.0 and dry.extra["phenomena"]["sand"] > 0
    reordered = synth_scene(64, 64, seed=2, water_fraction=0.0, phenomena=["sand", "wind", "all"])
    assert list(reordered.extra["phenomena"]) == list(PHENOMENA)
    assert "phenomena" not in synth_scene(128, 128, seed=2).extra
    with pytest.raises(DataError, match="'lava': not one of the synthetic phenomena sand"):
        synth_scene(16, 16, phenomena=["sand", "lava"])
    chips = synth_chips(3, size=32, seed=1, phenomena=["urban"])
    assert all(set(c.extra["phenomena"]) == {"urban"} for c in chips)
