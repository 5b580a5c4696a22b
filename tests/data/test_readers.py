"""Every reader on fake data written by tests/data/fakes.py, and every bad-input case."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio

from floodwatch.data import IGNORE_INDEX, WATER, detect_format, open_dataset
from floodwatch.data.harmonise import to_8bit, to_db
from floodwatch.data.synthetic import synth_chips, synth_scene
from floodwatch.errors import DataError, InvalidArgumentError, LayoutError

from . import fakes


def test_sen1floods11_matches_generator(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=5)
    ds = open_dataset(root)
    assert ds.format == "sen1floods11" and len(ds) == 5 and ds.bands == ("VV", "VH")
    truth = {s.id: s for s in synth_chips(5, size=fakes.SIZE, seed=0)}
    for s in ds:
        np.testing.assert_array_equal(s.image, truth[s.id].image)
        np.testing.assert_array_equal(s.mask, truth[s.id].mask)
        assert s.region == truth[s.id].region and s.georef == truth[s.id].georef
    assert ds.regions == [i.split("_")[0] for i in ds.ids]


def test_sen1floods11_splits_and_unlabelled(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=4, nolabel=2)
    assert len(open_dataset(root, split="train")) == 3
    test = open_dataset(root, split="test")
    assert test.ids == ["SynthD_3"] and test[0].extra["split"] == "test"
    with pytest.raises(DataError, match="no split list for 'val'"):
        open_dataset(root, split="val")
    everything = open_dataset(root, labelled_only=False)
    assert len(everything) == 6 and sum(s.mask is None for s in everything) == 2


def test_sen1floods11_nan_and_minus_one_are_ignored(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=1, splits=False)
    img, lbl = root / "S1Hand" / "SynthA_0_S1Hand.tif", root / "LabelHand" / "SynthA_0_LabelHand.tif"
    with rasterio.open(img, "r+") as f:
        a = f.read(); a[:, :4] = np.nan; f.write(a)
    with rasterio.open(lbl, "r+") as f:
        b = f.read(); b[:, -3:] = -1; f.write(b)
    s = open_dataset(root)[0]
    assert not s.valid[:4].any() and s.valid[4:].all()
    assert (s.mask[:4] == IGNORE_INDEX).all() and (s.mask[-3:] == IGNORE_INDEX).all()
    assert (s.mask[4:-3] != IGNORE_INDEX).all()


def test_all_nan_chip_is_empty_not_an_error(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=1, splits=False)
    with rasterio.open(root / "S1Hand" / "SynthA_0_S1Hand.tif", "r+") as f:
        f.write(np.full((2, fakes.SIZE, fakes.SIZE), np.nan, np.float32))
    s = open_dataset(root)[0]
    assert s.is_empty and (s.mask == IGNORE_INDEX).all()


def test_etci(tmp_path, monkeypatch):
    root = fakes.etci(tmp_path / "etci")
    for path in (root, root / "scene_20200101t000000", root / "scene_20200101t000000" / "tiles"):  # or its tiles/
        ds = open_dataset(path)
        assert ds.format == "etci" and len(ds) == 6
    for inside, given in (("scene_20200101t000000", "."), ("scene_20200101t000000", "tiles"),
                          ("scene_20200101t000000/tiles", ".")):  # relative paths name the scene too
        monkeypatch.chdir(root / inside)
        assert set(open_dataset(given).regions) == {"scene_20200101t000000"}
    s = ds[0]
    assert s.id == "scene_20200101t000000_x-0_y-0" and s.region == "scene_20200101t000000"
    assert s.extra["grid"] == (0, 0) and s.extra["water_body"].dtype == bool
    assert s.valid.all() and set(np.unique(s.mask)) <= {0, 1}
    # flooded pixels are dark in VV: after harmonising they sit well below land in dB
    assert s.image[0][s.mask == WATER].max() < s.image[0][s.mask == 0].min() - 3
    assert s.extra["water_body"].sum() <= (s.mask == WATER).sum()
    lean = open_dataset(root, water_body=False)[0]  # training reads skip the permanent-water PNG
    assert "water_body" not in lean.extra and np.array_equal(lean.image, s.image) and np.array_equal(lean.mask, s.mask)


def test_ombria(tmp_path):
    root = fakes.ombria(tmp_path / "om")
    ds = open_dataset(root)
    assert ds.format == "ombria" and len(ds) == 4 and ds.bands == ("VV",)
    assert sorted(ds.ids) == ["0001", "0002", "0003", "0004"]
    assert len(open_dataset(root, split="test")) == 1 and len(open_dataset(root / "train")) == 3
    s = ds.get("0004")
    assert s.region == "test" and s.image.shape == (1, fakes.SIZE, fakes.SIZE) and s.before.shape == s.image.shape
    np.testing.assert_allclose(s.before, to_db(np.full((1, fakes.SIZE, fakes.SIZE), 170), "ombria", "VV"))
    assert (s.image[0][s.mask == WATER] < s.image[0][s.mask == 0].min()).all()


def test_folders_gray_colour_split_and_class_map(tmp_path):
    gray = open_dataset(fakes.folders(tmp_path / "g"))
    assert gray.format == "folders" and gray.bands == ("VV",) and gray[0].image.shape[0] == 1
    colour = open_dataset(fakes.folders(tmp_path / "c", colour=True))
    assert colour.bands == ("VV", "VH") and colour[0].image.shape[0] == 2
    split = open_dataset(fakes.folders(tmp_path / "s", split="train"), split="train")
    assert len(split) == 3 and split[0].extra["split"] == "train"
    cm = [{"name": "land", "label_id": 7, "mapping_class": "notflood"},
          {"name": "water", "label_id": 9, "mapping_class": "flood"}]
    custom = open_dataset(fakes.folders(tmp_path / "m", mask_values=(7, 9)), class_map=cm)
    s = custom[0]
    assert set(np.unique(s.mask)) == {0, 1}
    with pytest.raises(DataError, match=r"chip_0.png: mask value 7 is not in the class map"):
        open_dataset(tmp_path / "m")[0]


def test_harmonise_round_trip():
    v = np.arange(256, dtype=np.uint8)
    for source, band in (("etci", "VV"), ("etci", "VH"), ("ombria", "VV")):
        np.testing.assert_array_equal(to_8bit(to_db(v, source, band), source, band), v)


# ---- bad input ---------------------------------------------------------------------------------

def test_detect_format_errors(tmp_path):
    with pytest.raises(LayoutError, match="empty folder"):
        (tmp_path / "empty").mkdir(); detect_format(tmp_path / "empty")
    (tmp_path / "odd").mkdir(); (tmp_path / "odd" / "x.txt").write_text("x")
    with pytest.raises(LayoutError, match=r"odd: unknown layout"):
        detect_format(tmp_path / "odd")
    with pytest.raises(LayoutError, match="folder not found"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(LayoutError, match="format 'nope'"):
        open_dataset(tmp_path / "odd", "nope")
    (tmp_path / "s1" / "S1Hand").mkdir(parents=True)
    with pytest.raises(LayoutError, match="no \\*_S1Hand.tif"):
        open_dataset(tmp_path / "s1")


def test_image_without_label(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=2, splits=False)
    (root / "LabelHand" / "SynthB_1_LabelHand.tif").unlink()
    with pytest.raises(DataError, match=r"SynthB_1_S1Hand.tif: image without a matching label"):
        open_dataset(root)
    assert open_dataset(root, labelled_only=False).get("SynthB_1").mask is None
    eroot = fakes.etci(tmp_path / "e", cols=1, rows=1)
    next((eroot).rglob("flood_label/*.png")).unlink()
    with pytest.raises(DataError, match="image without a matching label"):
        open_dataset(eroot)


def test_corrupt_and_truncated_files(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=1, splits=False)
    img = root / "S1Hand" / "SynthA_0_S1Hand.tif"
    img.write_bytes(img.read_bytes()[:300])
    with pytest.raises(DataError, match=r"SynthA_0_S1Hand.tif: unreadable GeoTIFF"):
        open_dataset(root)[0]
    eroot = fakes.etci(tmp_path / "e", cols=1, rows=1)
    png = next(eroot.rglob("vv/*.png"))
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(DataError, match=r"_vv.png: unreadable or truncated picture"):
        open_dataset(eroot)[0]


def test_linear_power_chips_are_refused_as_map_refuses_them(tmp_path):
    """A chip of linear power (RTC gamma0) read as dB would score and map as bright land: no water, silently.
    Every GeoTIFF reader (data sets for evaluate and train, infer's and client's chips) refuses it."""
    from floodwatch.inference.chips import read_chip

    root = fakes.sen1floods11(tmp_path / "s1", chips=1, splits=False)
    img = root / "S1Hand" / "SynthA_0_S1Hand.tif"
    open_dataset(root)[0]  # in dB: read
    with rasterio.open(img, "r+") as f:
        db = f.read()
        f.write((10 ** (db / 10)).astype(np.float32))
    with pytest.raises(DataError, match=r"SynthA_0_S1Hand.tif: most values lie between 0 and 2.*looks like "
                                        r"linear power \(convert it to dB, 10 \* log10\(power\), first"):
        open_dataset(root)[0]
    with pytest.raises(DataError, match="looks like linear power"):
        read_chip(img)


def test_8bit_levels_stored_as_floats_are_refused(tmp_path):
    """A float GeoTIFF of grey levels (0-255, an ETCI PNG exported) read as dB maps as land brighter than any:
    no water, silently."""
    from floodwatch.inference.chips import read_chip

    root = fakes.sen1floods11(tmp_path / "s1", chips=1, splits=False)
    img = root / "S1Hand" / "SynthA_0_S1Hand.tif"
    with rasterio.open(img, "r+") as f:
        db = f.read()
        f.write(np.clip((db + 30) * 6, 1, 255).astype(np.float32))  # dark water low, land bright, as ETCI's
    with pytest.raises(DataError, match=r"SynthA_0_S1Hand.tif: band 1's median is \d+, far above any backscatter "
                                        r"in dB; the file looks like 8-bit grey levels"):
        open_dataset(root)[0]
    with pytest.raises(DataError, match="8-bit grey levels"):
        read_chip(img)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_size_mismatch_and_band_count(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=1, splits=False)
    lbl = root / "LabelHand" / "SynthA_0_LabelHand.tif"
    with rasterio.open(lbl, "w", driver="GTiff", width=8, height=8, count=1, dtype="int16") as f:
        f.write(np.zeros((1, 8, 8), np.int16))
    with pytest.raises(DataError, match=r"SynthA_0_LabelHand.tif: size 8x8 does not match"):
        open_dataset(root)[0]
    img = root / "S1Hand" / "SynthA_0_S1Hand.tif"
    with rasterio.open(img, "w", driver="GTiff", width=8, height=8, count=3, dtype="float32") as f:
        f.write(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(DataError, match=r"SynthA_0_S1Hand.tif: has 3 band\(s\), expected 2"):
        open_dataset(root)[0]


def test_bad_label_values(tmp_path):
    root = fakes.ombria(tmp_path / "om", per_split={"train": [1]})
    from PIL import Image

    Image.fromarray(np.full((fakes.SIZE, fakes.SIZE), 3, np.uint8)).save(root / "train" / "MASK" / "S1_mask_0001.png")
    with pytest.raises(DataError, match=r"S1_mask_0001.png: mask value 3 is not 0 or 255"):
        open_dataset(root)[0]


def _rendered_scene(root, scene: str, maps: dict, seed: int = 0, no_data_cols: int = 0):
    """One 2x2-tile ETCI scene of the same dB truth (water -20/-27 dB, land -9/-15 dB VV/VH), rendered to 8 bits
    with `maps` {band: (slope, intercept)} of dB = slope * v + intercept; the first columns may be no data."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for x in range(2):
        for y in range(2):
            water = rng.random((fakes.SIZE, fakes.SIZE)) < 0.3
            name = f"{scene}_x-{x}_y-{y}"
            for band, (w_db, l_db) in (("VV", (-20.0, -9.0)), ("VH", (-27.0, -15.0))):
                db = np.where(water, w_db, l_db) + rng.normal(0, 0.7, water.shape)
                v = np.clip(np.rint((db - maps[band][1]) / maps[band][0]), 0, 254).astype(np.uint8)
                v[:, :no_data_cols] = 255
                v[5, 5] = 255  # a saturated speck in both bands: data, not no data
                path = root / scene / "tiles" / band.lower() / f"{name}_{band.lower()}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.stack([v] * 3, -1)).save(path)
            label = root / scene / "tiles" / "flood_label" / f"{name}.png"
            label.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((water * 255).astype(np.uint8)).save(label)


