import json
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import box, mapping, shape

from floodwatch.data.synthetic import write_scene
from floodwatch.errors import InvalidArgumentError, MonitoringError
from floodwatch.mapping import map_scene
from floodwatch.monitoring.aoi import add_aoi, record_map_result, record_output_dir
from floodwatch.monitoring.change import detect_change

from monitoring_helpers import UTM, WEST_HALF, scene_pair


@pytest.fixture
def mapped(tmp_path, predictor):
    """Two acquisitions over the same place (less, then more water), mapped by mapping.map_scene."""
    before, after, _ = scene_pair()
    out = {}
    for s in (before, after):
        write_scene(s, tmp_path / f"{s.id}.tif")
        out[s.id] = map_scene(tmp_path / f"{s.id}.tif", predictor, tmp_path / "maps", tile=64, overlap=16,
                              progress=False)
    return out


def test_add_and_list_aois(store, tmp_path):
    f = tmp_path / "aoi.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": WEST_HALF}]}))
    aoi = add_aoi(store, "west", f, threshold_km2=0.1, rise_percent=50, webhooks=["http://127.0.0.1:9/x"])
    assert aoi.area_km2 == pytest.approx(0.48 * 0.96, rel=2e-3)  # UTM scale factor near the meridian
    assert [a.name for a in store.aois()] == ["west"]
    with pytest.raises(MonitoringError, match="already exists"):
        add_aoi(store, "west", f)
    add_aoi(store, "west", f, threshold_km2=1.0, replace=True)
    assert store.get_aoi("west").threshold_km2 == 1.0


