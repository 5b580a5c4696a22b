"""SceneReader: the model's bands in its order, nodata and linear units, whether VV and VH share a file
(read in one call: pixel-interleaved blocks hold both) or come in two."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.io
from rasterio.transform import from_origin

from floodwatch.errors import DataError
from floodwatch.mapping.scene import SceneReader

H, W = 40, 56


def _write(path, bands: np.ndarray, descriptions, nodata=None, interleave="pixel"):
    profile = dict(driver="GTiff", width=W, height=H, count=len(bands), dtype="float32", crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 10, 10), nodata=nodata, interleave=interleave,
                   tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(bands)
        for i, d in enumerate(descriptions, start=1):
            ds.set_band_description(i, d)
    return path


@pytest.fixture
def bands():
    rng = np.random.default_rng(3)
    vv, vh = rng.normal(-12, 3, (H, W)).astype(np.float32), rng.normal(-19, 3, (H, W)).astype(np.float32)
    vv[:5, :7] = -9999.0  # nodata in VV only: invalid in both channels
    vh[30:, 50:] = np.nan
    return vv, vh


@pytest.fixture
def reads(monkeypatch):
    calls = []
    real = rasterio.io.DatasetReader.read

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    return calls


def _expected(vv, vh, window):
    r0, r1, c0, c1 = window
    v, h = vv[r0:r1, c0:c1], vh[r0:r1, c0:c1]
    valid = (v != -9999.0) & np.isfinite(h)
    image = np.stack([np.where(valid, v, np.nan), np.where(valid, h, np.nan)])
    return image, valid


@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_stacked_file_in_the_models_order_one_read_per_window(tmp_path, bands, reads, interleave):
    vv, vh = bands
    # VH first in the file: the descriptions, not the order, say which band is which
    path = _write(tmp_path / "s.tif", np.stack([vh, vv]), ["VH", "VV"], nodata=-9999.0, interleave=interleave)
    with SceneReader(path) as reader:
        for window in [(0, H, 0, W), (3, 21, 5, 44)]:
            reads.clear()
            image, valid = reader.read_window(*window)
            assert len(reads) == 1
            want_image, want_valid = _expected(vv, vh, window)
            np.testing.assert_array_equal(valid, want_valid)
            np.testing.assert_array_equal(image, want_image)


def test_separate_vv_and_vh_files_match_the_stack(tmp_path, bands, reads):
    vv, vh = bands
    stack = _write(tmp_path / "s.tif", np.stack([vv, vh]), ["VV", "VH"], nodata=-9999.0)
    vv_path = _write(tmp_path / "vv.tif", vv[None], ["VV"], nodata=-9999.0)
    vh_path = _write(tmp_path / "vh.tif", vh[None], ["VH"])
    with SceneReader(stack) as one, SceneReader(vv_path, vh=vh_path) as two:
        reads.clear()
        got = two.read_window(2, 33, 1, 50)
        assert len(reads) == 2
        for a, b in zip(got, one.read_window(2, 33, 1, 50)):
            np.testing.assert_array_equal(a, b)


def test_linear_units_become_db_and_zero_power_is_no_data(tmp_path, bands):
    vv, vh = bands
    lin = np.stack([10 ** (np.nan_to_num(vv, nan=-20) / 10), 10 ** (np.nan_to_num(vh, nan=-20) / 10)])
    lin[:, 10, :] = 0.0
    path = _write(tmp_path / "lin.tif", lin.astype(np.float32), ["VV", "VH"])
    with SceneReader(path, units="linear") as reader:
        image, valid = reader.read_window(0, H, 0, W)
    assert not valid[10].any() and valid[11].all()
    np.testing.assert_allclose(image[:, 11], np.stack([np.nan_to_num(vv, nan=-20), np.nan_to_num(vh, nan=-20)])[:, 11],
                               atol=1e-4)


def test_linear_units_refuse_a_db_file_and_keep_a_few_negative_powers(tmp_path, bands):
    from floodwatch.errors import DataError

    vv, vh = bands
    path = _write(tmp_path / "db.tif", np.stack([vv, vh]), ["VV", "VH"])
    with SceneReader(path, units="linear") as reader, pytest.raises(DataError, match="looks like dB"):
        reader.read_window(0, H, 0, W)
    # noise-removed power dips below 0 in places: those pixels are no data, the rest maps
    lin = 10 ** (np.stack([np.nan_to_num(vv, nan=-20), np.nan_to_num(vh, nan=-20)]) / 10)
    lin[:, :4, :] = -1e-3
    lin[1, 20:, :] = -2e-4  # VH over a lake: mostly a little below 0 after noise removal, still power
    path = _write(tmp_path / "lin.tif", lin.astype(np.float32), ["VV", "VH"])
    with SceneReader(path, units="linear") as reader:
        _, valid = reader.read_window(0, H, 0, W)
    assert not valid[:4].any() and valid[5:20].all() and not valid[20:].any()  # row 4: VV's -9999 fill


def test_db_units_refuse_a_linear_power_file_and_keep_bright_db(tmp_path, bands):
    """Planetary Computer's RTC gamma0 is linear power: read as dB it would map as brighter than any land."""
    from floodwatch.errors import DataError

    vv, vh = bands
    lin = 10 ** (np.stack([np.nan_to_num(vv, nan=-20), np.nan_to_num(vh, nan=-20)]) / 10)
    lin[:, :4, :] = -1e-3  # noise removal
    path = _write(tmp_path / "lin.tif", lin.astype(np.float32), ["VV", "VH"])
    with SceneReader(path) as reader, pytest.raises(DataError, match="looks like linear power"):
        reader.read_window(0, H, 0, W)
    city = np.stack([vv, vh]).copy()
    city[0, : H // 2] = 1.5  # half the window a bright city: VV above 0 dB is rare but real
    path = _write(tmp_path / "city.tif", city, ["VV", "VH"])
    with SceneReader(path) as reader:
        _, valid = reader.read_window(0, H, 0, W)
    assert valid.any()


def test_exactly_zero_db_is_fill_without_a_nodata_tag(tmp_path, bands):
    vv, vh = bands
    vv, vh = vv.copy(), vh.copy()
    vh[20, :] = 0.0  # STAC Overflow marks missing pixels 0.0 and need not tag it
    vv[21, 3] = -0.01  # near 0 dB is data (a bright corner reflector)
    path = _write(tmp_path / "db.tif", np.stack([vv, vh]), ["VV", "VH"], nodata=-9999.0)
    with SceneReader(path) as reader:
        image, valid = reader.read_window(0, H, 0, W)
    assert not valid[20].any() and np.isnan(image[:, 20]).all()
    assert valid[21, 3] and image[0, 21, 3] == np.float32(-0.01)


def test_an_untagged_minus_9999_fill_is_no_data_not_the_darkest_water(tmp_path, bands):
    vv, vh = (b.copy() for b in bands)
    vv[5, :] = vh[5, :] = -9999.0  # a fill the file does not tag
    vh[6, :7] = -3.4e38            # float32's lowest, another common one
    vv[7, 2] = -45.0               # very dark, but a measurement
    path = _write(tmp_path / "fill.tif", np.stack([vv, vh]), ["VV", "VH"])
    with SceneReader(path) as reader:
        image, valid = reader.read_window(0, H, 0, W)
    assert not valid[5].any() and not valid[6, :7].any() and np.isnan(image[:, 5]).all()
    assert valid[7, 2] and image[0, 7, 2] == np.float32(-45.0)


def test_sample_tiles_draws_whole_tiles_of_data_and_skips_nodata(tmp_path, bands):
    from floodwatch.mapping.scene import sample_tiles

    vv, vh = (b.copy() for b in bands)
    vv[:, :16] = np.nan  # the first column of 16 px tiles is no data
    path = _write(tmp_path / "s.tif", np.stack([vv, vh]), ["VV", "VH"])
    with SceneReader(path) as reader:
        everything = sample_tiles(reader, 16, 99)
        # the 2 x 3 grid of whole 16 px tiles (40 x 56 px), less its first column
        assert len(everything) == 4
        for image, valid in everything:
            assert image.shape == (2, 16, 16) and valid.all()
            assert any(np.array_equal(image[0], vv[r:r + 16, c:c + 16]) for r in (0, 16) for c in (16, 32))
        two = sample_tiles(reader, 16, 2, seed=5)
        assert len(two) == 2 and all(np.array_equal(a[0], b[0]) for a, b in zip(two, sample_tiles(reader, 16, 2, seed=5)))
        whole = sample_tiles(reader, 512, 4, min_valid=0.5)  # a scene smaller than a tile: itself
        assert len(whole) == 1 and whole[0][0].shape == (2, H, W)
        assert sample_tiles(reader, 512, 4, min_valid=0.9) == []  # 16 of 56 columns are no data


def test_bands_are_found_by_name_and_unnamed_ones_only_when_there_is_no_choice(tmp_path, bands):
    vv, vh = bands
    extra = np.full_like(vv, 35.0)  # e.g. an incidence-angle band
    # one band named (VH) and one not: the unnamed one is VV
    with SceneReader(_write(tmp_path / "half.tif", np.stack([vh, vv]), ["VH", ""])) as r:
        image, _ = r.read_window(10, 20, 10, 20)
        np.testing.assert_array_equal(image, np.stack([vv, vh])[:, 10:20, 10:20])
    with SceneReader(_write(tmp_path / "named3.tif", np.stack([extra, vh, vv]), ["angle", "VH", "VV"])) as r:
        image, _ = r.read_window(10, 20, 10, 20)
        np.testing.assert_array_equal(image, np.stack([vv, vh])[:, 10:20, 10:20])
    # three unnamed bands: which two are VV and VH cannot be known
    with pytest.raises(DataError, match=r"three.tif: data has 3 band\(s\) \(unnamed, unnamed, unnamed\).*no band is "
                                        r"named VV/VH"):
        SceneReader(_write(tmp_path / "three.tif", np.stack([vv, vh, extra]), ["", "", ""]))
    # bands named something else are never taken for VV or VH
    for names in (["VV", "angle"], ["HH", "HV"]):
        with pytest.raises(DataError, match=r"no band is named V"):
            SceneReader(_write(tmp_path / "other.tif", np.stack([vv, extra]), names))
    with pytest.raises(DataError, match=r"no band is named VV"):  # a one-band VH file for a VV model
        SceneReader(_write(tmp_path / "vh_only.tif", vh[None], ["VH"]), bands=["VV"])


def test_a_lone_band_file_takes_its_partner_only_when_the_model_needs_it(tmp_path, bands):
    vv, vh = bands
    _write(tmp_path / "s_vv.tif", vv[None], [""])
    _write(tmp_path / "s_vh.tif", vh[None], [""])
    for given in ("s_vv.tif", "s_vh.tif"):
        with SceneReader(tmp_path / given) as r:
            image, _ = r.read_window(10, 20, 10, 20)
            np.testing.assert_array_equal(image, np.stack([vv, vh])[:, 10:20, 10:20])
    # a VV-only model reads the VV file alone (its name gives its band) and refuses the VH file
    with SceneReader(tmp_path / "s_vv.tif", bands=["VV"]) as r:
        np.testing.assert_array_equal(r.read_window(10, 20, 10, 20)[0], vv[None, 10:20, 10:20])


def test_integer_pixels_are_refused_as_infer_refuses_them(tmp_path, bands):
    profile = dict(driver="GTiff", width=W, height=H, count=2, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 10, 10))
    with rasterio.open(tmp_path / "u8.tif", "w", **profile) as ds:
        ds.write(np.zeros((2, H, W), np.uint8))
    for units in ("db", "linear"):
        with pytest.raises(DataError, match=r"u8.tif: pixel type uint8; expected float backscatter \(dB or linear power\)"):
            SceneReader(tmp_path / "u8.tif", units=units)


