"""What a catalog answers besides items: Retry-After longer than floodwatch waits, pages that are not JSON,
gateway error pages, servers that never answer (the search and the COG reads), and GRD assets whose header
says they are digital numbers in radar geometry (Planetary Computer's sentinel-1-grd metadata does not say so).
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from shapely.geometry import box, shape

import s1_items
from floodwatch.acquisition import Retries, fetch, resolve_source, search_api
from floodwatch.acquisition.read import GDAL_HTTP_ENV, read_item
from floodwatch.acquisition.signing import planetary_computer_signer
from floodwatch.errors import AcquisitionError, MonitoringError, RateLimitError, UnitsError
from monitoring_helpers import serving

FAST = Retries(attempts=1, backoff_s=0.01)
AOI = box(15.0, 44.0, 15.02, 44.02)


def _catalog(search):
    """A STAC API whose landing page and collection are fine and whose /search answers
    search() -> (status, content type, body bytes, extra headers)."""
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code, ctype, body, headers=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _route(self):
            u = f"http://127.0.0.1:{self.server.server_address[1]}"
            path = self.path.split("?")[0].rstrip("/") or "/"
            if path == "/search":
                return self._send(*search())
            doc = {"type": "Catalog", "stac_version": "1.0.0", "id": "t", "description": "t",
                   "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                  "https://api.stacspec.org/v1.0.0/item-search",
                                  "https://api.stacspec.org/v1.0.0/collections"],
                   "links": [{"rel": "self", "href": u + "/"}, {"rel": "root", "href": u + "/"},
                             {"rel": "data", "href": u + "/collections", "type": "application/json"},
                             {"rel": "search", "href": u + "/search", "type": "application/geo+json",
                              "method": "POST"}]}
            if path.startswith("/collections/"):
                doc = s1_items.rtc_collection(False)
            self._send(200, "application/json", json.dumps(doc).encode())

        def do_GET(self):
            self._route()

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._route()

        def log_message(self, *args):
            pass

    return serving(Handler)


@pytest.mark.parametrize("retry_after,said", [("120", "wait 120 s"),
                                              ("Wed, 21 Oct 2099 07:28:00 GMT", "wait until Wed, 21 Oct 2099")])
def test_retry_after_longer_than_floodwatch_waits_is_said_at_once(retry_after, said):
    asked = []

    def search():
        asked.append(1)
        return 429, "application/json", b'{"code": "TooManyRequests"}', [("Retry-After", retry_after)]

    with _catalog(search) as url:
        with pytest.raises(RateLimitError, match=f"HTTP 429.*asks to {said}.*longer than floodwatch waits "
                                                 r"\(60 s\)"):
            search_api(url, "sentinel-1-rtc", AOI, retries=Retries(attempts=3, backoff_s=0.01))
    assert len(asked) == 1  # no retry: it would only sleep through the wait asked for


@pytest.mark.parametrize("ctype,body,said", [
    ("text/html", b"<html><body>Down for maintenance</body></html>",
     r"/search answered with something that is not JSON \(Content-Type text/html: '<html><body>Down for"),
    ("application/geo+json", b'{"type": "FeatureCollection", "features": [', r"/search answered with invalid JSON"),
    ("application/json", b"[]", r"/search answered with a JSON list, not a STAC object"),
])
def test_answers_that_are_not_stac_json_are_named(ctype, body, said):
    with _catalog(lambda: (200, ctype, body, ())) as url:
        with pytest.raises(AcquisitionError, match=f"^{url}: search failed: {url}{said}"):
            search_api(url, "sentinel-1-rtc", AOI, retries=FAST)


def test_gateway_error_page_is_its_text_and_status():
    page = b"<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1></body></html>"
    with _catalog(lambda: (502, "text/html", page, ())) as url:
        with pytest.raises(AcquisitionError, match=r"search failed \(HTTP 502 after 1 retries: 502 Bad Gateway "
                                                   r"502 Bad Gateway\)$"):
            search_api(url, "sentinel-1-rtc", AOI, retries=FAST)


@contextlib.contextmanager
def _silent_server(hold_s: float = 20.0):
    """A port that accepts connections and never answers; everything is closed after hold_s (so a client
    without a timeout fails then, with another error, instead of hanging the test run)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held, done = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    timer = threading.Timer(hold_s, done.set)
    timer.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        done.set()
        timer.cancel()
        t.join()
        for c in held:
            c.close()
        srv.close()


def test_search_on_a_server_that_never_answers_times_out():
    with _silent_server() as url:
        with pytest.raises(AcquisitionError, match=r"search failed \(no answer within 1 s\)$"):
            search_api(url, "sentinel-1-rtc", AOI, retries=Retries(attempts=1, timeout_s=1))


