"""Bad input: one-line FloodwatchError naming the file or field, and nothing left behind."""
from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio

from floodwatch.errors import DataError, FloodwatchError, InvalidArgumentError
from floodwatch.mapping import Terrain, map_scene, map_scenes
from floodwatch.mapping.locations import output_names

from .helpers import ThresholdPredictor, make_scene

TILING = dict(tile=64, overlap=16, progress=False)


def assert_nothing_written(out_dir):
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.fixture()
def scene(tmp_path):
    make_scene(tmp_path / "s.tif", 90, 70)
    return tmp_path / "s.tif"


def test_not_a_raster(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not a GeoTIFF")
    with pytest.raises(DataError, match="notes.tif: not a raster"):
        map_scene(bad, ThresholdPredictor(), tmp_path / "out", **TILING)
    assert_nothing_written(tmp_path / "out")
    with pytest.raises(DataError, match="missing.tif: file not found"):
        map_scene(tmp_path / "missing.tif", ThresholdPredictor(), tmp_path / "out", **TILING)


def _single_band(src_path, dst_path, band, shift=0.0):
    with rasterio.open(src_path) as src:
        profile = src.profile | {"count": 1}
        if shift:
            profile["transform"] = src.transform @ src.transform.translation(shift, 0)
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read(band), 1)


def test_single_band_without_vh(tmp_path, scene):
    _single_band(scene, tmp_path / "vv.tif", 1)
    with pytest.raises(DataError, match=r"vv.tif: 1 band.*`vh`"):
        map_scene(tmp_path / "vv.tif", ThresholdPredictor(), tmp_path / "out", **TILING)
    assert_nothing_written(tmp_path / "out")


def test_mismatched_vv_vh_grids(tmp_path, scene):
    _single_band(scene, tmp_path / "vv.tif", 1)
    _single_band(scene, tmp_path / "vh.tif", 2, shift=3)
    with pytest.raises(DataError, match="vh.tif: grid .* does not match"):
        map_scene(tmp_path / "vv.tif", ThresholdPredictor(), tmp_path / "out", vh=tmp_path / "vh.tif", **TILING)
    assert_nothing_written(tmp_path / "out")


def test_output_folder_not_writable(tmp_path, scene):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should go")
    with pytest.raises(FloodwatchError, match="cannot create output folder"):
        map_scene(scene, ThresholdPredictor(), blocker / "out", **TILING)


def test_bad_fields(tmp_path, scene):
    for kw, field in ((dict(threshold=1.5), "threshold"), (dict(units="dbz"), "units"),
                      (dict(probability="int16"), "probability"), (dict(overlap=40), "overlap")):
        with pytest.raises(FloodwatchError, match=field):
            map_scene(scene, ThresholdPredictor(), tmp_path / "out", **(TILING | kw))
    (tmp_path / "water.tif").write_text("no raster")
    with pytest.raises(DataError, match="water.tif: water mask is not a raster"):
        map_scene(scene, ThresholdPredictor(), tmp_path / "out", water_mask=tmp_path / "water.tif", **TILING)
    assert_nothing_written(tmp_path / "out")


class FailingPredictor(ThresholdPredictor):
    def predict(self, batch):
        if self.calls >= 2:
            raise FloodwatchError("model fell over")
        return super().predict(batch)


def test_failure_mid_scene_leaves_no_partial_output(tmp_path, scene):
    with pytest.raises(FloodwatchError, match="fell over"):
        map_scene(scene, FailingPredictor(), tmp_path / "out", batch=1, **TILING)
    assert_nothing_written(tmp_path / "out")


def test_existing_result_survives_a_failed_rerun(tmp_path, scene):
    first = map_scene(scene, ThresholdPredictor(), tmp_path / "out", **TILING)
    before = first.paths["mask"].read_bytes()
    with pytest.raises(FloodwatchError):
        map_scene(scene, FailingPredictor(), tmp_path / "out", batch=1, **TILING)
    assert first.paths["mask"].read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s"]


def test_wrong_predictor_output_shape(tmp_path, scene):
    class Bad(ThresholdPredictor):
        def predict(self, batch):
            return np.zeros((1, 3, 3), np.float32)

    with pytest.raises(FloodwatchError, match="predictor returned shape"):
        map_scene(scene, Bad(), tmp_path / "out", **TILING)