def test_etci_scenes_rendered_differently_land_on_the_same_db(tmp_path):
    from floodwatch.data.harmonise import EIGHT_BIT_TO_DB, REFERENCE_MODES

    _rendered_scene(tmp_path, "a_20200101t000000", EIGHT_BIT_TO_DB["etci"], seed=1)
    _rendered_scene(tmp_path, "b_20200101t000000", {"VV": (0.116, -26.9), "VH": (0.14, -43.8)}, seed=2,
                    no_data_cols=12)

    def water_land_medians(harmonise):
        ds = open_dataset(tmp_path, harmonise=harmonise)
        out = {}
        for region in ("a_20200101t000000", "b_20200101t000000"):
            chips = [s for s in ds if s.region == region]
            out[region] = [(np.median(np.concatenate([c.image[b][(c.mask == k) & c.valid] for c in chips])))
                           for b in (0, 1) for k in (WATER, 0)]
        return out, ds

    scene, ds = water_land_medians("scene")
    fixed, _ = water_land_medians("fixed")
    # each scene's own map puts both renderings on the same dB (the reference modes), within half a dB
    assert np.allclose(scene["a_20200101t000000"], scene["b_20200101t000000"], atol=0.5)
    assert np.allclose(scene["a_20200101t000000"], [REFERENCE_MODES["VV"][0], REFERENCE_MODES["VV"][1],
                                                    REFERENCE_MODES["VH"][0], REFERENCE_MODES["VH"][1]], atol=0.5)
    # one fixed map leaves scene b's water over 2 dB off scene a's (a's saturates at the map's floor)
    assert abs(fixed["a_20200101t000000"][0] - fixed["b_20200101t000000"][0]) > 2
    b = ds.get("b_20200101t000000_x-0_y-0")
    assert not b.valid[:, :12].any() and b.valid[:, 12:].all()  # the no-data band is out, the speck stays in
    assert np.isnan(b.image[:, :, :12]).all() and set(b.extra["db_map"]) == {"VV", "VH"}
    with pytest.raises(DataError, match="harmonise"):
        open_dataset(tmp_path, harmonise="quantile")


