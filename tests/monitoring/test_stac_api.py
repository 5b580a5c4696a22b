"""`aoi watch` through a STAC API (pystac-client), over the items and COGs of the static-catalog test."""
import pytest
import rasterio
from shapely.geometry import box, mapping
from typer.testing import CliRunner

from floodwatch.errors import MonitoringError
from floodwatch.monitoring.aoi import add_aoi
from floodwatch.monitoring.geo import to_wgs84
from floodwatch.monitoring.stac import find_items, watch_aoi
from floodwatch.monitoring.store import Store

import monitoring_helpers
from monitoring_helpers import ORIGIN, UTM, DarkWaterPredictor
from tests.ports import free_port
from stac_helpers import api_items, make_catalog
from tests.models.zoo_checks import tiny_onnx  # noqa: F401

X0, Y0 = ORIGIN
MID = mapping(to_wgs84(box(X0 + 960, Y0 - 1600, X0 + 1600, Y0 - 960), UTM))  # 64 x 64 px mid-scene


@pytest.fixture
def served(tmp_path, file_server):
    """(collections, items) of the test catalog, its COGs served over HTTP with range support."""
    (tmp_path / "stac").mkdir()
    make_catalog(tmp_path / "stac")
    return api_items(f"{file_server(tmp_path / 'stac')}/catalog.json")


def _searches(api):
    return [(method, params) for method, path, params in api.requests if path == "/search"]


def test_watch_stac_api(tmp_path, served, stac_api, predictor, receiver):
    api = stac_api(*served, page_size=1)  # one item per page: the client must follow `next`
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", MID, rise_percent=100, webhooks=[receiver.url])
        out = watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", tile=32,
                        progress=False)  # overlap left to the default for a 32 px tile
        assert [(o.item_id, o.status) for o in out] == [("S1_0", "mapped"), ("S1_1", "mapped")]
        (first, params), (_, page2) = _searches(api)
        assert first == "POST" and params["collections"] == ["s1"] and params["intersects"]["type"] == "Polygon"
        assert "datetime" not in params and page2["token"] == "1"
        # only the AOI's window (+16 px padding) was read, through HTTP range requests on the COGs
        with rasterio.open(tmp_path / "out" / "inputs" / "S1_0.tif") as src:
            assert 96 <= src.width <= 100 and 96 <= src.height <= 100
        assert any(p.endswith("S1_1_vh.tif") for p, *_ in monitoring_helpers.RangeHandler.range_requests)
        hist = store.history("mid")
        assert [(h["scene_id"], h["acquired"]) for h in hist] == [("S1_0", "2024-05-01T05:00:00Z"),
                                                                   ("S1_1", "2024-05-09T05:00:00Z")]
        assert hist[1]["flooded_km2"] > hist[0]["flooded_km2"] and hist[0]["coverage"] == pytest.approx(1, abs=0.02)
        assert [m["scene_id"] for m in receiver.received] == ["S1_1"]
        # a second watch finds the same items and processes none of them
        again = watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", progress=False)
        assert [(o.item_id, o.status) for o in again] == [("S1_0", "skipped"), ("S1_1", "skipped")]
        assert len(store.history("mid")) == 2 and len(receiver.received) == 1
        since = watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", since="2024-05-05",
                          progress=False)
        assert [o.item_id for o in since] == ["S1_1"]
        assert _searches(api)[-1][1]["datetime"] == "2024-05-05T00:00:00Z/.."
        with pytest.raises(MonitoringError, match="^collection: 'nope' not found"):
            watch_aoi(store, "mid", api.url, "nope", predictor, tmp_path / "out", progress=False)


