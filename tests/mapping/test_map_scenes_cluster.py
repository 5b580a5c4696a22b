"""map_scenes on a real cluster: a `dask scheduler` and two `dask worker` processes started apart, each in
its own working folder; relative scene paths, inputs over loopback HTTP, outputs to fsspec URLs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio

from floodwatch.mapping import map_scene, map_scenes
from tests.monitoring.monitoring_helpers import RangeHandler, serving

from .helpers import ThresholdPredictor, make_scene, read

ROOT = Path(__file__).resolve().parents[2]
KW = dict(tile=64, overlap=16, batch=2, progress=False)
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    # the test's fake predictor pickles by its module name, which pytest may import as `mapping.helpers`
    path = [str(ROOT / "src"), str(ROOT), str(ROOT / "tests")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=cwd, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The scheduler's address; the scheduler and the workers run in three other folders."""
    from dask.distributed import Client

    d = tmp_path_factory.mktemp("cluster")
    sched_file = d / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                     str(sched_file)], d / "scheduler_cwd", d / "scheduler.log")]
    try:
        for i in range(2):
            procs.append(_start(["worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--nworkers", "1",
                                 "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(d / f"w{i}_tmp")],
                                d / f"worker{i}_cwd", d / f"worker{i}.log"))
        deadline = time.time() + 120
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("here")
    (d / "s2").mkdir()
    for i, (h, w) in enumerate([(100, 90), (70, 130)]):
        make_scene(d / "s2" / f"scene_{i}.tif", h, w, seed=20 + i, nodata_border=4)
    return d


def test_relative_paths_reach_workers_in_other_folders(cluster, scenes, tmp_path, monkeypatch):
    monkeypatch.chdir(scenes)  # the workers' folders hold no s2/
    results = map_scenes(["s2"], ThresholdPredictor, "out_rel", scheduler=cluster, **KW)
    assert [Path(r.scene) for r in results] == [scenes / "s2" / f"scene_{i}.tif" for i in range(2)]
    for r in results:
        serial = map_scene(r.scene, ThresholdPredictor(), tmp_path / "serial", **KW)
        assert Path(r.out_dir).parent == scenes / "out_rel"
        np.testing.assert_array_equal(read(r.paths["mask"])[0], read(serial.paths["mask"])[0])


def test_http_inputs_and_a_file_url_output(cluster, scenes, tmp_path):
    handler = type("H", (RangeHandler,), {"__init__": lambda self, *a, **k: RangeHandler.__init__(
        self, *a, directory=str(scenes / "s2"), **k)})
    with serving(handler) as base:
        urls = [f"{base}/scene_{i}.tif" for i in range(2)]
        results = map_scenes(urls, ThresholdPredictor, f"file://{tmp_path}/maps", scheduler=cluster, **KW)
    assert RangeHandler.range_requests  # GDAL read the scenes by byte ranges over HTTP
    for i, r in enumerate(results):
        assert r.scene == urls[i] and Path(r.out_dir) == tmp_path / "maps" / f"scene_{i}"
        local = map_scene(scenes / "s2" / f"scene_{i}.tif", ThresholdPredictor(), tmp_path / "local", **KW)
        np.testing.assert_array_equal(read(r.paths["mask"])[0], read(local.paths["mask"])[0])
        assert r.stats["flooded_km2"] == pytest.approx(local.stats["flooded_km2"])


def test_object_storage_output_through_fsspec(scenes):
    result = map_scene(scenes / "s2" / "scene_0.tif", ThresholdPredictor(), "memory://bucket/maps", **KW)
    assert result.out_dir == "memory://bucket/maps/scene_0"
    fs = fsspec.filesystem("memory")
    names = sorted(Path(p).name for p in fs.ls("/bucket/maps/scene_0", detail=False))
    assert names == sorted(["flood_mask.tif", "flood_probability.tif", "flood_polygons.geojson", "stats.json",
                            "quicklook.png"])
    stats = json.loads(fs.cat(result.paths["stats"]))
    assert stats["flooded_km2"] == pytest.approx(result.stats["flooded_km2"]) and stats["flooded_km2"] > 0
    with rasterio.MemoryFile(fs.cat(result.paths["mask"])) as mem, mem.open() as ds:
        sample_mask = ds.read(1)
    local = map_scene(scenes / "s2" / "scene_0.tif", ThresholdPredictor(), scenes / "local_out", **KW)
    np.testing.assert_array_equal(sample_mask, read(local.paths["mask"])[0])