@pytest.mark.parametrize("geojson,match", [
    ({"type": "Point", "coordinates": [13.0, 45.0]}, "no polygon"),
    (mapping(box(400000, 5000000, 401000, 5001000)), "not lon/lat"),
    ({"type": "Polygon", "coordinates": "nonsense"}, "not a GeoJSON"),
    # an edge over 180° of longitude: a box across the antimeridian, or a band round the world? refused, not guessed
    ({"type": "Polygon", "coordinates": [[[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]]}, "split it at 180°"),
    (mapping(box(-100, 0, 100, 10)), "spans more than 180° of longitude"),
    ({"type": "Polygon", "coordinates": [[[0, 80], [90, 85], [180, 80], [-90, 85], [0, 80]]]}, "spans more than 180°"),
])
def test_bad_aoi_geometry(store, geojson, match):
    with pytest.raises(MonitoringError, match=match):
        add_aoi(store, "x", geojson)


def test_bad_aoi_fields(store, tmp_path):
    with pytest.raises(MonitoringError, match="AOI name"):
        add_aoi(store, "../etc", WEST_HALF)
    with pytest.raises(MonitoringError, match="^webhooks: "):
        add_aoi(store, "a", WEST_HALF, webhooks=["ftp://x"])
    with pytest.raises(MonitoringError, match="^threshold_km2: "):
        add_aoi(store, "a", WEST_HALF, threshold_km2=-1)
    with pytest.raises(MonitoringError, match="not found"):
        add_aoi(store, "a", tmp_path / "missing.geojson")
    with pytest.raises(MonitoringError, match="not found"):
        store.get_aoi("nobody")


def test_store_refuses_what_is_no_path_or_url(tmp_path, monkeypatch):
    from floodwatch.monitoring.store import Store

    monkeypatch.chdir(tmp_path)  # str() of the dict was a SQLite file "{'path': 'x'}" here
    with pytest.raises(InvalidArgumentError, match="^url_or_path: expected a database file path or URL.*got dict"):
        Store({"path": "x"})
    assert list(tmp_path.iterdir()) == []


def test_aoi_arguments_from_python(store):
    """What a notebook passes: a rule as a string (numpy's TypeError) or bool (1), a name that is not a string
    or has a space (its message starts with the parameter: the CLI shows NAME), a shapely geometry."""
    with pytest.raises(MonitoringError, match=r"^threshold_km2: must be a number >= 0 \(got '5'\)"):
        add_aoi(store, "a", WEST_HALF, threshold_km2="5")
    with pytest.raises(MonitoringError, match="^rise_percent: "):
        add_aoi(store, "a", WEST_HALF, rise_percent=True)
    with pytest.raises(MonitoringError, match="^name: 5 is not an AOI name"):
        add_aoi(store, 5, WEST_HALF)
    with pytest.raises(MonitoringError, match="^name: 'my town' is not an AOI name"):
        add_aoi(store, "my town", WEST_HALF)
    with pytest.raises(InvalidArgumentError, match="^geojson: .*got int"):
        add_aoi(store, "a", 123)
    aoi = add_aoi(store, "a", shape(WEST_HALF), threshold_km2=1)
    assert aoi.area_km2 == pytest.approx(add_aoi(store, "b", WEST_HALF).area_km2) and aoi.threshold_km2 == 1.0


def test_one_webhook_given_as_a_string_is_one_webhook(store):
    # it was read as its characters: "webhooks: 'h' is not an http(s) URL"
    aoi = add_aoi(store, "a", WEST_HALF, threshold_km2=1, webhooks="https://example.org/hook")
    assert aoi.webhooks == ["https://example.org/hook"]


def test_webhooks_without_a_rule_are_stored_with_a_warning(store):
    with pytest.warns(UserWarning, match=r"^webhooks: no rule is set \(`threshold_km2` or `rise_percent`\)"):
        add_aoi(store, "a", WEST_HALF, webhooks=["http://127.0.0.1:9/h"])
    assert store.get_aoi("a").webhooks == ["http://127.0.0.1:9/h"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        add_aoi(store, "b", WEST_HALF, rise_percent=10, webhooks=["http://127.0.0.1:9/h"])


def test_an_unknown_aoi_is_named_with_the_known_ones(store):
    with pytest.raises(MonitoringError, match=r"^AOI 'nobody' not found in .*\(it holds none\)$"):
        store.get_aoi("nobody")
    for name in ("a", "b"):
        add_aoi(store, name, WEST_HALF)
    with pytest.raises(MonitoringError, match=r"^AOI 'nobody' not found in .*\(known: a, b\)$"):
        store.history("nobody")  # a library message names no command (it said "floodwatch aoi list shows ...")


def test_record_clips_to_aoi_on_ellipsoid(store, mapped):
    add_aoi(store, "west", WEST_HALF)
    add_aoi(store, "far", mapping(box(100, 10, 101, 11)))
    after = mapped["after"]
    ids = record_map_result(store, after, acquired="2024-05-02T05:00:00Z", scene_id="S1_after", notify=False)
    assert len(ids) == 1  # 'far' does not intersect
    rec = store.history("west")[0]
    with rasterio.open(after.paths["mask"]) as src:
        m = src.read(1)
    west_flood_px = int((m[:, :48] == 1).sum())
    # flooded km² of the clipped polygons vs pixels counted in the west half (10 m = 1e-4 km² each)
    assert rec["flooded_km2"] == pytest.approx(west_flood_px * 1e-4, rel=0.03)
    assert rec["valid_km2"] == pytest.approx(0.4608, rel=0.01)
    assert rec["coverage"] == pytest.approx(1.0, abs=0.01)
    assert rec["permanent_water_km2"] == pytest.approx(0.0)
    assert store.history("far") == []
    # the clipped polygons stored for the web map lie inside the AOI
    from shapely.geometry import shape
    floods = shape(store.history("west", with_floods=True)[0]["floods"])
    assert shape(WEST_HALF).buffer(1e-7).contains(floods)


def test_history_order_and_rerecord_is_update(store, mapped):
    add_aoi(store, "west", WEST_HALF)
    record_map_result(store, mapped["after"], acquired=datetime(2024, 5, 2, tzinfo=timezone.utc),
                      scene_id="S1_after", notify=False)
    record_map_result(store, mapped["before"], acquired="2024-04-20", scene_id="S1_before", notify=False)
    record_map_result(store, mapped["after"], acquired="2024-05-02T00:00:00", scene_id="S1_after", notify=False)
    hist = store.history("west")
    assert [h["scene_id"] for h in hist] == ["S1_before", "S1_after"]
    assert hist[0]["acquired"] == "2024-04-20T00:00:00Z"
    assert hist[1]["flooded_km2"] > hist[0]["flooded_km2"]


def test_permanent_water_inside_aoi(store, tmp_path, predictor):
    before, after, _ = scene_pair()
    write_scene(after, tmp_path / "after.tif")
    ref = tmp_path / "water.tif"
    with rasterio.open(ref, "w", driver="GTiff", width=96, height=96, count=1, dtype="uint8",
                       crs=UTM, transform=after.georef.affine()) as dst:
        dst.write((before.mask == 1).astype(np.uint8)[None])
    res = map_scene(tmp_path / "after.tif", predictor, tmp_path / "maps", tile=64, overlap=16, water_mask=ref,
                    progress=False)
    add_aoi(store, "west", WEST_HALF)
    record_map_result(store, res, acquired="2024-05-02", scene_id="a", notify=False)
    with rasterio.open(res.paths["mask"]) as src:
        m = src.read(1)
    rec = store.history("west")[0]
    assert rec["permanent_water_km2"] == pytest.approx((m[:, :48] == 2).sum() * 1e-4, rel=0.03)
    assert rec["permanent_water_km2"] > 0


def test_record_change_output_folder(store, tmp_path, pair, predictor):
    before, after, truth = pair
    res = detect_change(before, after, predictor, tmp_path / "chg", tile=64)
    add_aoi(store, "west", WEST_HALF)
    record_output_dir(store, tmp_path / "chg", acquired="2024-05-02", scene_id="chg1", notify=False)
    rec = store.history("west", kind="change")[0]
    assert rec["flooded_km2"] == pytest.approx(res.new_water[:, :48].sum() * 1e-4, rel=0.03)
    with pytest.raises(MonitoringError, match="stats.json"):
        record_output_dir(store, tmp_path, acquired="2024-05-02")


def test_check_recordable_meets_only_the_aois_the_scene_overlaps(store):
    """A scene id recorded under another time conflicts in the AOIs the new footprint overlaps, not elsewhere
    (scene ids such as 'scene' or a date repeat across places)."""
    from floodwatch.monitoring.aoi import check_recordable

    add_aoi(store, "here", mapping(box(13.0, 45.0, 13.1, 45.1)))
    add_aoi(store, "far", mapping(box(90.0, 23.0, 90.1, 23.1)))
    store.add_record(aoi="far", acquired="2024-05-01T00:00:00Z", scene_id="scene", kind="map", flooded_km2=1.0,
                     permanent_water_km2=None, valid_km2=None, coverage=None,
                     floods={"type": "MultiPolygon", "coordinates": []}, paths={})
    here = box(13.02, 45.02, 13.2, 45.2)  # overlaps 'here' only
    check_recordable(store, "scene", "2024-06-01", footprint=here)
    check_recordable(store, "scene", "2024-05-01", footprint=box(89.0, 22.0, 91.0, 24.0))  # same time: no conflict
    with pytest.raises(MonitoringError, match="AOI 'far': map 'scene' is already recorded as acquired 2024-05-01"):
        check_recordable(store, "scene", "2024-06-01", footprint=box(89.0, 22.0, 91.0, 24.0))
    with pytest.raises(MonitoringError, match="AOI 'far'"):
        check_recordable(store, "scene", "2024-06-01")  # no footprint: every AOI
    check_recordable(store, "scene", "2024-06-01", kind="change", footprint=box(89.0, 22.0, 91.0, 24.0))


def test_check_recordable_at_reads_scenes_only_where_a_database_exists(tmp_path):
    """map and change check a database path: none there means nothing recorded to meet (and no scene header is
    read); one holding the scene under another time refuses it."""
    from floodwatch.monitoring.aoi import check_recordable_at
    from floodwatch.monitoring.store import Store

    def scenes():
        raise AssertionError("read without a database")
        yield

    check_recordable_at(str(tmp_path / "none.db"), scenes(), "2024-06-01")
    assert not (tmp_path / "none.db").exists()
    db = str(tmp_path / "fw.db")
    with Store(db) as s:
        add_aoi(s, "far", mapping(box(90.0, 23.0, 90.1, 23.1)))
        s.add_record(aoi="far", acquired="2024-05-01T00:00:00Z", scene_id="scene", kind="map", flooded_km2=1.0,
                     permanent_water_km2=None, valid_km2=None, coverage=None,
                     floods={"type": "MultiPolygon", "coordinates": []}, paths={})
    check_recordable_at(db, [("scene", box(89.0, 22.0, 91.0, 24.0))], "2024-05-01")
    check_recordable_at(db, [("scene", box(89.0, 22.0, 91.0, 24.0))], "2024-06-01", kind="change")
    with pytest.raises(MonitoringError, match="AOI 'far': map 'scene' is already recorded"):
        check_recordable_at(db, [("other", box(13.0, 45.0, 13.1, 45.1)), ("scene", box(89.0, 22.0, 91.0, 24.0))],
                            "2024-06-01")


def _class_raster(path, crs, bounds, size=50):
    """A georeferenced mask: every pixel flood (code 1)."""
    from rasterio.transform import from_bounds

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs=crs,
                       transform=from_bounds(*bounds, size, size), nodata=255) as dst:
        dst.write(np.ones((1, size, size), np.uint8))
    return {"stats": {}, "paths": {"flood_mask": path}}


def test_run_bbox_wider_than_180_degrees_keeps_its_meaning(tmp_path):
    """`run --bbox W,S,E,N` says which way round (W < E): a box 200° wide is stored as that box, not the 160°
    band its flat four corners would be across the antimeridian, and met again on the next run."""
    from floodwatch.acquisition.fetch import parse_bbox
    from floodwatch.monitoring.run import ensure_aoi
    from floodwatch.monitoring.store import Store

    with Store(str(tmp_path / "fw.db")) as s:
        first = ensure_aoi(s, "wide", parse_bbox("-100,0,100,10"))
        again = ensure_aoi(s, "wide", parse_bbox("-100,0,100,10"))
    assert first.equals(again) and first.bounds == (-100.0, 0.0, 100.0, 10.0) and first.area == pytest.approx(2000)


def test_aoi_across_the_antimeridian_is_split_and_recorded_where_it_is(store, tmp_path):
    """RFC 7946 §3.1.9: an outline crossing 180° is given in two parts; scenes there are placed and measured
    split too (their footprints and floods are dense, so an edge over 180° can only be the crossing), so a
    scene at 179.5°E goes to it and one at 10°E does not."""
    import shapely
    from shapely.geometry import shape

    from floodwatch.monitoring.geo import feature_collection, geodesic_area_km2, to_wgs84

    anti = add_aoi(store, "anti", mapping(box(179, 0, 180, 1).union(box(-180, 0, -179, 1))))
    add_aoi(store, "ten", mapping(box(9.5, 0, 10.5, 1)))
    geom = shape(store.get_aoi("anti").geometry)
    assert geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2
    assert anti.area_km2 == pytest.approx(2 * geodesic_area_km2(box(179, 0, 180, 1)))  # ~24,618 km²
    # lon/lat masks at 10°E and at 179.5°E go to the AOI they lie in
    east = _class_raster(tmp_path / "east.tif", "EPSG:4326", (179.3, 0.3, 179.7, 0.7))
    assert len(record_map_result(store, east, acquired="2024-05-01", scene_id="east", notify=False)) == 1
    ten = _class_raster(tmp_path / "ten.tif", "EPSG:4326", (9.8, 0.3, 10.2, 0.7))
    assert len(record_map_result(store, ten, acquired="2024-05-01", scene_id="ten", notify=False)) == 1
    assert [h["scene_id"] for h in store.history("anti")] == ["east"]
    assert [h["scene_id"] for h in store.history("ten")] == ["ten"]
    assert store.history("anti")[0]["flooded_km2"] == pytest.approx(0.16 * 111.32 ** 2, rel=0.01)
    # a UTM scene (zone 60) across 180°: its footprint and flood are split as well, and measured in both halves
    cross = _class_raster(tmp_path / "cross.tif", "EPSG:32660", (800000, 0, 870000, 50000))
    flood = to_wgs84(shapely.segmentize(box(800000, 10000, 870000, 40000), 1000), "EPSG:32660")
    assert flood.bounds[2] - flood.bounds[0] > 359  # as map writes it: whole, across 180°
    (tmp_path / "cross.geojson").write_text(json.dumps(feature_collection(flood)))
    cross["paths"]["flood_polygons"] = tmp_path / "cross.geojson"
    assert record_map_result(store, cross, acquired="2024-05-02", scene_id="cross", notify=False)
    assert [h["scene_id"] for h in store.history("ten")] == ["ten"]
    rec = store.history("anti")[-1]
    assert rec["scene_id"] == "cross"
    assert rec["flooded_km2"] == pytest.approx(2100, rel=0.01) and rec["valid_km2"] == pytest.approx(3500, rel=0.01)
    floods = shape(store.history("anti", with_floods=True)[-1]["floods"])
    assert floods.bounds[0] == pytest.approx(-180) and floods.bounds[2] == pytest.approx(180)
    assert geom.buffer(1e-7).contains(floods)


def test_unplaced_change_output_is_refused_without_a_warning(store, tmp_path):
    """A change of two pictures has no georeference: `aoi record` says so in one line, no rasterio warning
    before it."""
    import warnings

    from PIL import Image
    from rasterio.errors import NotGeoreferencedWarning

    for name, level in (("b.png", 90), ("a.png", 40)):
        Image.fromarray(np.full((32, 32), level, np.uint8)).save(tmp_path / name)
    detect_change(tmp_path / "b.png", tmp_path / "a.png", None, tmp_path / "chg", method="logratio")
    add_aoi(store, "west", WEST_HALF)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        with pytest.raises(MonitoringError, match="not georeferenced"):
            record_output_dir(store, tmp_path / "chg", acquired="2024-05-09", notify=False)


def test_a_folder_recorded_by_a_relative_path_is_stored_absolute(store, tmp_path, pair, predictor, monkeypatch):
    """The web map and later commands run from other folders: a record's files must not hang on the folder
    `aoi record` ran in."""
    before, after, _ = pair
    detect_change(before, after, predictor, tmp_path / "chg", tile=64)
    add_aoi(store, "west", WEST_HALF)
    monkeypatch.chdir(tmp_path)
    record_output_dir(store, "chg", acquired="2024-05-02", scene_id="chg1", notify=False)
    monkeypatch.chdir(tmp_path.parent)
    paths = store.history("west", kind="change")[0]["paths"]
    assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths.values()), paths
    assert Path(paths["change_mask"]) == (tmp_path / "chg" / "change_mask.tif").resolve()


@pytest.mark.parametrize("when, text", [
    (datetime(999, 1, 2, 3, 4, 5), "0999-01-02T03:04:05Z"),
    (datetime(2024, 5, 2, 12, 0, tzinfo=timezone.utc), "2024-05-02T12:00:00Z"),
    ("0050-07-01T00:00:00+02:00", "0050-06-30T22:00:00Z"),
])
def test_utc_iso_pads_the_year_so_text_order_is_time_order(when, text):
    from floodwatch.monitoring.store import utc_iso

    assert utc_iso(when) == text