def test_get_only_api_and_cli_since(tmp_path, served, stac_api, monkeypatch):
    api = stac_api(*served, page_size=1, methods=("GET",))  # POST /search answers 405 here
    from shapely.geometry import shape

    ids = [i.id for i in find_items(api.url, "s1", shape(MID))]
    assert ids == ["S1_0", "S1_1"]
    assert all(m == "GET" and "bbox" in p for m, p in _searches(api)) and len(_searches(api)) == 2

    # the CLI, with a stand-in model (load_predictor is imported when the command runs)
    monkeypatch.setattr("floodwatch.inference.predictor.load_predictor", lambda path, **options: DarkWaterPredictor())
    from floodwatch.cli import main as cli_main

    cli_main._register_all()
    db = tmp_path / "cli.db"
    with Store(db) as store:
        add_aoi(store, "mid", MID)
    args = ["aoi", "watch", "mid", "--stac", api.url, "--collection", "s1", "--since", "2024-05-05",
            "-m", str(tmp_path / "model.pt"), "-o", str(tmp_path / "out"), "--db", str(db)]
    run = CliRunner().invoke(cli_main.app, args, env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.exception
    assert "S1_1" in run.stdout and "mapped" in run.stdout and "S1_0" not in run.stdout
    assert _searches(api)[-1][1]["datetime"] == "2024-05-05T00:00:00Z/.."
    run = CliRunner().invoke(cli_main.app, args, env={"COLUMNS": "200"})
    assert run.exit_code == 0 and "skipped" in run.stdout
    with Store(db) as store:
        assert [h["scene_id"] for h in store.history("mid")] == ["S1_1"]


@pytest.mark.parametrize("model, options", [
    ("tiny_checkpoint", ["--tta"]),
    ("tiny_onnx", ["--backend", "onnx", "--tta-transforms", "vflip", "--refine", "clean:min=4", "--downsample", "2"]),
], ids=["tta", "onnx-refine-downsample"])
def test_cli_watch_maps_as_map_does(tmp_path, served, stac_api, run_cli, request, model, options):
    """`aoi watch` took none of map's model options (--tta, --backend, --refine, --downsample): the same options
    now give map's probabilities and recorded settings on each window it read."""
    import numpy as np

    model = request.getfixturevalue(model)
    api = stac_api(*served)
    db = tmp_path / "fw.db"
    with Store(db) as store:
        add_aoi(store, "mid", MID)
    watched = run_cli("aoi", "watch", "mid", "--stac", api.url, "--collection", "s1", "-m", model, "--tile", "32",
                      "--db", db, "-o", tmp_path / "watch", "-q", *options)
    assert watched.returncode == 0, watched.stderr
    windows = [tmp_path / "watch" / "inputs" / f"S1_{i}.tif" for i in (0, 1)]
    mapped = run_cli("map", *windows, "-m", model, "--tile", "32", "--overlap", "8", "-o", tmp_path / "map", "-q",
                     *options)  # watch's overlap at a 32 px tile
    assert mapped.returncode == 0, mapped.stderr
    for item in ("S1_0", "S1_1"):
        watch, watch_stats = _map_outputs(tmp_path / "watch" / "maps" / item)
        ref, ref_stats = _map_outputs(tmp_path / "map" / item)
        np.testing.assert_array_equal(watch, ref)
        assert watch_stats == ref_stats and watch_stats["valid_km2"] > 0
        assert watch_stats["tta"] == (["identity", "hflip", "vflip", "rot90"] if "--tta" in options else ["vflip"])
        if "--backend" in options:
            assert watch_stats["backend"] == "onnx" and watch_stats["refine"]


def _map_outputs(folder):
    """(probability raster, what stats.json says made the map and what it found)."""
    import json

    with rasterio.open(folder / "flood_probability.tif") as src:
        probability = src.read()
    stats = json.loads((folder / "stats.json").read_text())
    return probability, {k: stats[k] for k in ("flooded_km2", "valid_km2", "polygons", "backend", "precision", "model",
                                               "tta", "downsample", "refine", "temperature", "weights")}


def test_unreachable_api_is_one_line(tmp_path):
    from shapely.geometry import shape

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MonitoringError, match="search failed") as err:
        find_items(url, "s1", shape(MID))
    assert str(err.value).startswith(f"source: {url}: ") and "\n" not in str(err.value)


def test_the_api_root_with_a_trailing_slash_is_the_same_catalog(tmp_path, served, stac_api, predictor):
    """Items watched through `URL` were mapped and recorded again through `URL/` (the processed-items key took the
    URL as typed, and `run` marks them under the root without the '/')."""
    api = stac_api(*served)
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", MID)
        first = watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", tile=32, progress=False)
        assert [o.status for o in first] == ["mapped", "mapped"]
        again = watch_aoi(store, "mid", api.url + "/", "s1", predictor, tmp_path / "out", tile=32, progress=False)
        assert [o.status for o in again] == ["skipped", "skipped"] and len(store.history("mid")) == 2


def test_an_item_without_vv_and_vh_is_left_out_not_a_stop(tmp_path, served, stac_api, predictor):
    """One HH-only (or incomplete) item in the catalog stopped every watch with an error, so the items after it
    were never mapped; it is listed as 'no VV+VH', and mapped once the catalog gives it both assets."""
    collections, items = served
    vh = items[0]["assets"].pop("vh")
    api = stac_api(collections, items)
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", MID)
        out = watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", tile=32, progress=False)
        assert [(o.item_id, o.status) for o in out] == [("S1_0", "no VV+VH"), ("S1_1", "mapped")]
        items[0]["assets"]["vh"] = vh
        out = watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", tile=32, progress=False)
        assert [(o.item_id, o.status) for o in out] == [("S1_0", "mapped"), ("S1_1", "skipped")]
        # no item with both (assets named in a way floodwatch does not know): an error, not an empty exit 0
        for item in items:
            item["assets"].pop("vh")
        add_aoi(store, "other", MID)
        with pytest.raises(MonitoringError, match=r"STAC item 'S1_0': no VV and VH assets \(has .*\); none of the 2 "
                                                  r"item\(s\) found has VV and VH"):
            watch_aoi(store, "other", api.url, "s1", predictor, tmp_path / "out2", tile=32, progress=False)


def test_a_relative_asset_href_is_one_line(tmp_path, served, stac_api, predictor):
    """pystac resolves a relative href of an API item (no self link) to None, and rasterio.open(None) raised a
    TypeError through the CLI."""
    collections, items = served
    for item in items:
        item["assets"]["vv"]["href"] = "S1_vv.tif"
    api = stac_api(collections, items)
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", MID)
        with pytest.raises(MonitoringError, match="asset 'vv' has the relative href 'S1_vv.tif'"):
            watch_aoi(store, "mid", api.url, "s1", predictor, tmp_path / "out", tile=32, progress=False)
