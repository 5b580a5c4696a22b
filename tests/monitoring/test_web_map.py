"""The web map's raster tiles, paged history, downloads, 404s, cache headers and write token (no browser)."""
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from floodwatch.errors import MonitoringError
from floodwatch.monitoring.web import create_app
from floodwatch.monitoring.web.tiles import FLOOD_COLOURS

from web_helpers import ORIGIN, PIXEL_M, RIVER_COLS, UTM, web_store

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return web_store(tmp_path_factory.mktemp("webmap"), n=3)


@pytest.fixture(scope="module")
def client(built):
    db, outputs, _ = built
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        yield c


def lonlat(col: float, row: float):
    """The lon/lat of a pixel centre of the synthetic rasters (pyproj, independent of rio-tiler)."""
    from pyproj import Transformer

    x, y = ORIGIN[0] + (col + 0.5) * PIXEL_M, ORIGIN[1] - (row + 0.5) * PIXEL_M
    return Transformer.from_crs(UTM, 4326, always_xy=True).transform(x, y)


def tile_pixel(lon: float, lat: float, z: int):
    """(x, y, column, row) of the 256 px web-mercator tile and pixel that hold lon/lat (spherical mercator)."""
    n = 2 ** z
    fx = (lon + 180) / 360 * n
    fy = (1 - np.log(np.tan(np.radians(lat)) + 1 / np.cos(np.radians(lat))) / np.pi) / 2 * n
    return int(fx), int(fy), int((fx % 1) * 256), int((fy % 1) * 256)


def get_tile(client, rid, layer, lon, lat, z=15):
    x, y, col, row = tile_pixel(lon, lat, z)
    r = client.get(f"/tiles/{rid}/{layer}/{z}/{x}/{y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA")), col, row


def test_flood_tile_colours_match_the_mask(client, built):
    _, _, expected = built
    rid = expected[-1]["id"]
    centre = lonlat(256 * 0.6, 256 * 0.55)  # the flood disc's centre
    img, col, row = get_tile(client, rid, "flood", *centre)
    assert tuple(img[row, col]) == FLOOD_COLOURS[1]
    river = lonlat((RIVER_COLS.start + RIVER_COLS.stop) / 2, 40)
    img, col, row = get_tile(client, rid, "flood", *river)
    assert tuple(img[row, col]) == FLOOD_COLOURS[2]
    dry = lonlat(10, 10)  # west of the river, far from the disc: code 0 is transparent
    img, col, row = get_tile(client, rid, "flood", *dry)
    assert img[row, col, 3] == 0


def test_probability_and_sar_tiles(client, built):
    rid = built[2][0]["id"]
    centre, dry = lonlat(256 * 0.6, 256 * 0.55), lonlat(10, 10)
    wet_p, c, r = get_tile(client, rid, "probability", *centre)
    dry_p, c2, r2 = get_tile(client, rid, "probability", *dry)
    assert wet_p[r, c, 3] > 150 > dry_p[r2, c2, 3]  # opaque where water is likely, nearly clear elsewhere
    wet_s, c, r = get_tile(client, rid, "sar", *centre)
    dry_s, c2, r2 = get_tile(client, rid, "sar", *dry)
    # -21 dB water is dark, -8 dB land is bright on the -25..0 dB grey ramp (speckle: compare 5x5 means)
    assert wet_s[r - 2:r + 3, c - 2:c + 3, 0].mean() + 60 < dry_s[r2 - 2:r2 + 3, c2 - 2:c2 + 3, 0].mean()