@pytest.mark.parametrize("reader, make, option", [
    ("sen1floods11", lambda p: fakes.sen1floods11(p, chips=2, splits=False), "labeled_only"),  # misspelt
    ("etci", lambda p: fakes.etci(p, cols=1, rows=1), "class_map"),  # the folders layout's option
    ("folders", lambda p: fakes.folders(p), "water_body"),  # ETCI's option
])
def test_open_dataset_refuses_an_option_the_reader_does_not_take(tmp_path, reader, make, option):
    root = make(tmp_path / reader)
    with pytest.raises(InvalidArgumentError, match=rf"^{option}: not an option of the {reader} reader \(it takes: split, "):
        open_dataset(root, **{option: False})


def test_open_dataset_forwards_declared_options(tmp_path):
    from floodwatch.data.formats import reader_options

    assert reader_options("etci") == ("split", "labelled_only", "water_body", "harmonise", "reference")
    root = fakes.sen1floods11(tmp_path / "s1", chips=2, splits=False)
    assert len(open_dataset(root, labelled_only=False)) >= len(open_dataset(root, labelled_only=True))


def test_synthetic_source_is_written_on_first_use_then_read(tmp_path, monkeypatch):
    root = tmp_path / "cache" / "syn"
    ds = open_dataset(root, "synthetic", chips=5, size=32, seed=4, phenomena="sand, wind")
    assert ds.format == "synthetic" and len(ds) == 5 and ds.bands == ("VV", "VH")
    truth = {s.id: s for s in synth_chips(5, size=32, seed=4, phenomena=["sand", "wind"])}
    for s in ds:  # the chips the generator makes in memory, through the files
        np.testing.assert_array_equal(s.image, truth[s.id].image)
        np.testing.assert_array_equal(s.mask, truth[s.id].mask)
    import floodwatch.data.synthetic as generator

    def no_writing(*args, **kwargs):
        raise AssertionError("an existing folder must be read, not written again")
    monkeypatch.setattr(generator, "write_synthetic_dataset", no_writing)
    again = open_dataset(root, "synthetic", chips=5, size=32, seed=4, phenomena=["wind", "sand"])  # any order
    assert again.ids == ds.ids
    assert len(open_dataset(root, "synthetic")) == 5  # options left out are not checked
    assert detect_format(root) == "sen1floods11"  # detection names the layout
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["syn"]  # no temporary leftovers


