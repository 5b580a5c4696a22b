"""OMBRIA's swath fill (255 in an area) is no data, in both dates where either has it; bright specks are data."""
from __future__ import annotations

import numpy as np
from PIL import Image

from floodwatch.data import open_dataset

from . import fakes


def test_swath_fill_in_either_date_is_no_data_in_both(tmp_path):
    root = fakes.ombria(tmp_path / "om", per_split={"test": [7]})
    folder = root / "test"
    after = np.asarray(Image.open(folder / "AFTER" / "S1_after_0007.png")).copy()
    before = np.asarray(Image.open(folder / "BEFORE" / "S1_before_0007.png")).copy()
    after[:, :4] = 255  # 128 px outside the swath after
    before[28:, :] = 255  # 128 px outside it before
    after[10, 10] = before[12, 12] = 255  # saturated targets
    Image.fromarray(after).save(folder / "AFTER" / "S1_after_0007.png")
    Image.fromarray(before).save(folder / "BEFORE" / "S1_before_0007.png")
    s = open_dataset(root)[0]
    expected = np.ones(after.shape, bool)
    expected[:, :4] = expected[28:, :] = False
    np.testing.assert_array_equal(s.valid, expected)
    assert np.isnan(s.image[0][~expected]).all() and np.isnan(s.before[0][~expected]).all()
    assert np.isfinite(s.image[0][expected]).all() and np.isfinite(s.before[0][expected]).all()
