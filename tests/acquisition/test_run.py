"""`run`: fetch -> map -> record in the AOI's history -> alert, on the loopback Planetary Computer."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from floodwatch.acquisition import Retries, resolve_source
from floodwatch.errors import MonitoringError
from floodwatch.monitoring.geo import geodesic_area_km2
from floodwatch.monitoring.run import run_aoi
from floodwatch.monitoring.store import Store

import fake_pc
import monitoring_helpers
from fake_pc import X0, Y1, utm_aoi
from monitoring_helpers import DarkWaterPredictor
from tests.models.zoo_checks import tiny_onnx  # noqa: F401

FAST = Retries(attempts=3, backoff_s=0.01)
AOI = utm_aoi(X0 + 500, Y1 - 5100, X0 + 3500, Y1 - 2500)  # inside item C; C's water is rows 300-500, cols 100-300
WATER = utm_aoi(X0 + 1000, Y1 - 5000, X0 + 3000, Y1 - 3000)
CORNER = utm_aoi(X0 + 2500, Y1 - 3500, X0 + 3500, Y1 - 2500)  # 100 x 100 px over the water's corner (cheap to map)


@pytest.fixture
def pc(tmp_path, stac_api, file_server, monkeypatch):
    return fake_pc.start(stac_api, file_server, tmp_path / "blobs", monkeypatch)


def test_run_maps_records_and_alerts(pc, tmp_path):
    src = resolve_source("pc-rtc", url=pc.api.url)
    with Store(tmp_path / "fw.db") as store:
        res = run_aoi(store, "valley", "2024-04-25", DarkWaterPredictor(), tmp_path / "run", geometry=AOI,
                      source=src, days=10, threshold_km2=1.0, tile=128, overlap=16, retries=FAST, progress=False)
        # the first acquisition in [Apr 25, May 5) is item C on May 1
        assert res.scene.key == "2024-05-01" and [i["id"] for i in res.scene.items] == [pc.items[2]["id"]]
        assert (res.map.out_dir / "flood_mask.tif").is_file() and (res.map.out_dir / "quicklook.png").is_file()
        assert res.map.out_dir == tmp_path / "run" / "maps" / "2024-05-01" / "scene"
        (row,) = store.history("valley")
        assert row["scene_id"] == pc.items[2]["id"] and row["acquired"] == "2024-05-01T04:58:02Z"
        # the dark box, measured independently on the ellipsoid (the model smooths its edges by ~2 px)
        assert row["flooded_km2"] == pytest.approx(geodesic_area_km2(WATER), rel=0.05)
        assert row["coverage"] == pytest.approx(1.0, abs=0.02)
        (alert,) = store.alerts("valley")
        assert res.alert_ids == [alert["id"]] and alert["rule"] == "threshold"
        # `aoi watch` on the same catalog will skip the item `run` recorded
        assert store.is_processed(f"{pc.api.url}#sentinel-1-rtc", pc.items[2]["id"], "valley")
        # a stored AOI runs by name; the same name with another place is refused
        again = run_aoi(store, "valley", "2024-04-19", DarkWaterPredictor(), tmp_path / "run", source=src,
                        tile=128, overlap=16, retries=FAST, progress=False)
        assert again.scene.key == "2024-04-19" and not again.alert_ids
        assert [h["acquired"][:10] for h in store.history("valley")] == ["2024-04-19", "2024-05-01"]
        with pytest.raises(MonitoringError, match="already stored with another geometry"):
            run_aoi(store, "valley", "2024-04-19", DarkWaterPredictor(), tmp_path / "run",
                    geometry=utm_aoi(X0, Y1 - 900, X0 + 900, Y1), source=src, progress=False)
        # its rules stay its own: repeating them is fine, another one is refused before anything is fetched
        with pytest.raises(MonitoringError, match=r"threshold_km2: AOI 'valley' is stored with threshold_km2 1.0"):
            run_aoi(store, "valley", "2024-04-19", DarkWaterPredictor(), tmp_path / "other", source=src,
                    threshold_km2=5.0, progress=False)
        with pytest.raises(MonitoringError, match="rise_percent: AOI 'valley' has no rise_percent rule"):
            run_aoi(store, "valley", "2024-04-19", DarkWaterPredictor(), tmp_path / "other", source=src,
                    rise_percent=-5.0, progress=False)
        assert not (tmp_path / "other").exists()
        same = run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "run", source=src,
                       threshold_km2=1.0, tile=128, overlap=16, retries=FAST, progress=False)
        assert same.scene.key == "2024-05-01"


def test_cli_run_with_a_checkpoint(pc, tmp_path, run_cli, tiny_checkpoint, monkeypatch):
    db, out = tmp_path / "cli.db", tmp_path / "out"
    aoi_file = tmp_path / "valley.geojson"
    aoi_file.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": CORNER.__geo_interface__}))
    ok = run_cli("run", "--aoi", aoi_file, "--date", "2024-05-01", "-m", tiny_checkpoint, "--stac", pc.api.url,
                 "--threshold-km2", "0", "--tile", "128", "--db", db, "-o", out, "-q")
    assert ok.returncode == 0, ok.stderr
    assert (out / "inputs" / "2024-05-01" / "scene.tif").is_file() and (out / "inputs" / "fetch.json").is_file()
    stats = json.loads((out / "maps" / "2024-05-01" / "scene" / "stats.json").read_text())
    assert stats["model"] == str(Path(tiny_checkpoint).absolute())  # as map records it (run passes a predictor)
    with Store(db) as store:
        (row,) = store.history("valley")
        alerts = store.alerts("valley")
    assert row["scene_id"] == pc.items[2]["id"] and "valley: 2024-05-01" in ok.stdout
    # an untrained model floods what it floods; the threshold rule (0 km²) fires exactly when that is > 0
    assert len(alerts) == (row["flooded_km2"] > 0) and stats["valid_km2"] > 0
    monkeypatch.setenv("FLOODWATCH_ZOO", str(tmp_path / "empty_zoo"))  # no default model to fall back on
    (tmp_path / "empty_zoo").mkdir()
    missing = run_cli("run", "--aoi", "valley", "--date", "2024-05-01", "--stac", pc.api.url, "--db", db,
                      "-o", out)
    assert missing.returncode == 2 and "-m/--model" in missing.stderr and missing.stderr.count("\n") == 1


#: stats.json entries that say what made a map and what it found (not where, nor how long it took)
SAME_AS_MAP = ("flooded_km2", "valid_km2", "polygons", "backend", "precision", "model", "tta", "downsample", "refine",
               "temperature", "weights")


def _map_outputs(folder: Path):
    import rasterio

    with rasterio.open(folder / "flood_probability.tif") as src:
        probability = src.read()
    stats = json.loads((folder / "stats.json").read_text())
    return probability, {k: stats[k] for k in SAME_AS_MAP}


@pytest.mark.parametrize("model, options", [
    ("tiny_checkpoint", ["--tta"]),
    ("tiny_onnx", ["--backend", "onnx", "--tta-transforms", "hflip", "--refine", "guided", "--downsample", "2"]),
], ids=["tta", "onnx-refine-downsample"])
def test_cli_run_maps_as_map_does(pc, tmp_path, run_cli, request, model, options):
    """`run` took none of map's model options: a map made with --tta or an ONNX --backend could not be made by
    `run`. The same options give map's probabilities, km² and recorded settings on the scene `run` fetched."""
    model = request.getfixturevalue(model)
    aoi_file = tmp_path / "valley.geojson"
    aoi_file.write_text(json.dumps(CORNER.__geo_interface__))
    ran = run_cli("run", "--aoi", aoi_file, "--date", "2024-05-01", "-m", model, "--stac", pc.api.url, "--tile", "128",
                  "--db", tmp_path / "fw.db", "-o", tmp_path / "run", "-q", *options)
    assert ran.returncode == 0, ran.stderr
    mapped = run_cli("map", tmp_path / "run" / "inputs" / "2024-05-01" / "scene.tif", "-m", model, "--tile", "128",
                     "--overlap", "32", "-o", tmp_path / "map", "-q", *options)  # run's overlap at a 128 px tile
    assert mapped.returncode == 0, mapped.stderr
    probability, stats = _map_outputs(tmp_path / "run" / "maps" / "2024-05-01" / "scene")
    reference, reference_stats = _map_outputs(tmp_path / "map" / "scene")
    np.testing.assert_array_equal(probability, reference)
    assert stats == reference_stats and stats["valid_km2"] > 0
    assert stats["tta"] == (["identity", "hflip", "vflip", "rot90"] if "--tta" in options else ["hflip"])
    if "--backend" in options:
        assert stats["backend"] == "onnx" and stats["downsample"] == 2 and stats["refine"]


