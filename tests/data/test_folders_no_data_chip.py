"""`data convert` writes a chip that is all no data (Sen1Floods11's Paraguay_34417) as an all-black RGB picture;
the folders reader took its equal channels for one band and refused it ("has 1 band(s) but the other images have
2"), and, as the first picture, would have read the whole 2-band set as VV only."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from floodwatch.data import open_dataset
from floodwatch.errors import DataError
from tests.data import fakes


def _black(root, name):
    Image.fromarray(np.zeros((fakes.SIZE, fakes.SIZE, 3), np.uint8), "RGB").save(root / "images" / f"{name}.png")
    Image.fromarray(np.full((fakes.SIZE, fakes.SIZE), 255, np.uint8), "L").save(root / "masks" / f"{name}.png")


@pytest.mark.parametrize("name", ["zz_no_data", "aa_no_data"])  # after, then before, the colour chips
def test_an_all_black_colour_chip_is_two_bands(tmp_path, name):
    root = fakes.folders(tmp_path / "c", colour=True)
    _black(root, name)
    ds = open_dataset(root)
    assert ds.bands == ("VV", "VH")
    assert all(s.image.shape[0] == 2 for s in ds)


def test_gray_picture_in_a_colour_set_is_refused_by_name(tmp_path):
    root = fakes.folders(tmp_path / "c", colour=True)
    Image.fromarray(np.zeros((fakes.SIZE, fakes.SIZE), np.uint8), "L").save(root / "images" / "chip_1.png")
    ds = open_dataset(root)
    with pytest.raises(DataError, match=r"chip_1.png: gray picture \(1 band\) but the other images have 2"):
        list(ds)


def test_colour_picture_in_a_gray_set_is_refused(tmp_path):
    root = fakes.folders(tmp_path / "g")
    colour = np.stack([np.full((fakes.SIZE, fakes.SIZE), v, np.uint8) for v in (10, 90, 50)], -1)
    Image.fromarray(colour, "RGB").save(root / "images" / "chip_2.png")
    with pytest.raises(DataError, match=r"chip_2.png: has 2 band\(s\) \(channels that differ\) but the other"):
        list(open_dataset(root))
