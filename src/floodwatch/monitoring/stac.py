"""Watching an AOI through a STAC catalog: find new Sentinel-1 items, read only the AOI's window of their
COGs over HTTP, map them, record the results (and raise alerts).

`source` is a STAC API root (searched with pystac-client) or a static catalog / collection JSON (walked
with pystac), by URL or local path. Items already processed for this AOI are skipped, so `watch` can run
from cron as often as you like.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import MonitoringError
from ..io import atomic_path, check_output_dir
from .aoi import aoi_geometry, record_map_result
from .geo import from_wgs84
from .store import Store, parse_time, utc_iso

#: GDAL settings for COGs over HTTP: no directory listing per file, merge neighbouring range requests.
GDAL_HTTP_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
                 "GDAL_HTTP_MULTIPLEX": "YES", "GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "1",
                 "VSI_CACHE": "TRUE"}
BANDS = ("VV", "VH")


@dataclass
class WatchOutcome:
    item_id: str
    acquired: str
    status: str  # 'mapped', 'skipped' (already processed), 'outside' (no pixels in the AOI)
    record_ids: list[int]
    out_dir: Path | None = None


def _is_static(source: str) -> bool:
    return source.lower().endswith(".json") or Path(source).exists()


def find_items(source: str, collection: str, aoi: BaseGeometry, *, since: datetime | None = None,
               until: datetime | None = None) -> list[Any]:
    """pystac Items of `collection` whose footprint intersects `aoi` (EPSG:4326), acquired in [since, until]."""
    import pystac

    if _is_static(source):
        try:
            root = pystac.read_file(source)
        except Exception as exc:  # pystac raises many types for unreadable or non-STAC JSON
            raise MonitoringError(f"--stac {source}: cannot read the STAC catalog ({type(exc).__name__}: "
                                  f"{exc})") from None
        if isinstance(root, pystac.Collection) and root.id == collection:
            coll = root
        else:
            coll = root.get_child(collection, recursive=True) if isinstance(root, pystac.Catalog) else None
            if coll is None:
                raise MonitoringError(f"--collection: '{collection}' not found in {source}")
        items = [i for i in coll.get_items(recursive=True) if _matches(i, aoi, since, until)]
    else:
        items = _search_api(source, collection, aoi, since, until)
    return sorted(items, key=lambda i: (_acquired(i), i.id))


def _search_api(source: str, collection: str, aoi: BaseGeometry, since: datetime | None,
                until: datetime | None) -> list[Any]:
    """Item search on a STAC API (pystac-client follows the `next` links of every page)."""
    import pystac
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import PystacClientWarning  # DoesNotConformTo is raised, not only warned

    # an interval open at both ends ('../..') is a 400 on strict servers (stac-fastapi): no filter instead
    dt = None if since is None and until is None else \
        f"{utc_iso(since) if since else '..'}/{utc_iso(until) if until else '..'}"
    try:
        client = Client.open(source)
        # an unknown collection is an empty search on most APIs: say so, as for a static catalog
        if client.get_collection(collection) is None:
            raise MonitoringError(f"--collection: '{collection}' not found in {source}")
        # POST is optional in the spec (a search link without `method` is GET); GET cannot carry a geometry
        # everywhere, so it sends the AOI's bbox and the footprints are checked below
        methods = {link.extra_fields.get("method") or "GET" for link in client.links if link.rel == "search"}
        if "POST" in methods:
            search = client.search(collections=[collection], intersects=mapping(aoi), datetime=dt, method="POST")
        else:
            search = client.search(collections=[collection], bbox=list(aoi.bounds), datetime=dt, method="GET")
        items = list(search.items())
    except (APIError, OSError, ValueError, pystac.STACError, pystac.STACTypeError, PystacClientWarning) as exc:
        text = " ".join(str(exc).split())  # servers answer with multi-line JSON or HTML
        raise MonitoringError(f"--stac {source}: search failed ({type(exc).__name__}: "
                              f"{text[:300] or 'no detail'})") from None
    # the footprint and time checks again: a bbox search, or a lax server, may return more
    return [i for i in items if _matches(i, aoi, since, until)]


def _matches(item: Any, aoi: BaseGeometry, since: datetime | None, until: datetime | None) -> bool:
    """The item's footprint meets the AOI and it was acquired in [since, until]."""
    return bool(item.geometry) and shape(item.geometry).intersects(aoi) and _in_range(_acquired(item), since, until)


def _acquired(item: Any) -> datetime:
    dt = item.datetime or item.common_metadata.start_datetime
    if dt is None:
        raise MonitoringError(f"STAC item '{item.id}': no datetime")
    return parse_time(dt.isoformat())


