"""A folder one level off a data set (its parent holding several, or S1Hand/ or OMBRIA's AFTER/ inside one) got
only the list of layouts; the message now says where the data set is."""
from __future__ import annotations

import pytest

from floodwatch.data import open_dataset
from floodwatch.errors import LayoutError
from tests.data import fakes


def test_parent_of_data_sets_names_them(tmp_path):
    fakes.sen1floods11(tmp_path / "s1", chips=1)
    fakes.ombria(tmp_path / "om")
    (tmp_path / "notes").mkdir()
    with pytest.raises(LayoutError, match=r"unknown layout .*; these sub-folders are data sets, give one: "
                                          r"om/ \(ombria\), s1/ \(sen1floods11\)$"):
        open_dataset(tmp_path)


def test_folder_inside_a_data_set_names_it(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=1)
    with pytest.raises(LayoutError, match=f"; it lies inside the sen1floods11 data set {root}: give that folder"):
        open_dataset(root / "S1Hand")
    om = fakes.ombria(tmp_path / "om")
    with pytest.raises(LayoutError, match=f"inside the ombria data set {om / 'train'}"):
        open_dataset(om / "train" / "AFTER")


def test_unrelated_folder_has_no_hint(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"or images/\+masks/\)$"):
        open_dataset(tmp_path / "a")