def test_cog_read_from_a_stalled_server_fails(monkeypatch):
    # GDAL's own default is no timeout at all; a minute without a byte is an error
    assert int(GDAL_HTTP_ENV["GDAL_HTTP_LOW_SPEED_TIME"]) > 0 and int(GDAL_HTTP_ENV["GDAL_HTTP_LOW_SPEED_LIMIT"]) > 0
    monkeypatch.setitem(GDAL_HTTP_ENV, "GDAL_HTTP_LOW_SPEED_TIME", "1")
    with _silent_server() as url:
        item = _pystac_item(s1_items.rtc_item("S1A_STALLED_rtc", datetime(2024, 4, 19, tzinfo=timezone.utc), 32633,
                                              (400000, 4990000, 410000, 5000000), url))
        grid = _grid_of(item)
        with pytest.raises(AcquisitionError, match=r"STAC item 'S1A_STALLED_rtc': cannot read vv .*too slow"):
            read_item(item, grid, lambda h: h)


def _pystac_item(d: dict):
    import pystac

    return pystac.Item.from_dict(d)


def _grid_of(item):
    from rasterio.transform import from_origin

    from floodwatch.acquisition.read import grid_for

    return grid_for(shape(item.geometry), "EPSG:32633", from_origin(400000, 5000000, 10, 10))