def test_tile_cache_headers_and_etag(client, built):
    rid = built[2][0]["id"]
    x, y, _, _ = tile_pixel(*lonlat(128, 128), 14)
    url = f"/tiles/{rid}/flood/14/{x}/{y}.png"
    first = client.get(url)
    assert "max-age" in first.headers["cache-control"] and first.headers["etag"]
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("url", [
    "/tiles/1/flood/14/0/0.png",          # a real tile far outside the raster
    "/tiles/1/flood/3/9/1.png",           # x beyond 2**z
    "/tiles/1/flood/-1/0/0.png", "/tiles/1/flood/40/0/0.png",
    "/tiles/1/nosuch/14/8817/5886.png", "/tiles/999/flood/14/8817/5886.png",
    "/tiles/abc/flood/14/8817/5886.png", "/tiles/1/flood/14/x/5886.png", "/tiles/1/flood/14/8817/5886.jpg",
    "/tiles/99999999999999999999999/flood/14/8817/5886.png",
    "/api/records/999", "/api/records/abc", "/api/records/0", "/api/records/-1",
    "/api/records/1/files/secret", "/api/records/1/files/..%2f..%2fetc",
    "/api/records/1/files/quicklook",     # a known key this record has no file for
    "/api/aois/nowhere/history.csv", "/api/nothing", "/nothing",
    "/files/%00", "/files/a%00b.png", "/files/" + "x" * 5000, "/files/" + "d/" * 3000 + "f",
    "/static/%00", "/static/" + "x" * 5000,
])
def test_every_bad_path_is_404(client, url):
    assert client.get(url).status_code == 404


def test_history_is_paged(client, built):
    _, _, expected = built
    page = client.get("/api/aois/delta/history?limit=2").json()
    assert page["total"] == 3 and page["offset"] == 0 and len(page["records"]) == 2
    rest = client.get(page["next"]).json()
    assert rest["next"] is None and len(rest["records"]) == 1
    got = [r["acquired"] for r in page["records"] + rest["records"]]
    assert got == [e["acquired"] for e in expected]
    assert client.get("/api/aois/delta/history?offset=10").json()["records"] == []
    assert client.get("/api/aois/delta/history?limit=0").status_code == 422
    assert set(page["records"][0]["layers"]) == {"flood", "probability", "sar"}


def test_history_csv_matches_the_store(client, built):
    _, _, expected = built
    r = client.get("/api/aois/delta/history.csv")
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["acquired"] for row in rows] == [e["acquired"] for e in expected]
    assert [float(row["flooded_km2"]) for row in rows] == pytest.approx([e["flooded_km2"] for e in expected])


def test_record_downloads(client, built):
    _, outputs, expected = built
    rid = expected[0]["id"]
    rec = client.get(f"/api/records/{rid}").json()
    west, south, east, north = rec["bounds"]["flood"]
    lon, lat = lonlat(0, 0)
    assert west == pytest.approx(lon, abs=0.01) and north == pytest.approx(lat, abs=0.01) and east > west
    gj = client.get(rec["downloads"]["geojson"])
    assert "attachment" in gj.headers["content-disposition"]
    fc = gj.json()
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    cog = client.get(rec["downloads"]["flood_mask"])
    assert cog.content == (outputs / "S1_000" / "flood_mask.tif").read_bytes()
    assert cog.headers["content-disposition"].endswith('delta_2024-05-01_map_flood_mask.tif"')


def test_config_and_basemap_choices(built, client):
    db, outputs, _ = built
    assert client.get("/api/config").json()["basemap"] is None  # offline: bundled outlines only
    outlines = client.get(client.get("/api/config").json()["fallback_basemap"]).json()
    assert {f["properties"]["kind"] for f in outlines["features"]} == {"land", "border"}
    with TestClient(create_app(db, outputs)) as c:  # the default basemap: OpenStreetMap, attributed
        base = c.get("/api/config").json()["basemap"]
        assert "openstreetmap.org" in base["url"] and "OpenStreetMap" in base["attribution"]
    for bad in ("ftp://x/{z}/{x}/{y}", "https://example.org/tiles.png"):
        with pytest.raises(MonitoringError, match="basemap"):
            create_app(db, outputs, basemap=bad)
    with pytest.raises(MonitoringError, match="outputs"):
        create_app(db, outputs / "missing")


