from datetime import datetime, timezone

import pystac
import pytest
import rasterio
from shapely.geometry import box, mapping

from floodwatch.data.synthetic import synth_scene
from floodwatch.errors import MonitoringError
from floodwatch.monitoring.aoi import add_aoi
from floodwatch.monitoring.geo import to_wgs84
from floodwatch.monitoring.stac import watch_aoi
from floodwatch.monitoring.store import Store

import monitoring_helpers
from monitoring_helpers import ORIGIN, UTM

SIZE = 256
X0, Y0 = ORIGIN


def _write_cog(path, band, georef):
    # a tiled GeoTIFF with small internal tiles (GDAL's COG driver wants >= 128 px tiles, too big here)
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", crs=UTM,
                       transform=georef.affine(), nodata=float("nan"), tiled=True, blockxsize=64,
                       blockysize=64) as dst:
        dst.write(band[None])


def make_catalog(root):
    """A static catalog: two dates over the AOI (more water on the second) and one item elsewhere."""
    cat = pystac.Catalog("root", "test catalog")
    coll = pystac.Collection("s1", "Sentinel-1 test", pystac.Extent(
        pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])))
    cat.add_child(coll)
    for i, (day, frac, origin) in enumerate([(1, 0.05, ORIGIN), (9, 0.3, ORIGIN), (5, 0.3, (X0 + 50000, Y0))]):
        s = synth_scene(SIZE, SIZE, seed=7, water_fraction=frac, crs=UTM, origin=origin)
        foot = to_wgs84(box(origin[0], origin[1] - 10 * SIZE, origin[0] + 10 * SIZE, origin[1]), UTM)
        item = pystac.Item(f"S1_{i}", mapping(foot), list(foot.bounds),
                           datetime(2024, 5, day, 5, tzinfo=timezone.utc), {})
        for b, name in enumerate(("vv", "vh")):
            p = root / f"S1_{i}_{name}.tif"
            _write_cog(p, s.image[b], s.georef)
            item.add_asset(name, pystac.Asset(str(p), media_type=pystac.MediaType.COG, roles=["data"]))
        coll.add_item(item)
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


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
        with pytest.raises(MonitoringError, match="--collection"):
            watch_aoi(store, "mid", url, "nope", predictor, tmp_path / "out", progress=False)
        with pytest.raises(MonitoringError, match="cannot read"):
            watch_aoi(store, "mid", f"{base}/missing.json", "s1", predictor, tmp_path / "out", progress=False)
