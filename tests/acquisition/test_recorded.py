"""`fetch` on REAL recorded STAC documents (../shared/data/stac: Planetary Computer, Earth Search, Copernicus
Data Space), served from loopback; the COGs under the real items' asset names are synthetic. Skipped
without ../shared/data."""
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import box, shape

import monitoring_helpers
import s1_items
from floodwatch.acquisition import Retries, fetch, resolve_source
from floodwatch.acquisition.read import grid_for
from floodwatch.errors import AcquisitionError, NoItemsError, UnitsError

from fake_pc import utm_aoi

FAST = Retries(attempts=2, backoff_s=0.01)
PC_RTC = ["S1A_IW_GRDH_1SDV_20240419T045749_20240419T045814_053498_067DF2_rtc",  # north slice
          "S1A_IW_GRDH_1SDV_20240419T045814_20240419T045839_053498_067DF2_rtc"]  # the next slice south
BLOB = "https://sentinel1euwestrtc.blob.core.windows.net"
# synthetic patches (EPSG:32633, 10 m) inside the two slices' overlap; 24 rows shared
X0, NORTH_TOP, ROWS = 690000.0, 3718000.0, 400  # near where the real footprints meet
SOUTH_TOP = NORTH_TOP - (ROWS - 24) * 10
AOI = utm_aoi(X0 + 2000, SOUTH_TOP - 1000, X0 + 3000, NORTH_TOP - 2000)  # across the seam of the two slices


@pytest.fixture(scope="module")
def stac(shared_data):
    root = shared_data / "stac"
    if not (root / "planetary-computer").is_dir():
        pytest.skip(f"recorded STAC documents not found at {root}")
    return root


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_generated_items_have_the_recorded_shape(stac):
    real = _load(stac / "planetary-computer" / f"item_sentinel-1-rtc_{PC_RTC[0]}.json")
    made = s1_items.rtc_item(real["id"], datetime(2024, 4, 19, 4, 58), 32633, (0, 0, 100, 100), "http://x")
    assert set(made["assets"]) == set(real["assets"])
    for b in ("vv", "vh"):
        assert made["assets"][b]["type"] == real["assets"][b]["type"]
        assert made["assets"][b]["roles"] == real["assets"][b]["roles"]
        assert made["assets"][b]["raster:bands"][0]["nodata"] == real["assets"][b]["raster:bands"][0]["nodata"]
        assert made["assets"][b]["href"].split("/", 3)[3].split("/")[0] == real["assets"][b]["href"].split("/")[3]
    assert set(real["properties"]) - set(made["properties"]) <= {"s1:processing_datetime"}
    coll = _load(stac / "planetary-computer" / "collection_sentinel-1-rtc.json")
    gen = s1_items.rtc_collection()
    for k in ("msft:storage_account", "msft:container", "msft:requires_account"):
        assert gen[k] == coll[k]


