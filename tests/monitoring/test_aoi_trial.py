"""An analyst's AOIs and alerts, from a user trial: outlines as drawing tools and GIS export them, areas
checked against pyproj.Geod, alerts once per crossing, webhook failures that say what happened, and a
history a spreadsheet can read."""
from __future__ import annotations

import csv
import io
import json
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod, Transformer
from rasterio.transform import from_origin
from rich.console import Console
from shapely.geometry import box, mapping, shape

from floodwatch.errors import MonitoringError
from floodwatch.monitoring.alerts import check_alerts, retry_undelivered
from floodwatch.monitoring.aoi import add_aoi, record_output_dir
from floodwatch.monitoring.store import Store

from monitoring_helpers import ORIGIN, UTM, serving, utm_box_ll

GEOD = Geod(ellps="WGS84")
EMPTY = {"type": "MultiPolygon", "coordinates": []}
LL_BOX = box(13.0, 45.0, 13.1, 45.1)


def _geod_km2(geom, step=0.01):
    """The independent measure: pyproj.Geod on the outline with its lon/lat edges divided finely."""
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(geom, step))[0]) / 1e6


def _quiet():
    return Console(file=io.StringIO())


# -- outlines ------------------------------------------------------------------------------------------
def test_a_projected_outline_with_a_crs_member_is_reprojected(store, tmp_path):
    # QGIS/GDAL export a layer in UTM with the old "crs" member; read as degrees it was refused (UTM) or,
    # near 0,0 in web mercator, stored as an area of millions of km²
    tr = Transformer.from_crs(4326, UTM, always_xy=True)
    ring = [list(tr.transform(x, y)) for x, y in LL_BOX.exterior.coords]
    f = tmp_path / "utm.geojson"
    urn = f"urn:ogc:def:crs:{UTM.replace(':', '::')}"  # as GDAL writes it
    f.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": urn}},
                             "features": [{"type": "Feature", "properties": {},
                                           "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    aoi = add_aoi(store, "utm", f)
    assert aoi.area_km2 == pytest.approx(_geod_km2(LL_BOX), rel=1e-3)
    assert shape(aoi.geometry).buffer(1e-3).contains(LL_BOX.buffer(-1e-3))
    mercator = {"type": "Polygon", "coordinates": [[[10, 10], [120, 10], [120, 90], [10, 90], [10, 10]]],
                "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}}
    assert add_aoi(store, "m", mercator).area_km2 == pytest.approx(110 * 80 / 1e6, rel=1e-2)


@pytest.mark.parametrize("crs,match", [
    ({"type": "name", "properties": {"name": "EPSG:99999"}}, r"crs: 'EPSG:99999' is not a coordinate reference"),
    ([1], r"crs: expected"),
])
def test_an_unusable_crs_member_is_named(store, crs, match):
    with pytest.raises(MonitoringError, match=match):
        add_aoi(store, "x", {**mapping(LL_BOX), "crs": crs})


def test_a_lonlat_crs_member_changes_nothing(store):
    plain = add_aoi(store, "plain", mapping(LL_BOX))
    named = add_aoi(store, "named", {**mapping(LL_BOX), "crs": {
        "type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}})
    assert named.area_km2 == plain.area_km2 and named.geometry == plain.geometry


def test_a_continent_sized_aoi_is_measured_with_its_drawn_edges(store):
    # GeoJSON edges are straight in lon/lat (RFC 7946 §3.1.1), as the AOI is matched; a geodesic between the
    # corners of a 180°-wide box goes over the pole: 255 million km² instead of 233
    huge = box(-120, -60, 60, 75)
    assert add_aoi(store, "huge", mapping(huge)).area_km2 == pytest.approx(_geod_km2(huge), rel=1e-5)
    high = box(10, 60, 20, 70)
    assert add_aoi(store, "high", mapping(high)).area_km2 == pytest.approx(_geod_km2(high), rel=1e-5)


def test_an_outline_drawn_across_the_antimeridian_past_180_is_wrapped(store):
    # geojson.io / Leaflet give 179..181; the same area as the RFC 7946 split outline, matched on both sides
    drawn = add_aoi(store, "drawn", {"type": "Polygon", "coordinates": [
        [[179, -17], [181, -17], [181, -16], [179, -16], [179, -17]]]})
    split = add_aoi(store, "split", {"type": "MultiPolygon", "coordinates": [
        [[[179, -17], [180, -17], [180, -16], [179, -16], [179, -17]]],
        [[[-180, -17], [-179, -17], [-179, -16], [-180, -16], [-180, -17]]]]})
    geom = shape(drawn.geometry)
    assert drawn.area_km2 == pytest.approx(split.area_km2, rel=1e-9)
    assert geom.bounds[0] >= -180 and geom.bounds[2] <= 180 and geom.intersects(box(-179.6, -16.6, -179.4, -16.4))
    with pytest.raises(MonitoringError, match=r"not lon/lat degrees.*'crs' member"):
        add_aoi(store, "utm", mapping(box(400000, 5000000, 401000, 5001000)))


def test_polygon_hole_and_feature_collection_areas(store):
    outer, hole = box(13.0, 45.0, 13.1, 45.1), box(13.04, 45.04, 13.06, 45.06)
    ring = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords[::-1]])
    assert add_aoi(store, "ring", mapping(ring)).area_km2 == pytest.approx(
        _geod_km2(outer) - _geod_km2(hole), rel=1e-6)
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(13.0, 45.0, 13.05, 45.1))},
        {"type": "Feature", "properties": {}, "geometry": mapping(box(13.07, 45.0, 13.1, 45.1))},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [13.06, 45.05]}}]}
    assert add_aoi(store, "fc", fc).area_km2 == pytest.approx(
        _geod_km2(box(13.0, 45.0, 13.05, 45.1)) + _geod_km2(box(13.07, 45.0, 13.1, 45.1)), rel=1e-6)