def test_a_scene_without_a_grid_is_refused_in_one_line_without_rasterios_warning(tmp_path, bands):
    import warnings

    path = tmp_path / "nogrid.tif"
    with warnings.catch_warnings():  # writing one warns too; that is this test's set-up, not the reader
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=2, dtype="float32") as ds:
            ds.write(np.stack(bands))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # `map` printed it on stderr above its own one-line error
        with pytest.raises(DataError, match="no coordinate reference system"):
            SceneReader(path)


def test_unnamed_bands_in_vh_vv_order_are_refused_not_mapped_wrong(tmp_path, bands):
    vv, vh = bands
    swapped = _write(tmp_path / "swapped.tif", np.stack([vh, vv]), [None, None])
    with pytest.raises(DataError, match=r"swapped.tif: its bands are not named and band 2 \(taken as VH\) is brighter"):
        SceneReader(swapped)
    with SceneReader(_write(tmp_path / "ordered.tif", np.stack([vv, vh]), [None, None])) as reader:
        image, valid = reader.read_window(0, H, 0, W)
    np.testing.assert_array_equal(image[1][valid], vh[valid])
    with SceneReader(_write(tmp_path / "named.tif", np.stack([vh, vv]), ["VH", "VV"])) as reader:  # names decide
        image, valid = reader.read_window(0, H, 0, W)
    np.testing.assert_array_equal(image[0][valid], vv[valid])
    with pytest.raises(DataError, match="placeholders.tif: its bands are not named"):  # B1, B2 name nothing
        SceneReader(_write(tmp_path / "placeholders.tif", np.stack([vh, vv]), ["B1", "B2"]))
    # calm water near both noise floors: within a dB of each other, no verdict
    with SceneReader(_write(tmp_path / "close.tif", np.stack([vv, vv + 0.5]), [None, None])):
        pass


def test_band_files_holding_each_others_band_are_refused_unless_too_little_data(tmp_path, bands):
    import re

    vv, vh = bands
    as_vv, as_vh = _write(tmp_path / "s_vv.tif", vh[None], [None]), _write(tmp_path / "s_vh.tif", vv[None], [None])
    swapped = re.escape(f"{as_vv}, {as_vh}: look swapped: the VH file is brighter than the VV one")
    with pytest.raises(DataError, match=swapped):
        SceneReader(as_vv, vh=as_vh)
    with pytest.raises(DataError, match=swapped):  # a lone band file takes its partner from beside it
        SceneReader(as_vv)
    # under 1000 pixels valid in both over the four windows (here the whole scene, four times): no verdict
    few = np.full((H, W), np.nan, np.float32)
    few[:10, :20] = 1.0
    _write(tmp_path / "f_vv.tif", (vh * few)[None], [None])
    with SceneReader(tmp_path / "f_vv.tif", vh=_write(tmp_path / "f_vh.tif", (vv * few)[None], [None])) as reader:
        assert reader.read_window(0, H, 0, W)[1].sum() == 200 - 5 * 7  # VV's -9999 corner
