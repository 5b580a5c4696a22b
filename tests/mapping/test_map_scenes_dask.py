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


def test_triton_workers_load_the_servers_model_without_a_model_file(scenes, tmp_path, monkeypatch):
    """`map --backend triton --workers N` passes no model: each task asks load_predictor for the server's."""
    import floodwatch.inference

    calls = []

    def fake_load(model, backend="auto", **kwargs):
        calls.append((model, backend, kwargs))
        return ThresholdPredictor()

    monkeypatch.setattr(floodwatch.inference, "load_predictor", fake_load)
    results = map_scenes([scenes / "scene_2.tif"], None, tmp_path / "t", workers=1, backend="triton",
                         predictor_kwargs={"url": "127.0.0.1:8000", "model_name": "flood"}, **KW)
    assert calls == [(None, "triton", {"url": "127.0.0.1:8000", "model_name": "flood"})]
    # stats.json names what ran: here the fake the loader returned (a Triton client says "triton")
    assert results[0].stats["flooded_km2"] > 0 and results[0].stats["backend"] == "threshold"