def test_read_only_by_default_and_writes_need_the_token(built, client):
    db, outputs, _ = built
    assert client.post("/api/alerts/retry").status_code in (404, 405)
    for method in ("put", "delete", "patch"):
        assert getattr(client, method)("/api/aois/delta/history").status_code == 405
    with TestClient(create_app(db, outputs, basemap="offline", write_token=TOKEN)) as c:
        assert c.get("/api/config").json()["write"] is True
        assert c.post("/api/alerts/retry").status_code == 401
        assert c.post("/api/alerts/retry", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.post("/api/alerts/retry", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json() == {"delivered": 0, "failed": 0}
    with pytest.raises(MonitoringError, match="16 characters"):
        create_app(db, outputs, write_token="short")


def test_json_is_strict(client):
    for url in ("/api/aois", "/api/aois/delta/history", "/api/records/1"):
        json.loads(client.get(url).text, parse_constant=lambda c: pytest.fail(f"{url}: {c} in JSON"))


def test_no_tile_reads_more_than_the_limit(built, monkeypatch):
    """A raster without overviews (the SAR scene) gets a least zoom: below it a tile would read more than
    MAX_READ_PX source pixels, so the page does not ask and the API answers 404."""
    import floodwatch.monitoring.web.tiles as tiles

    db, outputs, expected = built
    rid = expected[0]["id"]
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        normal = c.get(f"/api/records/{rid}").json()["minzoom"]
    assert normal == {"flood": 0, "probability": 0, "sar": 0}  # 256 px rasters: any zoom reads <= 256²
    monkeypatch.setattr(tiles, "MAX_READ_PX", 100 * 100)  # less than the whole 256² scene
    with TestClient(create_app(db, outputs, basemap="offline")) as c:
        least = c.get(f"/api/records/{rid}").json()["minzoom"]["sar"]
        assert least > 10
        lon, lat = lonlat(128, 128)
        x, y, _, _ = tile_pixel(lon, lat, least)
        assert c.get(f"/tiles/{rid}/sar/{least}/{x}/{y}.png").status_code == 200
        x, y, _, _ = tile_pixel(lon, lat, least - 1)
        assert c.get(f"/tiles/{rid}/sar/{least - 1}/{x}/{y}.png").status_code == 404


def test_logratio_score_is_not_drawn_as_a_probability(tmp_path, pair, predictor):
    """change_score.tif is the new-water probability of the model methods, but a dB log-ratio for logratio:
    on the 0-1 ramp a -3 dB drop would be drawn as no water at all (and rises as certain water)."""
    from floodwatch.monitoring.change import detect_change
    from floodwatch.monitoring.web.tiles import layer_sources

    before, after, _ = pair
    layers = {}
    for method, model in (("logratio", None), ("difference", predictor)):
        res = detect_change(before, after, model, tmp_path / method, method=method, tile=64)
        layers[method] = layer_sources({k: str(v) for k, v in res.paths.items()})
    assert set(layers["logratio"]) == {"flood"}
    assert set(layers["difference"]) == {"flood", "probability"}
    assert layers["difference"]["probability"].path.name == "change_score.tif"
    # the run says what its score is; the web map reads that, not a list of methods (a run written before
    # stats.json said it is still told by its method)
    stats = json.loads((tmp_path / "difference" / "stats.json").read_text())
    assert stats["score_units"] == "probability"
    assert json.loads((tmp_path / "logratio" / "stats.json").read_text())["score_units"] == "dB"
    paths = {k: str(v) for k, v in detect_change(before, after, predictor, tmp_path / "d2", method="difference",
                                                  tile=64).paths.items()}
    written = Path(paths["stats"])
    written.write_text(json.dumps({**stats, "score_units": "dB"}))
    assert set(layer_sources(paths)) == {"flood"}
    written.write_text(json.dumps({k: v for k, v in stats.items() if k != "score_units"}))
    assert set(layer_sources(paths)) == {"flood", "probability"}
