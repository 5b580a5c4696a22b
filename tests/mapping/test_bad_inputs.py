"""Bad input: one-line FloodwatchError naming the file or field, and nothing left behind."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from floodwatch.errors import DataError, FloodwatchError
from floodwatch.mapping import map_scene

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