def test_cli_run_asks_a_triton_server_as_map_does(pc, tmp_path, run_cli, monkeypatch):
    calls = []

    def load_predictor(model, backend="auto", **kwargs):  # the server's model, as `map --backend triton` asks it
        calls.append((model, backend, kwargs))
        return DarkWaterPredictor()

    monkeypatch.setattr("floodwatch.inference.predictor.load_predictor", load_predictor)
    from floodwatch.inference.temperature import save_temperature

    aoi_file = tmp_path / "valley.geojson"
    aoi_file.write_text(json.dumps(CORNER.__geo_interface__))
    # a temperature fitted on the file the server runs holds for the server's probabilities
    t_file = save_temperature(tmp_path / "t.json", 1.5)
    ran = run_cli("run", "--aoi", aoi_file, "--date", "2024-05-01", "--stac", pc.api.url, "--tile", "128", "--db",
                  tmp_path / "fw.db", "-o", tmp_path / "run", "-q", "--backend", "triton", "--url", "127.0.0.1:8001",
                  "--triton-model", "fw", "--protocol", "grpc", "--tta", "--temperature", t_file)
    assert ran.returncode == 0, ran.stderr
    assert calls == [(None, "triton", {"url": "127.0.0.1:8001", "model_name": "fw", "protocol": "grpc", "tta": True,
                                       "temperature": 1.5})]
    stats = json.loads((tmp_path / "run" / "maps" / "2024-05-01" / "scene" / "stats.json").read_text())
    # stats.json names what ran: here the stand-in the loader returned (a Triton client says "triton")
    assert stats["backend"] == "DarkWaterPredictor" and stats["flooded_km2"] > 0