# -- GRD: the header says what the metadata may not ---------------------------------------------------------
def write_grd(path: Path, footprint, dtype: str = "uint16") -> None:
    """A GRD measurement as ESA ships it: digital numbers on the radar grid, located by ground control points
    (no map projection)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lon0, lat0, lon1, lat1 = footprint.bounds
    h = w = 256
    gcps = [GroundControlPoint(r, c, lon0 + (lon1 - lon0) * c / w, lat1 - (lat1 - lat0) * r / h)
            for r in (0, h) for c in (0, w)]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype=dtype, tiled=True,
                       blockxsize=128, blockysize=128, gcps=gcps, crs="EPSG:4326") as dst:
        dst.write(np.random.default_rng(0).integers(50, 600, (1, h, w)).astype(dtype))


def _grd_item(item_id: str, files: str, root: Path, dtype: str = "uint16") -> dict:
    """A generated RTC-shaped item turned GRD as Planetary Computer's sentinel-1-grd serves them: assets vv/vh
    without raster:bands (so no data type in the metadata), COGs in radar geometry."""
    item = s1_items.rtc_item(item_id, datetime(2025, 3, 12, 5, 22, tzinfo=timezone.utc), 32633,
                             (400000, 4990000, 410000, 5000000), files)
    item["collection"] = "sentinel-1-grd"
    for b in ("vv", "vh"):
        item["assets"][b].pop("raster:bands")
        write_grd(root / item["assets"][b]["href"].split("/", 3)[3], shape(item["geometry"]), dtype)
    return item


def _grd_collection() -> dict:
    coll = s1_items.rtc_collection(False)
    coll.update(id="sentinel-1-grd", item_assets={})
    for k in ("msft:storage_account", "msft:container"):
        coll.pop(k)
    return coll


def test_grd_digital_numbers_in_radar_geometry_refused_from_the_header(tmp_path, stac_api, file_server):
    files = file_server(tmp_path / "blobs")
    item = _grd_item("S1A_IW_GRDH_1SDV_20250312T052236_20250312T052301_058267_073394", files, tmp_path / "blobs")
    api = stac_api([_grd_collection()], [item])
    aoi = shape(item["geometry"]).centroid.buffer(0.01)
    with pytest.raises(UnitsError, match=f"^STAC item '{item['id']}': asset 'vv' holds uint16 digital numbers in "
                                         r"radar geometry \(ground control points, no map projection\): a GRD that "
                                         "is neither calibrated nor terrain-corrected; use `source` pc-rtc"):
        fetch(aoi, "2025-03-12", "2025-03-12", tmp_path / "out", source=resolve_source(api.url,
              collection="sentinel-1-grd"), progress=False, retries=FAST)
    assert not (tmp_path / "out" / "2025-03-12").exists()


def test_watch_window_of_a_radar_geometry_asset_is_a_one_line_error(tmp_path, file_server):
    from floodwatch.monitoring.stac import read_aoi_window

    files = file_server(tmp_path / "blobs")
    item = _pystac_item(_grd_item("S1A_GRD_float", files, tmp_path / "blobs", dtype="float32"))
    with pytest.raises(MonitoringError, match=r"^STAC item 'S1A_GRD_float': asset 'vv' holds radar geometry "
                                              r"\(ground control points, no map projection\): a GRD that is not "
                                              "terrain-corrected;"):
        read_aoi_window(item, shape(item.geometry).centroid.buffer(0.01), tmp_path / "w.tif")
    assert not (tmp_path / "w.tif").exists()


def test_another_collection_of_a_registered_source_has_its_units_found():
    assert resolve_source("pc-rtc").units == "linear"
    assert resolve_source("pc-rtc", collection="sentinel-1-rtc").units == "linear"
    # sentinel-1-grd through the pc-rtc source: its pixels are not the linear power of sentinel-1-rtc
    assert resolve_source("pc-rtc", collection="sentinel-1-grd").units == "auto"
    assert resolve_source("pc-grd", collection="sentinel-1-rtc").units == "auto"
    assert resolve_source("pc-rtc", collection="sentinel-1-grd", units="db").units == "db"


def test_recorded_pc_grd_through_pc_rtc_source_refused(shared_data, tmp_path, stac_api, file_server, monkeypatch):
    """The real PC sentinel-1-grd item and collection (no data type in either), asked for through `pc-rtc` with
    its collection replaced: refused from the COG header, not read as linear power."""
    pc = shared_data / "stac" / "planetary-computer"
    if not pc.is_dir():
        pytest.skip(f"recorded STAC documents not found at {pc}")
    item = json.loads((pc / "item_sentinel-1-grd_S1A_IW_GRDH_1SDV_20250312T052236_20250312T052301_058267_"
                             "073394.json").read_text())
    coll = json.loads((pc / "collection_sentinel-1-grd.json").read_text())
    assert "raster:bands" not in item["assets"]["vv"] and "terrain correction" in item["assets"]["vv"]["description"]
    files = file_server(tmp_path / "blobs", require_query="sig=")
    for b in ("vv", "vh"):
        rel = item["assets"][b]["href"].split("/", 3)[3]
        write_grd(tmp_path / "blobs" / rel, shape(item["geometry"]))
        item["assets"][b]["href"] = f"{files}/{rel}"
    api = stac_api([coll], [item])
    api.routes["/api/sas/v1/token/"] = lambda *a: (200, {"msft:expiry": "2099-01-01T00:00:00Z",
                                                         "token": "se=2099-01-01&sp=rl&sig=X"})
    monkeypatch.setenv("PC_SDK_SAS_URL", f"{api.url}/api/sas/v1/token")
    import planetary_computer.sas

    monkeypatch.setattr(planetary_computer.sas, "TOKEN_CACHE", {})
    aoi = shape(item["geometry"]).centroid.buffer(0.02)
    with pytest.raises(UnitsError, match=f"^STAC item '{item['id']}': asset 'vv' holds uint16 digital numbers"):
        fetch(aoi, "2025-03-12", "2025-03-12", tmp_path / "out", progress=False, retries=FAST,
              source=resolve_source("pc-rtc", url=api.url, collection="sentinel-1-grd"))


def test_signer_leaves_an_href_signed_already(monkeypatch):
    """A mirror or a saved search may hand out signed hrefs: a second token is not asked for (here the token
    endpoint is a dead port, and the collection needs an account no key is set for)."""
    from tests.ports import free_port

    monkeypatch.setenv("PC_SDK_SAS_URL", f"http://127.0.0.1:{free_port()}/api/sas/v1/token")
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY", raising=False)
    import planetary_computer.sas

    monkeypatch.setattr(planetary_computer.sas, "TOKEN_CACHE", {})
    sign = planetary_computer_signer(s1_items.rtc_collection(True), label="t", retries=FAST)
    href = (f"https://{s1_items.ACCOUNT}.blob.core.windows.net/{s1_items.CONTAINER}/a/iw-vv.rtc.tiff"
            "?st=2024-01-01&se=2099-01-01&sp=rl&sv=2021-06-08&sr=c&sig=abc")
    assert sign(href) == href


def test_the_search_interval_holds_the_whole_last_second():
    """A day's end (23:59:59.999999) was sent as 23:59:59Z: an item at 23:59:59.5 was left out by the server."""
    from datetime import datetime, timedelta, timezone

    from floodwatch.acquisition.fetch import day_range
    from floodwatch.acquisition.search import search_interval

    since, until = day_range("2024-05-01", "2024-05-02")
    assert search_interval(since, until) == "2024-05-01T00:00:00Z/2024-05-03T00:00:00Z"
    exact = datetime(2024, 5, 2, 12, 0, 0, tzinfo=timezone.utc)
    assert search_interval(None, exact) == "../2024-05-02T12:00:00Z"
    assert search_interval(exact - timedelta(days=1), None) == "2024-05-01T12:00:00Z/.."
    assert search_interval(None, None) is None
