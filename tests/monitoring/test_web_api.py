import pytest
from fastapi.testclient import TestClient

from floodwatch.monitoring.web import create_app

from monitoring_helpers import recorded_store


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return recorded_store(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def client(recorded):
    db, outputs = recorded
    with TestClient(create_app(db, outputs)) as c:
        yield c


def test_health_page_and_assets(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and "/static/leaflet/leaflet.js" in page.text
    assert "http" not in page.text.split("<body>")[1]  # no CDN or remote resource
    js = client.get("/static/leaflet/leaflet.js")
    assert js.status_code == 200 and "Leaflet" in js.text[:500]
    assert client.get("/static/app.js").status_code == 200


def test_aois(client):
    fc = client.get("/api/aois").json()
    names = [f["properties"]["name"] for f in fc["features"]]
    assert names == ["east", "west"]
    west = fc["features"][1]
    assert west["geometry"]["type"] == "Polygon" and west["properties"]["records"] == 2
    assert west["properties"]["latest"]["acquired"] == "2024-05-13T05:00:00Z"


def test_history(client):
    h = client.get("/api/aois/west/history").json()
    assert [r["acquired"] for r in h["records"]] == ["2024-05-01T05:00:00Z", "2024-05-13T05:00:00Z"]
    assert h["records"][1]["flooded_km2"] > h["records"][0]["flooded_km2"]
    ql = h["records"][1]["quicklook_url"]
    assert ql.startswith("/files/") and client.get(ql).headers["content-type"] == "image/png"
    assert client.get("/api/aois/west/history?kind=change").json()["records"] == []
    assert client.get("/api/aois/west/history?kind=bogus").status_code == 422


def test_floods_by_time(client):
    latest = client.get("/api/aois/west/floods").json()
    assert latest["properties"]["acquired"] == "2024-05-13T05:00:00Z" and latest["features"]
    first = client.get("/api/aois/west/floods", params={"time": "2024-05-10T00:00:00Z"}).json()
    assert first["properties"]["acquired"] == "2024-05-01T05:00:00Z"
    assert client.get("/api/aois/west/floods", params={"time": "2024-05-13"}).json()["properties"][
        "acquired"] == "2024-05-01T05:00:00Z"  # midnight is before 05:00
    assert client.get("/api/aois/west/floods", params={"time": "2024-04-01"}).status_code == 404


@pytest.mark.parametrize("url,status", [
    ("/api/aois/nowhere/history", 404),
    ("/api/aois/nowhere/floods", 404),
    ("/api/alerts?aoi=nowhere", 404),
    ("/api/aois/west/floods?time=yesterday", 422),
    ("/api/aois/west/floods?time=2024-13-45", 422),
    ("/api/alerts?limit=0", 422),
    ("/api/alerts?limit=abc", 422),
])
def test_bad_parameters(client, url, status):
    assert client.get(url).status_code == status


@pytest.mark.parametrize("path", [
    "/files/../fw.db", "/files/%2e%2e/fw.db", "/files/..%2ffw.db", "/files//etc/passwd",
    "/files/west/../../fw.db", "/static/../fw.db", "/static/%2e%2e/app.py", "/files/does/not/exist.png",
])
def test_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500
    assert b"CREATE TABLE" not in r.content and b"SQLite" not in r.content and b"root:" not in r.content


def test_alerts(client):
    alerts = client.get("/api/alerts").json()
    assert [(a["aoi"], a["rule"], a["acquired"]) for a in alerts] == [("west", "threshold", "2024-05-13T05:00:00Z")]
    assert alerts[0]["deliveries"] == []  # no webhook configured: console only
    assert client.get("/api/alerts?aoi=east").json() == []


def test_no_outputs_folder_serves_no_files(recorded):
    db, _ = recorded
    with TestClient(create_app(db)) as c:
        assert c.get("/files/anything").status_code == 404
        assert c.get("/api/aois/west/history").json()["records"][0]["quicklook_url"] is None


def test_json_responses_are_strict(client):
    """Every JSON response goes through io.dumps_json: NaN is null, numpy numbers are numbers."""
    import json

    import numpy as np

    from floodwatch.monitoring.web.app import StrictJSONResponse

    body = StrictJSONResponse({"a": float("nan"), "b": np.float32(1.5), "c": [float("inf")]}).body
    assert json.loads(body) == {"a": None, "b": 1.5, "c": [None]}
    assert client.get("/api/records/abc").json() == {"detail": "not found"}
    app = client.app  # a route of the app's own kind returning NaN: null, not a failed request
    app.get("/test-nan")(lambda: {"area": float("nan")})
    response = client.get("/test-nan")
    assert response.status_code == 200 and json.loads(response.text) == {"area": None}