# -- recording -----------------------------------------------------------------------------------------
def _mask_folder(folder, corrupt_second_tile=False):
    """A map output folder: a 64x128 class mask of two 64-px tiles (west, east), flood in both."""
    folder.mkdir()
    data = np.zeros((64, 128), np.uint8)
    data[10:30, 10:30] = 1
    data[10:30, 80:100] = 1
    path = folder / "flood_mask.tif"
    with rasterio.open(path, "w", driver="GTiff", width=128, height=64, count=1, dtype="uint8", nodata=255,
                       crs=UTM, transform=from_origin(ORIGIN[0], ORIGIN[1], 10, 10), tiled=True,
                       blockxsize=64, blockysize=64, compress="deflate") as dst:
        dst.write(data, 1)
    if corrupt_second_tile:
        with rasterio.open(path) as src:
            offset = int(src.get_tag_item("BLOCK_OFFSET_1_0", "TIFF", bidx=1))
        raw = bytearray(path.read_bytes())
        raw[offset:offset + 40] = b"\xff" * 40
        path.write_bytes(bytes(raw))
    (folder / "stats.json").write_text("{}")
    return folder


def _halves(store):
    add_aoi(store, "west", utm_box_ll(ORIGIN[0], ORIGIN[1] - 640, ORIGIN[0] + 630, ORIGIN[1]))
    add_aoi(store, "east", utm_box_ll(ORIGIN[0] + 650, ORIGIN[1] - 640, ORIGIN[0] + 1280, ORIGIN[1]))


def test_a_mask_unreadable_in_one_aoi_records_none_and_names_the_file(store, tmp_path):
    _halves(store)
    good = record_output_dir(store, _mask_folder(tmp_path / "good"), acquired="2024-05-01", notify=False)
    assert len(good) == 2
    bad = _mask_folder(tmp_path / "bad", corrupt_second_tile=True)
    with pytest.raises(MonitoringError, match=r"flood_mask\.tif: cannot read the class mask"):
        record_output_dir(store, bad, acquired="2024-05-13", notify=False)
    # west (the readable tile) was measured first: it is not recorded alone
    assert [r["scene_id"] for r in store.history("west")] == ["good"]
    assert [r["scene_id"] for r in store.history("east")] == ["good"]


@pytest.mark.parametrize("stats,match", [
    ("[1, 2]", r"stats\.json: expected a JSON object.*got a JSON list"),
    ('{"paths": ["a.tif"]}', r"stats\.json: 'paths' must be an object of file names"),
    ('{"paths": {"flood_mask": 5}}', r"stats\.json: 'paths' must be an object of file names"),
])
def test_a_stats_file_of_the_wrong_shape_is_one_line(store, tmp_path, stats, match):
    _halves(store)
    folder = _mask_folder(tmp_path / "run")
    (folder / "stats.json").write_text(stats)
    with pytest.raises(MonitoringError, match=match):
        record_output_dir(store, folder, acquired="2024-05-01", notify=False)
    assert store.history("west") == []


