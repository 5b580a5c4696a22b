"""The web map as HTTP clients other than the page meet it: HEAD, revalidation through proxies, the token
header, times and offsets far out of range, files that were deleted or broken after recording, and a
database kept inside the served outputs folder (no browser)."""
import shutil

import pytest
from fastapi.testclient import TestClient

from floodwatch.monitoring.store import Store
from floodwatch.monitoring.web import create_app

from web_helpers import web_store

TOKEN = "s3cret-token-for-tests"
TILE = "/tiles/{rid}/flood/14/8817/5886.png"  # holds the synthetic rasters' centre (see test_web_map.lonlat)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return web_store(tmp_path_factory.mktemp("webhttp"), n=2)


@pytest.fixture(scope="module")
def client(built):
    db, outputs, _ = built
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        yield c


@pytest.fixture
def copied(tmp_path):
    """A store of its own that a test may break."""
    return web_store(tmp_path, n=2)


def test_head_is_answered_like_get_without_a_body(client, built):
    rid = built[2][0]["id"]
    for url in ("/api/aois", f"/api/records/{rid}", TILE.format(rid=rid), f"/api/records/{rid}/files/flood_mask",
                "/api/aois/delta/history.csv", "/static/app.js", "/"):
        got, head = client.get(url), client.head(url)
        assert got.status_code == head.status_code == 200, url
        assert head.content == b"" and head.headers["content-length"] == got.headers["content-length"], url
    assert client.head("/api/aois/nowhere/history").status_code == 404


def test_revalidation_through_a_proxy(client, built):
    """A compressing proxy marks the ETag weak (W/"..."), a cache may send several: both still get 304."""
    url = TILE.format(rid=built[2][0]["id"])
    etag = client.get(url).headers["etag"]
    for header in (f"W/{etag}", f'"other", {etag}', f'"a",W/{etag} '):
        r = client.get(url, headers={"If-None-Match": header})
        assert r.status_code == 304 and r.content == b"", header
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_a_tile_the_client_holds_is_not_rendered_again(built):
    """After a restart (empty cache) a browser revalidating its tiles gets 304 without a rendering."""
    db, outputs, expected = built
    url = TILE.format(rid=expected[0]["id"])
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        etag = c.get(url).headers["etag"]
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        assert c.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert c.app.state.renderer.misses == 0


def test_the_token_must_come_as_a_bearer_token(built):
    db, outputs, _ = built
    with TestClient(create_app(db, outputs, basemap="offline", write_token=TOKEN)) as c:
        assert c.post("/api/alerts/retry", headers={"Authorization": TOKEN}).status_code == 401
        assert c.post("/api/alerts/retry", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        for scheme in ("Bearer", "bearer"):  # RFC 9110 §11.1: the scheme is case-insensitive
            assert c.post("/api/alerts/retry", headers={"Authorization": f"{scheme} {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("time,status,acquired", [
    ("0999-01-01", 404, None),                 # before every record, though its year has three digits
    ("0300-06-01T00:00:00Z", 404, None),
    ("0001-01-01T00:00:00+01:00", 404, None),  # before year 1 in UTC
    ("9999-12-31T23:59:59-01:00", 200, -1),    # after year 9999 in UTC: the latest record
    ("2024-05-07T05:00:00+02:00", 200, 0),     # 03:00 UTC on the 7th: before the second record (05:00)
])
def test_floods_at_times_far_from_now(client, built, time, status, acquired):
    r = client.get("/api/aois/delta/floods", params={"time": time})
    assert r.status_code == status
    if acquired is not None:
        assert r.json()["properties"]["acquired"] == built[2][acquired]["acquired"]


def test_history_offset_beyond_a_64_bit_integer_is_a_bad_parameter(client):
    assert client.get(f"/api/aois/delta/history?offset={2 ** 63}").status_code == 422
    page = client.get(f"/api/aois/delta/history?offset={2 ** 63 - 1}")
    assert page.status_code == 200 and page.json()["records"] == []


def test_a_deleted_quicklook_gets_no_link(copied):
    db, outputs, _ = copied
    quicklook = outputs / "S1_000" / "quicklook.png"
    quicklook.write_bytes(b"\x89PNG\r\n\x1a\n")
    with Store(db) as store:
        rid = store.add_record(aoi="delta", acquired="2024-06-01T05:00:00Z", scene_id="ql", kind="map",
                               flooded_km2=1.0, permanent_water_km2=0.0, valid_km2=2.0, coverage=1.0,
                               floods={"type": "MultiPolygon", "coordinates": []}, paths={"quicklook": quicklook})
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        assert c.get(f"/api/records/{rid}").json()["quicklook_url"] == "/files/S1_000/quicklook.png"
        quicklook.unlink()
        assert c.get(f"/api/records/{rid}").json()["quicklook_url"] is None


def test_a_broken_raster_is_named_not_a_traceback(copied):
    """A COG overwritten with junk or cut short after recording: its tiles answer 500 naming the file, and the
    log says so once, not a traceback per tile (a map view asks for dozens)."""
    import logging

    class Lines(logging.Handler):  # on the logger itself: uvicorn's logging config (an earlier test's server)
        def __init__(self):        # turns its propagation to the root logger, where caplog listens, off
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    lines, logger = Lines(), logging.getLogger("uvicorn.error")
    # an in-process server of an earlier test (log_level="error") leaves the logger at ERROR: `floodwatch web`
    # runs it at INFO, where these warnings show
    level, disabled = logger.level, logger.disabled
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        _broken_rasters(copied, lines.messages)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
        logger.disabled = disabled


def _broken_rasters(copied, messages):
    db, outputs, expected = copied
    rid = expected[0]["id"]
    (outputs / "S1_000" / "flood_mask.tif").write_bytes(b"not a tiff")
    prob = outputs / "S1_000" / "flood_probability.tif"
    prob.write_bytes(prob.read_bytes()[:2000])
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        for layer, name in (("flood", "flood_mask.tif"), ("probability", "flood_probability.tif")):
            for _ in range(3):
                r = c.get(TILE.format(rid=rid).replace("/flood/", f"/{layer}/"))
                assert r.status_code == 500 and name in r.json()["detail"], r.text
            assert sum(name in m and "cannot be read" in m for m in messages) == 1
        assert c.get(TILE.format(rid=expected[1]["id"])).status_code == 200  # the other record's files are fine


def test_the_database_inside_the_outputs_folder_is_not_served(built, tmp_path):
    """`--outputs .` beside the database must not hand out the database (webhook URLs carry secrets)."""
    db, _, _ = built
    shutil.copy(db, tmp_path / "fw.db")
    (tmp_path / "fw.db-journal").write_bytes(b"journal")
    (tmp_path / "note.txt").write_text("fine")
    with TestClient(create_app(tmp_path / "fw.db", tmp_path, basemap="offline")) as c:
        assert c.get("/files/note.txt").status_code == 200
        for name in ("fw.db", "fw.db-journal", "./fw.db"):
            assert c.get(f"/files/{name}").status_code == 404, name