# -- a caller's bad argument: InvalidArgumentError naming it, before anything is read or written -------------
def _nothing_but_the_scene(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["s.tif"]


@pytest.mark.parametrize("where", [None, {"a": 1}, 5])
def test_out_dir_that_is_no_path_is_refused_not_made_a_folder(tmp_path, scene, monkeypatch, where):
    monkeypatch.chdir(tmp_path)  # str(None) would have been the folder ./None
    with pytest.raises(InvalidArgumentError, match=r"^out_dir: expected a path or URL"):
        map_scene(scene, ThresholdPredictor(), where, **TILING)
    with pytest.raises(InvalidArgumentError, match=r"^out_dir: expected a path or URL"):
        map_scenes([scene], ThresholdPredictor, where, processes=False, tile=64, overlap=16, progress=False)
    _nothing_but_the_scene(tmp_path)


@pytest.mark.parametrize("option", ["scene", "vh", "water_mask", "hand", "dem", "exclude"])
def test_other_locations_that_are_no_path_are_refused(tmp_path, scene, monkeypatch, option):
    monkeypatch.chdir(tmp_path)
    args = {"scene": None} if option == "scene" else {}
    kw = {"terrain": Terrain(**{option: 7})} if option in ("hand", "dem", "exclude") else \
        {option: 7} if option != "scene" else {}
    with pytest.raises(InvalidArgumentError, match=rf"^{option}: expected a path or URL .*got \w+ (None|7)$"):
        map_scene(args.get("scene", scene), ThresholdPredictor(), tmp_path / "out", **kw, **TILING)
    _nothing_but_the_scene(tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "ABSOLUTE", ".", "", "a//b", "a/", "a\\..", 5])
def test_a_name_that_leads_out_of_out_dir_is_refused(tmp_path, scene, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    with pytest.raises(InvalidArgumentError, match=r"^name: .* not a folder name"):
        map_scene(scene, ThresholdPredictor(), tmp_path / "maps" / "out", name=name, **TILING)
    _nothing_but_the_scene(tmp_path)


def test_the_names_output_names_gives_are_folder_names():
    from floodwatch.mapping.locations import check_output_name

    for name in output_names(["s1/2024-05-01/scene.tif", "s1/2024-05-13/scene.tif", "/w/a.tif", "t/x.tiff"]):
        check_output_name(name)  # map and map_scenes pass them on as `name`


@pytest.mark.parametrize("option, value", [("tile", 1024 / 2), ("tile", 64.0), ("batch", 2.5), ("overlap", 16.5),
                                           ("tile", True), ("batch", True), ("chunk_tiles", 1.5),
                                           ("overlap", np.float32(16))])
def test_tiling_numbers_must_be_ints(tmp_path, scene, option, value):
    with pytest.raises(InvalidArgumentError, match=rf"^{option}: must be a whole number >= [01], got {re.escape(repr(value))}$"):
        map_scene(scene, ThresholdPredictor(), tmp_path / "out", **(TILING | {option: value}))
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("kw", [dict(threshold=1.5), dict(threshold="0.5"), dict(batch=0), dict(tile=4),
                                dict(overlap=40), dict(probability="int16"), dict(chunk_tiles=0),
                                dict(min_area_m2=-1.0), dict(simplify=float("nan")), dict(units="dbz")])
def test_bad_arguments_raise_invalid_argument_error(tmp_path, scene, kw):
    with pytest.raises(InvalidArgumentError, match=f"^{next(iter(kw))}: "):
        map_scene(scene, ThresholdPredictor(), tmp_path / "out", **(TILING | kw))
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("kw", [dict(hand_max=0, hand="h.tif"), dict(slope_max=91, dem="d.tif"),
                                dict(depth=True, exclude="x.tif"), dict(orbit="sideways", dem="d.tif"),
                                dict(incidence_deg=95, dem="d.tif"), dict(channel_km2=0, dem="d.tif"),
                                dict(depth_percentile=0, dem="d.tif")])
def test_bad_terrain_options_raise_invalid_argument_error(kw):
    with pytest.raises(InvalidArgumentError, match=f"^{next(iter(kw))}: "):
        Terrain(**kw).validate()


@pytest.mark.parametrize("predictor", [{"a": 1}, object(), 7])
def test_a_predictor_that_is_no_predictor_is_refused(tmp_path, scene, predictor):
    with pytest.raises(InvalidArgumentError, match=r"^predictor: a \w+ is neither a Predictor .* nor a model file"):
        map_scene(scene, predictor, tmp_path / "out", **TILING)
    assert_nothing_written(tmp_path / "out")
