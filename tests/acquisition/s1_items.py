"""Sentinel-1 RTC STAC items and their COGs, generated in the shape Planetary Computer serves them
(TorchGeo style: small, deterministic, made by code in the repo, so these tests run without ../shared).

`rtc_item` mirrors a recorded `sentinel-1-rtc` item: assets `vv`/`vh` (COG, float32 gamma0 in linear power,
nodata -32768, raster:bands), `tilejson`/`rendered_preview`, `sar:*`/`sat:*`/`s1:*`/`proj:*` properties.
`rtc_collection` mirrors the collection's `msft:*` fields (requires_account, storage account, container).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box, mapping

from floodwatch.monitoring.geo import to_wgs84

PC_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
ACCOUNT, CONTAINER = "sentinel1euwestrtc", "sentinel1-grd-rtc"
NODATA = -32768.0
RES = 10.0


def rtc_collection(requires_account: bool = True) -> dict:
    return {"type": "Collection", "id": "sentinel-1-rtc", "stac_version": "1.0.0",
            "description": "Sentinel 1 Radiometrically Terrain Corrected (RTC)", "license": "CC-BY-4.0",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [["2014-10-10T00:00:00Z", None]]}},
            "links": [], "msft:group_id": "sentinel-1", "msft:container": CONTAINER,
            "msft:storage_account": ACCOUNT, "msft:requires_account": requires_account,
            "msft:region": "westeurope",
            "item_assets": {b: {"type": "image/tiff; application=geotiff; profile=cloud-optimized",
                                "roles": ["data"], "raster:bands": [{"nodata": NODATA, "data_type": "float32"}]}
                            for b in ("vv", "vh")}}


def asset_path(item_id: str, when: datetime, band: str) -> str:
    """The blob path PC uses: <container>/GRD/Y/M/D/IW/DV/<product>/measurement/iw-<band>.rtc.tiff."""
    product = item_id.removesuffix("_rtc") + "_ABCD"
    return (f"{CONTAINER}/GRD/{when.year}/{when.month}/{when.day}/IW/DV/{product}/measurement/"
            f"iw-{band}.rtc.tiff")


def rtc_item(item_id: str, when: datetime, crs_epsg: int, bounds: tuple, base_url: str, *,
             relative_orbit: int = 80, orbit_state: str = "descending", platform: str = "SENTINEL-1A") -> dict:
    """A PC-shaped sentinel-1-rtc item whose footprint is `bounds` (x0, y0, x1, y1 in EPSG:crs_epsg)."""
    x0, y0, x1, y1 = bounds
    foot = to_wgs84(box(x0, y0, x1, y1), f"EPSG:{crs_epsg}")
    shape_ = [int(round((y1 - y0) / RES)), int(round((x1 - x0) / RES))]
    data_assets = {b: {"href": f"{base_url}/{asset_path(item_id, when, b)}",
                       "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
                       "title": f"{b.upper()}: vertical transmit, {'vertical' if b == 'vv' else 'horizontal'} "
                                "receive",
                       "raster:bands": [{"nodata": NODATA, "data_type": "float32", "spatial_resolution": RES}]}
                   for b in ("vh", "vv")}
    render = f"{PC_API.replace('/stac/v1', '/data/v1')}/item/preview.png?collection=sentinel-1-rtc&item={item_id}"
    return {
        "id": item_id, "bbox": list(foot.bounds), "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [], "geometry": mapping(foot), "collection": "sentinel-1-rtc",
        "links": [{"rel": "collection", "type": "application/json", "href": f"{PC_API}/collections/sentinel-1-rtc"}],
        "assets": {**data_assets,
                   "tilejson": {"href": render.replace("preview.png", "tilejson.json"), "type": "application/json",
                                "roles": ["tiles"]},
                   "rendered_preview": {"href": render, "type": "image/png", "roles": ["overview"], "rel": "preview"}},
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "platform": platform, "constellation": "Sentinel-1",
            "start_datetime": (when - timedelta(seconds=9)).isoformat(sep=" ") + "+00:00",
            "end_datetime": (when + timedelta(seconds=9)).isoformat(sep=" ") + "+00:00",
            "proj:epsg": crs_epsg, "proj:bbox": [x0, y0, x1, y1], "proj:shape": shape_,
            "proj:transform": [RES, 0.0, x0, 0.0, -RES, y1, 0.0, 0.0, 1.0],
            "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD", "sar:instrument_mode": "IW",
            "sar:frequency_band": "C", "sar:center_frequency": 5.405, "sar:looks_range": 5,
            "sar:looks_azimuth": 1, "sar:observation_direction": "right", "sar:resolution_range": 20,
            "sar:resolution_azimuth": 22, "sar:pixel_spacing_range": 10, "sar:pixel_spacing_azimuth": 10,
            "sar:looks_equivalent_number": 4.4, "sat:orbit_state": orbit_state,
            "sat:relative_orbit": relative_orbit, "sat:absolute_orbit": 53498,
            "sat:platform_international_designator": "2014-016A", "s1:resolution": "high",
            "s1:datatake_id": "425458", "s1:orbit_source": "RESORB", "s1:product_timeliness": "Fast-24h",
            "s1:processing_level": "1", "s1:shape": shape_[::-1], "s1:instrument_configuration_ID": "7",
            "s1:slice_number": "1", "s1:total_slices": "2"}}


def write_cog(path: Path, data: np.ndarray, crs_epsg: int, x0: float, y1: float, block: int = 64) -> Path:
    """A tiled float32 GeoTIFF (internal tiles, as a COG's) with nodata -32768, top-left corner (x0, y1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs=f"EPSG:{crs_epsg}", transform=Affine(RES, 0, x0, 0, -RES, y1),
                       nodata=NODATA, tiled=True, blockxsize=block, blockysize=block) as dst:
        dst.write(data.astype(np.float32)[None])
    return path


def linear_field(h: int, w: int, seed: int, water_box: tuple | None = None) -> np.ndarray:
    """Linear-power backscatter: land around 0.05-0.2 (about -13..-7 dB), water 0.003 (-25 dB) in water_box
    (r0, c0, r1, c1)."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.05, 0.2, size=(h, w)).astype(np.float32)
    if water_box is not None:
        r0, c0, r1, c1 = water_box
        data[r0:r1, c0:c1] = rng.uniform(0.002, 0.004, size=(r1 - r0, c1 - c0))
    return data


def write_item_cogs(folder: Path, item: dict, vv: np.ndarray, vh: np.ndarray) -> None:
    """The item's vv/vh COGs under `folder`, at the paths its hrefs name, covering its proj:bbox."""
    x0, _, _, y1 = item["properties"]["proj:bbox"]
    epsg = item["properties"]["proj:epsg"]
    for band, data in (("vv", vv), ("vh", vh)):
        rel = item["assets"][band]["href"].split("/", 3)[3]  # after scheme://host/
        write_cog(folder / rel, data, epsg, x0, y1)