def serve_pc_rtc(stac, tmp_path, stac_api, file_server, monkeypatch, water=None):
    """The two recorded PC RTC slices on a loopback API, synthetic COGs under their real asset paths on
    signed-only storage, the recorded SAS token response behind a key. Returns (api, items, layers, asked)."""
    pc = stac / "planetary-computer"
    coll = _load(pc / "collection_sentinel-1-rtc.json")
    items = [_load(pc / f"item_sentinel-1-rtc_{i}.json") for i in PC_RTC]
    blobs = tmp_path / "blobs"
    files = file_server(blobs, require_query="sig=")  # storage answers only signed URLs
    layers = []
    for n, (item, top) in enumerate(zip(items, (NORTH_TOP, SOUTH_TOP))):
        vv = s1_items.linear_field(ROWS, 512, seed=n, water_box=water if n == 0 else None)
        vh = vv * 0.3
        if n == 0:
            vv[-8:], vh[-8:] = s1_items.NODATA, s1_items.NODATA
        for b, data in (("vv", vv), ("vh", vh)):
            href = item["assets"][b]["href"]
            assert href.startswith(BLOB + "/sentinel1-grd-rtc/")
            s1_items.write_cog(blobs / href.removeprefix(BLOB + "/"), data, 32633, X0, top)
            item["assets"][b]["href"] = files + href.removeprefix(BLOB)
        layers.append((top, vv, vh))
    api = stac_api([coll], items, page_size=1)  # one item per page: pystac-client follows `next`
    # the real (expired) SAS token response of the PC token endpoint, served to keyed requests
    token = _load(pc / "sas_token_response_sentinel2l2a01_sentinel2-l2_EXPIRED.json")
    asked = []

    def sas(method, path, headers):
        asked.append((path, headers.get("Ocp-Apim-Subscription-Key")))
        return (200, token) if headers.get("Ocp-Apim-Subscription-Key") == "k" else (
            403, {"statusCode": 403, "message": "subscription key required"})

    api.routes["/api/sas/v1/token/"] = sas
    monkeypatch.setenv("PC_SDK_SAS_URL", f"{api.url}/api/sas/v1/token")
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "k")
    import planetary_computer.sas

    monkeypatch.setattr(planetary_computer.sas, "TOKEN_CACHE", {})
    return api, items, layers, asked


def test_pc_rtc_recorded_items_signed_and_mosaicked(stac, tmp_path, stac_api, file_server, monkeypatch):
    api, items, layers, asked = serve_pc_rtc(stac, tmp_path, stac_api, file_server, monkeypatch)
    aoi = AOI
    assert all(shape(i["geometry"]).intersects(aoi) for i in items)  # the AOI lies in both real footprints
    res = fetch(aoi, "2024-04-19", "2024-04-19", tmp_path / "out", source=resolve_source("pc-rtc", url=api.url),
                retries=FAST, progress=False)
    (scene,) = res.scenes
    assert [i["id"] for i in scene.items] == PC_RTC and scene.coverage == pytest.approx(1.0)
    # the recorded token has expired, so the package asks again for each href (5: one CRS probe, 4 assets)
    assert set(asked) == {("/api/sas/v1/token/sentinel1euwestrtc/sentinel1-grd-rtc", "k")} and len(asked) == 5
    assert all("sig=" in p for p, *_ in monitoring_helpers.RangeHandler.range_requests)
    # numpy reference: north slice first (earlier), its nodata edge filled from the south slice
    with rasterio.open(scene.path) as src:
        got = src.read()
    grid = grid_for(aoi, "EPSG:32633", rasterio.transform.from_origin(X0, NORTH_TOP, 10, 10), pad_px=16)
    want = np.full(got.shape, np.nan)
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    xs, ys = grid.transform.c + (cols + 0.5) * 10, grid.transform.f - (rows + 0.5) * 10
    for top, vv, vh in layers:
        r, c = np.floor((top - ys) / 10).astype(int), np.floor((xs - X0) / 10).astype(int)
        ok = (r >= 0) & (r < ROWS) & (c >= 0) & (c < 512)
        for b, arr in enumerate((vv, vh)):
            v = np.full(r.shape, np.nan)
            v[ok] = arr[r[ok], c[ok]]
            v[v == s1_items.NODATA] = np.nan
            fill = np.isnan(want[b]) & ~np.isnan(v)
            want[b][fill] = 10 * np.log10(v[fill])
    np.testing.assert_allclose(got, want, atol=1e-5)
    doc = json.loads(res.manifest.read_text())
    assert doc["scenes"][0]["items"][0]["orbit_state"] == items[0]["properties"]["sat:orbit_state"]
    assert doc["scenes"][0]["items"][0]["relative_orbit"] == items[0]["properties"]["sat:relative_orbit"]
    assert "sig=" not in res.manifest.read_text() and "se=" not in res.manifest.read_text()


