"""What change writes, checked against numbers computed here from the inputs: new water is water after and
not before (speck removal never adds any), no data in either date is no data out, stats named as map's."""
import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from floodwatch.data.sample import Sample
from floodwatch.monitoring.change import detect_change


def _pair(before_db: np.ndarray, after_db: np.ndarray) -> tuple[Sample, Sample]:
    return tuple(Sample(image=x[None].astype(np.float32), mask=None, valid=np.isfinite(x), id=name, bands=("VV",))
                 for x, name in ((before_db, "before"), (after_db, "after")))


def test_speck_removal_never_makes_water_that_was_there_before_new(tmp_path):
    before = np.full((32, 32), -8.0)
    before[10:12, 10] = -20.0  # a 2-px pond: water before and after
    after = before.copy()
    after[4:20, 4:20] = -20.0  # the flood around it
    after[28, 28] = -20.0  # a 1-px speck of new water
    res = detect_change(*_pair(before, after), None, tmp_path / "out", method="logratio", min_pixels=4)
    expected = np.zeros((32, 32), bool)
    expected[4:20, 4:20] = True
    expected[10:12, 10] = False  # not new: water before
    np.testing.assert_array_equal(res.new_water, expected)


def test_stats_name_the_flood_as_map_does(tmp_path):
    before = np.full((16, 16), -8.0)
    after = before.copy()
    after[:4, :8] = -20.0
    after[12:, 12:] = np.nan
    res = detect_change(*_pair(before, after), None, tmp_path / "out", method="logratio")
    stats = json.loads(res.paths["stats"].read_text())
    assert stats["flooded_pixels"] == 32 and stats["valid_pixels"] == 256 - 16
    assert stats["flooded_fraction"] == pytest.approx(32 / 240)


def test_an_ombria_picture_s_swath_fill_is_no_data_in_the_change(tmp_path):
    """OMBRIA pictures hold 255 outside the radar swath (an area), and in bright specks (a few px): the area
    is no data, in the date that has it and so in the change; the specks are data."""
    rng = np.random.default_rng(0)
    before = rng.integers(100, 160, (64, 64)).astype(np.uint8)
    after = before.copy()
    after[30:50, 30:50] = 20  # flooded
    before[:, :10] = 255  # outside the swath before only
    after[40:, :] = 255  # ... and after only
    before[20, 20] = after[20, 20] = 255  # a saturated target, in both
    for name, picture in (("b.png", before), ("a.png", after)):
        Image.fromarray(picture).save(tmp_path / name)
    res = detect_change(tmp_path / "b.png", tmp_path / "a.png", None, tmp_path / "out", method="logratio")
    no_data = np.zeros((64, 64), bool)
    no_data[:, :10] = no_data[40:, :] = True
    with rasterio.open(res.paths["change_mask"]) as src:
        mask = src.read(1)
    np.testing.assert_array_equal(mask == 255, no_data)
    flooded = np.zeros((64, 64), bool)
    flooded[30:40, 30:50] = True
    np.testing.assert_array_equal(mask == 1, flooded)
    assert res.stats["valid_pixels"] == (~no_data).sum()