def test_synthetic_source_refuses_other_chips(tmp_path):
    root = tmp_path / "syn"
    open_dataset(root, "synthetic", chips=3, size=32, seed=1)
    with pytest.raises(DataError, match=r"synthetic.json: written with seed 1, phenomena \[\]; this source asks "
                                        r"for seed 2, phenomena \['urban'\]"):
        open_dataset(root, "synthetic", chips=3, size=32, seed=2, phenomena="urban")
    record = json.loads((root / "synthetic.json").read_text())
    (root / "synthetic.json").write_text(json.dumps({**record, "generator": record["generator"] - 1}))
    with pytest.raises(DataError, match=r"written with generator 0; this source asks for generator 1"):
        open_dataset(root, "synthetic", chips=3, size=32, seed=1)  # same options, an older generator's chips
    assert len(open_dataset(root, "synthetic")) == 3  # no options asked: read as it is
    plain = fakes.sen1floods11(tmp_path / "s1", chips=2)
    (plain / "synthetic.json").unlink()  # the same layout, but nothing says what it holds
    with pytest.raises(DataError, match="no synthetic.json"):
        open_dataset(plain, "synthetic", chips=2)
    with pytest.raises(DataError, match="'lava': not one of the synthetic phenomena"):
        open_dataset(tmp_path / "other", "synthetic", phenomena="lava")
    assert not (tmp_path / "other").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(LayoutError, match="not a folder"):
        open_dataset(tmp_path / "file", "synthetic")
    with pytest.raises(LayoutError, match="typo: folder not found .* only when given its options"):
        open_dataset(tmp_path / "typo", "synthetic")  # a mistyped path does not fill up with chips
    for option, value, needle in (("chips", "abc", "chips must be a whole number >= 1 (got 'abc')"),
                                  ("seed", -1, "seed must be a whole number >= 0"),
                                  ("size", 2.7, "size must be a whole number >= 2 (got 2.7)"),
                                  ("phenomena", 123, "phenomena must be names")):
        with pytest.raises(DataError, match=rf"new: synthetic option {re.escape(needle)}"):
            open_dataset(tmp_path / "new", "synthetic", **{option: value})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "s1", "syn"]


