import pytest
import rasterio
from shapely.geometry import box, mapping

from floodwatch.errors import MonitoringError
from floodwatch.monitoring.aoi import add_aoi
from floodwatch.monitoring.geo import to_wgs84
from floodwatch.monitoring.stac import watch_aoi
from floodwatch.monitoring.store import Store

import monitoring_helpers
from monitoring_helpers import ORIGIN, UTM
from stac_helpers import make_catalog

X0, Y0 = ORIGIN


def test_watch_static_catalog_over_http(tmp_path, file_server, predictor, receiver):
    (tmp_path / "stac").mkdir()
    make_catalog(tmp_path / "stac")
    base = file_server(tmp_path / "stac")
    url = f"{base}/catalog.json"
    # AOI: 64 x 64 px in the middle of the 256 px scenes
    aoi = to_wgs84(box(X0 + 960, Y0 - 1600, X0 + 1600, Y0 - 960), UTM)
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", mapping(aoi), rise_percent=100, webhooks=[receiver.url])
        out = watch_aoi(store, "mid", url, "s1", predictor, tmp_path / "out", tile=64, overlap=16,
                        progress=False)
        assert [(o.item_id, o.status) for o in out] == [("S1_0", "mapped"), ("S1_1", "mapped")]
        # only the AOI's window (+16 px padding) was read, through HTTP range requests
        with rasterio.open(tmp_path / "out" / "inputs" / "S1_0.tif") as src:
            assert 96 <= src.width <= 100 and 96 <= src.height <= 100
        ranges = monitoring_helpers.RangeHandler.range_requests
        assert ranges and all(path.endswith(".tif") for path, *_ in ranges)
        (vv,) = (tmp_path / "stac").rglob("S1_0_vv.tif")
        fetched = sum(e - s + 1 for p, s, e in ranges if p.endswith("S1_0_vv.tif"))
        assert 0 < fetched < 0.7 * vv.stat().st_size
        hist = store.history("mid")
        assert [h["scene_id"] for h in hist] == ["S1_0", "S1_1"]
        assert hist[0]["acquired"] == "2024-05-01T05:00:00Z"
        assert hist[1]["flooded_km2"] > hist[0]["flooded_km2"]
        assert hist[0]["coverage"] == pytest.approx(1.0, abs=0.02)
        # the rise alert reached the receiver once
        assert [m["scene_id"] for m in receiver.received] == ["S1_1"]
        # a second watch processes nothing again
        again = watch_aoi(store, "mid", url, "s1", predictor, tmp_path / "out", tile=64, overlap=16,
                          progress=False)
        assert [o.status for o in again] == ["skipped", "skipped"]
        assert len(store.history("mid")) == 2 and len(receiver.received) == 1
        # --since leaves older items out
        since = watch_aoi(store, "mid", url, "s1", predictor, tmp_path / "out", since="2024-05-05",
                          progress=False)
        assert [o.item_id for o in since] == ["S1_1"]
        with pytest.raises(MonitoringError, match="^collection: "):
            watch_aoi(store, "mid", url, "nope", predictor, tmp_path / "out", progress=False)
        with pytest.raises(MonitoringError, match="cannot read"):
            watch_aoi(store, "mid", f"{base}/missing.json", "s1", predictor, tmp_path / "out", progress=False)


