"""floodwatch.errors' helper that names the argument a data error came from."""
import numpy as np
import pytest

from floodwatch.data.files import large_regions
from floodwatch.errors import DataError, LayoutError, data_errors_of


def test_data_errors_of_prefixes_the_field_once_and_keeps_the_class():
    with pytest.raises(LayoutError, match=r"^dem: x.tif: unknown layout$"):
        with data_errors_of("dem"):
            raise LayoutError("x.tif: unknown layout")
    with pytest.raises(DataError, match=r"^dem: x.tif: bad$"):  # already named: not "dem: dem: ..."
        with data_errors_of("dem"):
            raise DataError("dem: x.tif: bad")


def test_large_regions_against_scipy_sizes():
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True                 # 1 px
    mask[2:4, 2:4] = True             # 4 px
    mask[6, 6] = mask[7, 7] = True    # 2 px diagonally, 1 + 1 side by side
    assert large_regions(mask, 4).sum() == 4
    assert large_regions(mask, 2, diagonal=True).sum() == 6
    assert large_regions(mask, 2).sum() == 4
    assert np.array_equal(large_regions(mask, 0), mask) and np.array_equal(large_regions(mask, 1), mask)
