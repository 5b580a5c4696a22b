"""map_scenes on a Dask distributed LocalCluster: same result with 1 and 2 workers, folder expansion."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.errors import DataError, FloodwatchError
from floodwatch.mapping import map_scene, map_scenes

from .helpers import ThresholdPredictor, make_scene, read

KW = dict(tile=64, overlap=16, batch=2, processes=False, progress=False)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    for i, (h, w) in enumerate([(100, 90), (70, 130), (64, 64)]):
        make_scene(d / f"scene_{i}.tif", h, w, seed=10 + i, nodata_border=5 * i)
    (d / "readme.txt").write_text("not a scene; folders expand to their GeoTIFFs only")
    return d


def test_one_and_two_workers_agree_with_the_serial_run(scenes, tmp_path):
    one = map_scenes([scenes], ThresholdPredictor, tmp_path / "one", workers=1, **KW)
    two = map_scenes([scenes], ThresholdPredictor, tmp_path / "two", workers=2, **KW)
    assert [r.scene for r in one] == [str(scenes / f"scene_{i}.tif") for i in range(3)]
    for a, b in zip(one, two):
        serial = map_scene(a.scene, ThresholdPredictor(), tmp_path / "serial", tile=64, overlap=16, progress=False)
        for key in ("mask", "probability"):
            np.testing.assert_array_equal(read(a.paths[key])[0], read(b.paths[key])[0])
            np.testing.assert_array_equal(read(a.paths[key])[0], read(serial.paths[key])[0])
        assert a.stats["flooded_km2"] > 0 and a.stats["flooded_km2"] == pytest.approx(b.stats["flooded_km2"])
        assert a.paths["mask"].parent == tmp_path / "one" / a.out_dir.name


def test_failures_are_collected_in_one_error(scenes, tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_text("not a raster")
    with pytest.raises(FloodwatchError, match=r"1 of 2 scenes failed: broken.tif: .*not a raster"):
        map_scenes([scenes / "scene_0.tif", bad], ThresholdPredictor, tmp_path / "out", workers=1, **KW)
    with pytest.raises(DataError, match="no GeoTIFF"):
        map_scenes([tmp_path / "out"], ThresholdPredictor, tmp_path / "out2", **KW)