def test_earth_search_recorded_pages_hh_only(stac, tmp_path, stac_api):
    es = stac / "earth-search"
    api = stac_api([_load(es / "collection_sentinel-1-grd.json")], [], methods=("POST",))
    page1 = _load(es / "search_page1_POST_filter_mixed_incl_s1grd.json")
    page2 = _load(es / "search_page2_POST_filter_next.json")
    api.recorded_pages = {None: page1, page1["links"][0]["body"]["next"]: page2}
    src = resolve_source(api.url, collection="sentinel-1-grd")  # as a generic catalog: units from the items
    with pytest.raises(NoItemsError, match=r"item\(s\) over the AOI .* none with VV and VH \(polarisations: HH\)"):
        fetch(box(76.0, -47.5, 76.2, -47.3), "2025-07-31", "2025-07-31", tmp_path / "out", source=src,
              retries=FAST, progress=False)
    searches = [p for m, path, p in api.requests if path == "/search"]
    assert len(searches) >= 2 and searches[1] == {"next": page1["links"][0]["body"]["next"]}
    # the registered source refuses GRD digital numbers before any request
    n = len(api.requests)
    with pytest.raises(UnitsError, match="digital numbers"):
        fetch(box(76.0, -47.5, 76.2, -47.3), "2025-07-31", "2025-07-31", tmp_path / "out",
              source=resolve_source("earth-search-grd", url=api.url), progress=False)
    assert len(api.requests) == n
    # an unknown collection: the recorded Earth Search 404 body
    api.not_found_body = json.loads((stac / "errors" / "earth-search_404_collection_not_found.json").read_text())
    with pytest.raises(AcquisitionError, match="collection: 'foo' not found"):
        fetch(box(76.0, -47.5, 76.2, -47.3), "2025-07-31", "2025-07-31", tmp_path / "out",
              source=resolve_source(api.url, collection="foo"), progress=False)


def test_cdse_uint16_grd_refused_from_metadata(stac, tmp_path, stac_api):
    cd = stac / "cdse"
    item = _load(cd / "item_sentinel-1-grd_S1A_IW_GRDH_1SDV_20240607T000653_20240607T000718_054210_0697DA_6EE4_COG.json")
    api = stac_api([_load(cd / "collection_template_sentinel-1-grd-cog.json")], [item])
    aoi = shape(item["geometry"]).centroid.buffer(0.05)
    with pytest.raises(UnitsError, match=f"STAC item '{item['id']}': uint16 pixels are uncalibrated"):
        fetch(aoi, "2024-06-07", "2024-06-07", tmp_path / "out", source=resolve_source(api.url,
              collection="sentinel-1-grd"), progress=False)


def test_run_on_recorded_items_map_history_alert(stac, tmp_path, stac_api, file_server, monkeypatch):
    from floodwatch.monitoring.geo import geodesic_area_km2
    from floodwatch.monitoring.run import run_aoi
    from floodwatch.monitoring.store import Store

    from monitoring_helpers import DarkWaterPredictor

    # water in the north slice, rows 250-350 and columns 150-350: its part inside the AOI is 100 x 100 px
    api, items, _, _ = serve_pc_rtc(stac, tmp_path, stac_api, file_server, monkeypatch, water=(250, 150, 350, 350))
    with Store(tmp_path / "fw.db") as store:
        res = run_aoi(store, "seam", "2024-04-19", DarkWaterPredictor(), tmp_path / "run", geometry=AOI,
                      source=resolve_source("pc-rtc", url=api.url), threshold_km2=0.5, tile=128, overlap=16,
                      retries=FAST, progress=False)
        assert (res.map.out_dir / "flood_polygons.geojson").is_file()
        (row,) = store.history("seam")
        assert row["scene_id"] == f"{PC_RTC[0]}+1" and row["acquired"] == "2024-04-19T04:58:01Z"
        inside = utm_aoi(X0 + 2000, NORTH_TOP - 3500, X0 + 3000, NORTH_TOP - 2500)
        assert row["flooded_km2"] == pytest.approx(geodesic_area_km2(inside), rel=0.1)
        (alert,) = store.alerts("seam")
        assert alert["rule"] == "threshold" and res.alert_ids == [alert["id"]]