def _in_range(dt: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or dt >= since) and (until is None or dt <= until)


def _band_hrefs(item: Any) -> list[tuple[str, int]]:
    """[(href, band index)] for VV and VH: assets named vv/vh (any case), or one asset holding both."""
    by_key = {k.lower(): a for k, a in item.assets.items()}
    if all(b.lower() in by_key for b in BANDS):
        return [(by_key[b.lower()].get_absolute_href(), 1) for b in BANDS]
    data = [a for a in item.assets.values() if "data" in (a.roles or []) or "tiff" in (a.media_type or "")]
    if len(data) == 1:
        return [(data[0].get_absolute_href(), i + 1) for i in range(len(BANDS))]
    raise MonitoringError(f"STAC item '{item.id}': no VV/VH assets (has {', '.join(item.assets) or 'none'})")


def read_aoi_window(item: Any, aoi: BaseGeometry, out_path: Path, pad_px: int = 16) -> Path | None:
    """Read only the window of the item's VV/VH COGs that covers the AOI (HTTP range requests for remote
    files) into a 2-band GeoTIFF; None when the item has no pixels over the AOI."""
    import rasterio
    from rasterio import windows

    layers, profile = [], None
    with rasterio.Env(**GDAL_HTTP_ENV):
        for href, band in _band_hrefs(item):
            try:
                with rasterio.open(href) as src:
                    if profile is None:
                        local = from_wgs84(shapely.segmentize(aoi, 1e-3), src.crs.to_string())
                        w = windows.from_bounds(*local.bounds, transform=src.transform)
                        c0 = max(0, math.floor(w.col_off) - pad_px)
                        r0 = max(0, math.floor(w.row_off) - pad_px)
                        c1 = min(src.width, math.ceil(w.col_off + w.width) + pad_px)
                        r1 = min(src.height, math.ceil(w.row_off + w.height) + pad_px)
                        if c1 <= c0 or r1 <= r0:
                            return None
                        win = windows.Window(c0, r0, c1 - c0, r1 - r0)
                        profile = dict(driver="GTiff", width=win.width, height=win.height, count=len(BANDS),
                                       dtype="float32", crs=src.crs, transform=src.window_transform(win),
                                       nodata=float("nan"), compress="deflate")
                    layers.append(src.read(band, window=win, masked=True).astype(np.float32).filled(np.nan))
            except rasterio.errors.RasterioIOError as exc:
                raise MonitoringError(f"STAC item '{item.id}': cannot read {href} ({exc})") from None
    with atomic_path(out_path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(np.stack(layers))
            dst.descriptions = BANDS
    return out_path


def watch_aoi(store: Store, aoi_name: str, source: str, collection: str, predictor: Any, out_dir: str | Path, *,
              since: datetime | str | None = None, units: str = "db", tile: int = 512, overlap: int = 64,
              batch: int = 4, threshold: float = 0.5, progress: bool = True, notify: bool = True,
              console: Any = None) -> list[WatchOutcome]:
    """Map every new item over the AOI, oldest first; record each (and alert) and mark it processed."""
    from ..mapping import map_scene

    aoi = aoi_geometry(store.get_aoi(aoi_name))
    since_dt = parse_time(since, "--since") if isinstance(since, str) else since
    out_dir = check_output_dir(out_dir)  # before any download: a file in the way fails now
    key = f"{source}#{collection}"
    outcomes = []
    for item in find_items(source, collection, aoi, since=since_dt):
        acquired = utc_iso(_acquired(item))
        if store.is_processed(key, item.id, aoi_name):
            outcomes.append(WatchOutcome(item.id, acquired, "skipped", []))
            continue
        window = read_aoi_window(item, aoi, out_dir / "inputs" / f"{_safe(item.id)}.tif")
        if window is None:
            store.mark_processed(key, item.id, aoi_name)
            outcomes.append(WatchOutcome(item.id, acquired, "outside", []))
            continue
        result = map_scene(window, predictor, out_dir / "maps", units=units, tile=tile, overlap=overlap,
                           batch=batch, threshold=threshold, progress=progress)
        ids = record_map_result(store, result, acquired=acquired, scene_id=item.id, aois=[aoi_name],
                                notify=notify, console=console)
        store.mark_processed(key, item.id, aoi_name)
        outcomes.append(WatchOutcome(item.id, acquired, "mapped", ids, result.out_dir))
    return outcomes


def _safe(item_id: str) -> str:
    """An item id as a file name (ids may contain '/' or ':')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id).lstrip(".") or "item"


def item_ids(outcomes: Iterable[WatchOutcome], status: str) -> list[str]:
    return [o.item_id for o in outcomes if o.status == status]
