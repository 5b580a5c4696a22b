"""Band files paired by name on real data (../shared/data; skipped without it): `infer` refuses a dB pair whose
files hold each other's band (`data.files.check_band_files`), warns of an 8-bit one, and must pass every real pair
read right."""
from __future__ import annotations

import warnings

import pytest

from floodwatch.errors import DataError
from floodwatch.inference.chips import read_chip

from tests.band_files import ALL_NAN, band_file_pairs


@pytest.mark.parametrize("scene", ["northal_20190302t234651", "bangladesh_20170314t115609"])
def test_every_etci_tile_pair_passes_and_most_are_refused_swapped(shared_data, scene):
    """ETCI renders VH brighter than VV (median 210 against 146), so in dB through the fixed map a swapped pair
    still reads VH the darker: the pictures' levels are judged, and a swapped-looking pair is warned of, not refused
    (a real chip whose VH lies 13 dB or more under VV renders so too). Read right, no tile may be warned of (here
    every tile has data enough for a verdict); swapped, at least 90 % must be (measured on all: 100 % and 95 %)."""
    tiles = shared_data / "etci2021" / scene / "tiles"
    pairs = [(vv, tiles / "vh" / vv.name.replace("_vv.png", "_vh.png")) for vv in sorted((tiles / "vv").glob("*.png"))]
    assert len(pairs) > 300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read right, not even a warning
        for vv, vh in pairs:
            read_chip(vv, vh=vh)
    warned = 0
    for vv, vh in pairs[::2]:  # half of them swapped: each file given as the other band
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            read_chip(vh, vh=vv)
        warned += any("look swapped" in str(w.message) for w in said)
    assert warned >= 0.9 * len(pairs[::2]), f"{warned} of {len(pairs[::2])} swapped pairs warned of"


def test_sen1floods11_chips_as_band_files_pass_and_are_refused_swapped(shared_data, tmp_path):
    """Each chip's VV and VH as single-band dB GeoTIFFs (STAC Overflow's and Earth Engine's layout): read right
    they pass; swapped every one is refused but the all-NaN chip, which gives no verdict."""
    for name, (vv, _), (swapped, _) in band_file_pairs(shared_data, tmp_path):
        assert read_chip(vv, bands=["VV", "VH"]).bands == ("VV", "VH")  # its _vh.tif beside it
        if name.startswith(ALL_NAN):
            read_chip(swapped, bands=["VV", "VH"])
        else:
            with pytest.raises(DataError, match="s_vv.tif, .*s_vh.tif: look swapped"):
                read_chip(swapped, bands=["VV", "VH"])