def test_watch_reads_linear_power_items_as_db(tmp_path, predictor):
    """Planetary Computer's RTC items are linear power: watch finds that per item (no value is negative) and maps
    them as the same scenes in dB; told they are dB, they are refused instead of mapped as no water."""
    from floodwatch.errors import MonitoringError

    aoi = mapping(to_wgs84(box(X0 + 960, Y0 - 1600, X0 + 1600, Y0 - 960), UTM))
    flooded = {}
    for kind in ("db", "linear"):
        (tmp_path / kind).mkdir()
        catalog = make_catalog(tmp_path / kind, linear=kind == "linear")
        with Store(tmp_path / f"{kind}.db") as store:
            add_aoi(store, "mid", aoi)
            watch_aoi(store, "mid", str(catalog), "s1", predictor, tmp_path / f"out_{kind}", tile=64, overlap=16,
                      progress=False)
            flooded[kind] = [h["flooded_km2"] for h in store.history("mid")]
        with rasterio.open(tmp_path / f"out_{kind}" / "inputs" / "S1_0.tif") as src:
            assert src.tags()["units"] == "dB" and src.tags()["source_units"] == kind
    assert flooded["db"][1] > 0.01 and flooded["linear"] == pytest.approx(flooded["db"], rel=1e-3)
    with Store(tmp_path / "told_db.db") as store:
        add_aoi(store, "mid", aoi)
        with pytest.raises(MonitoringError, match="units: dB was given, but the pixels of STAC item 'S1_0' look like "
                                                  "linear power"):
            watch_aoi(store, "mid", str(tmp_path / "linear" / "catalog.json"), "s1", predictor, tmp_path / "out_told",
                      units="db", tile=64, overlap=16, progress=False)
        # and dB items told to be linear power (each pixel would become no data, the map empty)
        add_aoi(store, "db_told_linear", aoi)
        with pytest.raises(MonitoringError, match="units: linear was given, but the pixels of STAC item 'S1_0' look "
                                                  "like dB"):
            watch_aoi(store, "db_told_linear", str(tmp_path / "db" / "catalog.json"), "s1", predictor,
                      tmp_path / "out_told2", units="linear", tile=64, overlap=16, progress=False)


def test_refused_item_leaves_no_window_behind(tmp_path, predictor):
    """Linear power told to be dB is refused, and no window read for it (tagged dB, holding linear power) is
    left in inputs/ as if it were a usable scene."""
    from floodwatch.errors import MonitoringError

    catalog = make_catalog(tmp_path, linear=True)
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", mapping(to_wgs84(box(X0 + 960, Y0 - 1600, X0 + 1600, Y0 - 960), UTM)))
        with pytest.raises(MonitoringError, match="look like linear power"):
            watch_aoi(store, "mid", str(catalog), "s1", predictor, tmp_path / "out", units="db", tile=64,
                      overlap=16, progress=False)
        assert not store.is_processed(f"{catalog}#s1", "S1_0", "mid")
    assert list((tmp_path / "out").rglob("*.tif")) == []


def test_watch_counts_permanent_water_apart_and_checks_layers_first(tmp_path, predictor):
    """--water-mask and the terrain options, as `run` takes them (watch had neither: its km² counted rivers)."""
    import json

    from floodwatch.errors import FloodwatchError
    from floodwatch.mapping.terrain import Terrain

    catalog = make_catalog(tmp_path)
    aoi = to_wgs84(box(X0 + 960, Y0 - 1600, X0 + 1600, Y0 - 960), UTM)
    lake = tmp_path / "lake.geojson"  # the whole AOI is a known water body
    lake.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(aoi.buffer(0.01))}]}))
    with Store(tmp_path / "fw.db") as store:
        add_aoi(store, "mid", mapping(aoi))
        with pytest.raises(FloodwatchError, match="none.tif"):  # before any item is read
            watch_aoi(store, "mid", str(catalog), "s1", predictor, tmp_path / "out", tile=64, overlap=16,
                      progress=False, terrain=Terrain(hand=str(tmp_path / "none.tif")))
        assert not (tmp_path / "out" / "inputs").exists()
        out = watch_aoi(store, "mid", str(catalog), "s1", predictor, tmp_path / "out", tile=64, overlap=16,
                        progress=False, water_mask=lake)
        stats = json.loads((out[1].out_dir / "stats.json").read_text())
        assert stats["water_mask"] == str(lake) and stats["permanent_water_km2"] > 0
        assert [h["flooded_km2"] for h in store.history("mid")] == [0.0, 0.0]