def test_aoi_watch_uses_the_same_source_layer(pc, tmp_path):
    from floodwatch.monitoring.stac import watch_aoi

    src = resolve_source("pc-rtc", url=pc.api.url)
    with Store(tmp_path / "fw.db") as store:
        run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "run", geometry=AOI, source=src,
                tile=128, overlap=16, retries=FAST, progress=False)
        # watch signs PC hrefs with the same token layer, reads linear power, and skips what `run` recorded
        out = watch_aoi(store, "valley", pc.api.url, "sentinel-1-rtc", DarkWaterPredictor(), tmp_path / "watch",
                        units="linear", tile=128, overlap=16, progress=False)
        assert [(o.item_id, o.status) for o in out] == [(pc.items[0]["id"], "mapped"), (pc.items[1]["id"], "mapped"),
                                                        (pc.items[2]["id"], "skipped")]
        assert pc.token_requests
        assert all(fake_pc.SIG in p for p, *_ in monitoring_helpers.RangeHandler.range_requests)
        by_scene = {h["scene_id"]: h for h in store.history("valley")}
        assert by_scene[pc.items[2]["id"]]["flooded_km2"] > 1 > by_scene[pc.items[0]["id"]]["flooded_km2"]


def test_run_counts_permanent_water_apart(pc, tmp_path):
    """--water-mask, as map's: water inside the reference is permanent, not flood, in the map and the history."""
    src = resolve_source("pc-rtc", url=pc.api.url)
    lake = tmp_path / "lake.geojson"
    lake.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": WATER.__geo_interface__}]}))
    with Store(tmp_path / "fw.db") as store:
        res = run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "run", geometry=AOI,
                      source=src, tile=128, overlap=16, retries=FAST, progress=False, water_mask=lake)
        (row,) = store.history("valley")
    stats = json.loads((res.map.out_dir / "stats.json").read_text())
    assert stats["water_mask"] == str(lake)
    # the dark box is the lake: measured on the ellipsoid, counted as permanent water, not as flood
    assert stats["permanent_water_km2"] == pytest.approx(geodesic_area_km2(WATER), rel=0.05)
    assert row["flooded_km2"] < 0.05 * geodesic_area_km2(WATER)


class _Broken(DarkWaterPredictor):
    def predict(self, batch):
        raise RuntimeError("the model broke")