# -- alerts --------------------------------------------------------------------------------------------
def _record(store, day, km2, aoi="a"):
    return store.add_record(aoi=aoi, acquired=f"2024-05-{day:02d}", scene_id=f"s{day}", kind="map",
                            flooded_km2=km2, permanent_water_km2=0, valid_km2=10, coverage=1, floods=EMPTY,
                            paths={})


def test_a_threshold_alerts_once_per_crossing(store):
    add_aoi(store, "a", mapping(LL_BOX), threshold_km2=5.0)
    fired = []
    for day, km2 in ((1, 4.0), (2, 6.0), (3, 7.0), (4, 9.0), (5, 3.0), (6, 5.0), (7, 8.0)):
        fired += [day] * len(check_alerts(store, _record(store, day, km2), console=_quiet()))
    assert fired == [2, 7]  # up through 5 km² on the 2nd, down on the 5th, up again on the 7th
    # the first acquisition ever above it is a crossing too
    add_aoi(store, "b", mapping(LL_BOX), threshold_km2=5.0)
    assert len(check_alerts(store, _record(store, 1, 6.0, aoi="b"), console=_quiet())) == 1


class _Redirect(BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(302)
        self.send_header("Location", "/elsewhere/OTHERSECRET")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirecting_webhook_is_said_to_redirect(store):
    _Redirect.hits = 0
    with serving(_Redirect) as base:
        hooks = [base + "/first/SECRET1", base + "/moved/SECRET2"]
        add_aoi(store, "a", mapping(LL_BOX), threshold_km2=1.0, webhooks=hooks)
        out = io.StringIO()
        check_alerts(store, _record(store, 1, 3.0), backoff_s=0,
                     console=Console(file=out, width=300, color_system=None))
        printed = out.getvalue()
        assert _Redirect.hits == 2  # a redirect is final, as a 4xx is: no retries
        assert f"webhook #2 of 2 ({base}/…) failed after 1 attempt: HTTP 302 redirect to {base}/…" in printed
        assert "not redirected" in printed and "SECRET" not in printed
        out = io.StringIO()
        assert retry_undelivered(store, backoff_s=0, console=Console(file=out, width=300, color_system=None)) == \
            {"delivered": 0, "failed": 2}
        lines = out.getvalue().splitlines()
        assert len(lines) == 2 and all(line.startswith("alert 1 (a, threshold, 2024-05-01T00:00:00Z): webhook #")
                                       for line in lines)
        assert "still failing after 2 attempts in all: HTTP 302" in lines[0] and "SECRET" not in out.getvalue()


# -- history ---------------------------------------------------------------------------------------------
def test_history_csv_and_chart_from_the_cli(run_cli, tmp_path):
    db = tmp_path / "fw.db"
    with Store(db) as store:
        add_aoi(store, "a", mapping(LL_BOX), threshold_km2=5.0)
        for day, km2 in ((13, 6.5), (1, 2.0), (7, 0.004)):  # recorded out of order
            _record(store, day, km2)
    res = run_cli("aoi", "history", "a", "--csv", tmp_path / "a.csv", "--png", tmp_path / "a.png", "--db", db)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["acquired"] for r in rows] == ["2024-05-01T00:00:00Z", "2024-05-07T00:00:00Z", "2024-05-13T00:00:00Z"]
    assert [float(r["flooded_km2"]) for r in rows] == [2.0, 0.004, 6.5] and rows[0]["record_id"]
    assert "0.004" in res.stdout  # not rounded to 0.000
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run_cli("aoi", "history", "a", "--csv", tmp_path / "a.txt", "--db", db)
    assert bad.returncode != 0 and "--csv" in bad.stderr and not (tmp_path / "a.txt").exists()


def test_a_tiny_aoi_is_not_shown_as_zero_km2(run_cli, tmp_path):
    f = tmp_path / "tiny.geojson"
    f.write_text(json.dumps(mapping(box(13.0, 45.0, 13.00005, 45.00005))))
    res = run_cli("aoi", "add", "tiny", "--geojson", f, "--db", tmp_path / "fw.db")
    assert res.returncode == 0 and "0.000 km²" not in res.stdout and "2.2e-05 km²" in res.stdout