def test_a_synthetic_folder_that_appears_while_writing_is_kept(tmp_path):
    from floodwatch.data.synthetic import write_synthetic_dataset

    root = tmp_path / "syn"
    open_dataset(root, "synthetic", chips=2, size=16, seed=1)
    (root / "marker").write_text("the other process's folder")  # another process moved its copy in first
    write_synthetic_dataset(root, chips=2, size=16, seed=1, replace=False)  # what a synthetic source writes with
    assert (root / "marker").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["syn"]


def test_stac_overflow_reads_bands_labels_missing_data_and_events(tmp_path):
    root = fakes.stac_overflow(tmp_path / "so")
    assert detect_format(root) == "stac_overflow"
    ds = open_dataset(root)
    assert ds.ids == ["awc00", "awc01", "kuo05"] and ds.regions == ["Xawc", "Xawc", "Xkuo"]  # flood_id from the CSV
    truth = synth_scene(fakes.SIZE, fakes.SIZE, seed=0, water_fraction=0.3)
    s = ds[0]
    assert s.georef.rasterio_crs().to_epsg() == 32633
    # 0.0 in either band is missing data in both, though the files tag no nodata value
    missing = np.zeros(s.valid.shape, bool)
    missing[:4, :4] = missing[4:6, :2] = True
    np.testing.assert_array_equal(s.valid, ~missing)
    assert np.isnan(s.image[:, missing]).all()
    np.testing.assert_array_equal(s.image[:, ~missing], truth.image[:, ~missing])
    assert (s.mask[-1] == IGNORE_INDEX).all() and (s.mask[missing] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(s.mask[:-1][~missing[:-1]], truth.mask[:-1][~missing[:-1]])
    assert s.extra["split"] == "train" and len(open_dataset(root, split="train")) == 3
    with pytest.raises(DataError, match="no test_features/ folder"):
        open_dataset(root, split="test")


def test_stac_overflow_other_layouts_and_regions_without_metadata(tmp_path):
    root = fakes.stac_overflow(tmp_path / "flat", chips=("abc12",), metadata=False, features="", labels="labels")
    ds = open_dataset(root, "stac-overflow")
    assert ds.format == "stac_overflow" and ds.regions == ["abc"] and ds[0].mask is not None
    root = fakes.stac_overflow(tmp_path / "test_only", chips=("zzz01",), features="test_features", labels="")
    with pytest.raises(DataError, match=r"zzz01_vv.tif: image without a matching label"):
        open_dataset(root)
    unlabelled = open_dataset(root, labelled_only=False)
    assert unlabelled[0].mask is None and unlabelled.splits == ["test"]


def test_stac_overflow_bad_files_are_named(tmp_path):
    root = fakes.stac_overflow(tmp_path / "so")
    (root / "train_features" / "awc01_vh.tif").unlink()
    with pytest.raises(DataError, match=r"awc01_vv.tif: no matching VH file \(awc01_vh.tif is missing\)"):
        open_dataset(root)
    root = fakes.stac_overflow(tmp_path / "so2")
    with rasterio.open(root / "train_labels" / "awc00.tif", "r+") as dst:
        arr = dst.read()
        arr[0, 0, 0] = 7
        dst.write(arr)
    with pytest.raises(DataError, match=r"awc00.tif: label value 7 is not one of 1, 0, 255"):
        open_dataset(root)[0]
    root = fakes.stac_overflow(tmp_path / "so3", chips=("awc00",))
    with rasterio.open(root / "train_features" / "awc00_vh.tif", "r+") as dst:
        dst.transform = rasterio.transform.Affine(10.0, 0.0, 400500.0, 0.0, -10.0, 5000000.0)
    with pytest.raises(DataError, match=r"awc00_vh.tif: transform .* does not match awc00_vv.tif"):
        open_dataset(root)[0]