def test_a_failed_run_leaves_the_database_as_it_was(pc, tmp_path):
    """A new AOI is stored only with a result: no item found, or a failure while mapping, takes it out again."""
    from floodwatch.errors import NoItemsError

    src = resolve_source("pc-rtc", url=pc.api.url)
    with Store(tmp_path / "fw.db") as store:
        with pytest.raises(NoItemsError, match="no Sentinel-1 items"):
            run_aoi(store, "valley", "2023-01-01", DarkWaterPredictor(), tmp_path / "run", geometry=AOI, source=src,
                    retries=FAST, progress=False)
        assert store.aois() == []
        with pytest.raises(RuntimeError, match="the model broke"):
            run_aoi(store, "valley", "2024-05-01", _Broken(), tmp_path / "run", geometry=CORNER, source=src,
                    tile=128, overlap=16, retries=FAST, progress=False)
        assert store.aois() == []
        # a stored AOI stays, with its history, when a later run of it fails
        run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "run", geometry=CORNER, source=src,
                tile=128, overlap=16, retries=FAST, progress=False)
        with pytest.raises(NoItemsError):
            run_aoi(store, "valley", "2023-01-01", DarkWaterPredictor(), tmp_path / "run", source=src,
                    retries=FAST, progress=False)
        assert [a.name for a in store.aois()] == ["valley"] and len(store.history("valley")) == 1


def test_run_checks_its_output_folder_before_the_download(pc, tmp_path):
    from floodwatch.errors import FloodwatchError

    (tmp_path / "a_file").write_text("in the way")
    src = resolve_source("pc-rtc", url=pc.api.url)
    with Store(tmp_path / "fw.db") as store:
        with pytest.raises(FloodwatchError, match="a_file is a file"):
            run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "a_file", geometry=CORNER,
                    source=src, retries=FAST, progress=False)
        assert store.aois() == []
    assert not pc.api.requests  # nothing searched, nothing downloaded


@pytest.mark.parametrize("option", ["hand", "dem", "exclude", "water_mask"])
def test_run_checks_map_inputs_before_the_download(pc, tmp_path, option):
    from floodwatch.errors import DataError
    from floodwatch.mapping import Terrain

    missing = tmp_path / ("nothere.geojson" if option == "exclude" else "nothere.tif")
    layers = {"water_mask": missing} if option == "water_mask" else {"terrain": Terrain(**{option: missing})}
    src = resolve_source("pc-rtc", url=pc.api.url)
    with Store(tmp_path / "fw.db") as store:
        with pytest.raises(DataError, match=f"^{option}: {re.escape(str(missing))}: .* not found$"):
            run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "run", geometry=CORNER,
                    source=src, retries=FAST, progress=False, **layers)
        assert store.aois() == []
    assert not pc.api.requests and not (tmp_path / "run").exists()  # nothing searched, fetched or written


def test_run_maps_terrain_with_the_fetched_scenes_orbit(pc, tmp_path):
    """The items say `sat:orbit_state: descending`; the scene fetch writes carries it, so terrain flags shadow
    and layover for that pass only, not for both."""
    import numpy as np
    import rasterio

    from floodwatch.mapping import Terrain

    dem = tmp_path / "dem.tif"  # flat, 30 m, over the AOI and the terrain margin
    with rasterio.open(dem, "w", driver="GTiff", width=200, height=200, count=1, dtype="float32",
                       crs=f"EPSG:{fake_pc.EPSG}", transform=rasterio.transform.from_origin(X0, Y1, 30, 30)) as d:
        d.write(np.full((1, 200, 200), 12.0, np.float32))
    src = resolve_source("pc-rtc", url=pc.api.url)
    with Store(tmp_path / "fw.db") as store:
        res = run_aoi(store, "valley", "2024-05-01", DarkWaterPredictor(), tmp_path / "run", geometry=CORNER,
                      source=src, tile=128, overlap=16, retries=FAST, progress=False,
                      terrain=Terrain(dem=dem, hand_from_dem=False))
    look = json.loads((res.map.out_dir / "stats.json").read_text())["terrain"]["look_geometry"]
    assert "heading: descending pass" in look["source"] and len(look["headings_deg"]) == 1
    scenes = json.loads(res.manifest.read_text())["scenes"]
    assert [s["orbit_state"] for s in scenes] == ["descending"]
