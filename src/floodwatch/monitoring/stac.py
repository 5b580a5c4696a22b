"""Watching an AOI through a STAC catalog: find new Sentinel-1 items, read only the AOI's window of their
COGs over HTTP, map them, record the results (and raise alerts). API search and windowed reads are
floodwatch.acquisition's, the layer `fetch` and `run` use.

`source` is a STAC API root (searched with pystac-client), or a static catalog / collection JSON (walked
with pystac), a saved search (a FeatureCollection) or one item's JSON, by URL or local path. Items already
processed for this AOI are skipped, so `watch` can run from cron as often as you like.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
from shapely.geometry.base import BaseGeometry

from ..acquisition.read import (BANDS, GDAL_HTTP_ENV, asset_href, band_assets,  # noqa: F401 (re-exported)
                                 check_header, check_units, detect_units, grid_for, has_vv_vh, read_item, to_db)
from ..acquisition.fetch import ORBIT_TAG
from ..acquisition.search import item_time, matches, search_api
from ..acquisition.signing import no_signing, planetary_computer_signer
from ..errors import AcquisitionError, MonitoringError
from ..inference.tiling import default_overlap
from ..io import atomic_path, check_output_dir
from .aoi import aoi_geometry, record_map_result
from .run import check_layers
from .store import Store, parse_time, utc_iso


@dataclass
class WatchOutcome:
    item_id: str
    acquired: str
    status: str  # 'mapped', 'skipped' (already processed), 'outside' (no pixels in the AOI), 'no VV+VH'
    record_ids: list[int]
    out_dir: Path | None = None


def _is_static(source: str) -> bool:
    return source.lower().endswith(".json") or Path(source).exists()


def find_items(source: str, collection: str, aoi: BaseGeometry, *, since: datetime | None = None,
               until: datetime | None = None) -> list[Any]:
    """pystac Items of `collection` whose footprint intersects `aoi` (EPSG:4326), acquired in [since, until]."""
    return _find(source, collection, aoi, since, until)[1]


def _find(source: str, collection: str, aoi: BaseGeometry, since: datetime | None,
          until: datetime | None) -> tuple[dict | None, list[Any]]:
    """(the collection's JSON for an API source, else None; the items)."""
    if not _is_static(source):  # a STAC API: the search of floodwatch.acquisition (what `fetch` uses)
        try:
            return search_api(source, collection, aoi, since, until, label=f"source: {source}")
        except AcquisitionError as exc:
            raise MonitoringError(str(exc)) from None
    items = [i for i in _static_items(source, collection) if matches(i, aoi, since, until)]
    return None, sorted(items, key=lambda i: (_acquired(i), i.id))


def _static_items(source: str, collection: str) -> list[Any]:
    """The items of `collection` in a static catalog or collection, a saved search (a FeatureCollection, as
    `stac-client search --save` writes it) or one item's JSON."""
    import pystac

    io = pystac.StacIO.default()
    try:
        doc = io.read_json(source)
        with warnings.catch_warnings():  # pystac's notes on migrating other collections' extensions
            warnings.simplefilter("ignore", UserWarning)
            if doc.get("type") == "FeatureCollection":
                found = list(pystac.ItemCollection.from_dict(doc, preserve_dict=False))
                root = None
            else:
                root = io.stac_object_from_dict(doc, href=source, preserve_dict=False)
    except Exception as exc:  # pystac raises many types for unreadable or non-STAC JSON
        kind = "" if not isinstance(exc, AttributeError) else " (a JSON list or value, not an object)"
        raise MonitoringError(f"source: {source}: cannot read the STAC catalog{kind} ({type(exc).__name__}: "
                              f"{exc})") from None
    if isinstance(root, pystac.Item):
        found = [root]
    if root is None or isinstance(root, pystac.Item):
        kept = [i for i in found if i.collection_id in (None, collection)]
        if found and not kept:
            others = sorted({str(i.collection_id) for i in found})
            raise MonitoringError(f"collection: '{collection}' not found in {source} (its items are of "
                                  f"{', '.join(others)})")
        return kept
    if isinstance(root, pystac.Collection) and root.id == collection:
        coll = root
    else:
        coll = root.get_child(collection, recursive=True) if isinstance(root, pystac.Catalog) else None
        if coll is None:
            raise MonitoringError(f"collection: '{collection}' not found in {source}")
    api = coll.get_single_link("items")
    if api is not None and not coll.get_links("item") and not coll.get_links("child"):
        # a collection document of a STAC API: its items are behind the API's search, not linked one by one
        root_link = coll.get_single_link("root")  # its target, unresolved: resolving it is a request
        at = (root_link or api).get_target_str() or ""
        at = at if root_link is not None else at.rsplit("/collections/", 1)[0]
        raise MonitoringError(f"source: {source} is a collection of a STAC API, whose items are not linked from "
                              f"it; give the API root ({at}) as `source`")
    return list(coll.get_items(recursive=True))


def _signer(source: str, collection: dict | None) -> Callable[[str], str]:
    """Planetary Computer collections (they name their blob storage account) get SAS-signed hrefs."""
    if collection is not None and collection.get("msft:storage_account"):
        return planetary_computer_signer(collection, label=f"source: {source}")
    return no_signing


def _acquired(item: Any) -> datetime:
    try:
        return parse_time(item_time(item).isoformat())
    except AcquisitionError as exc:
        raise MonitoringError(str(exc)) from None


def read_aoi_window(item: Any, aoi: BaseGeometry, out_path: Path, pad_px: int = 16,
                    sign: Callable[[str], str] = no_signing, units: str = "auto") -> Path | None:
    """Read only the window of the item's VV/VH COGs that covers the AOI (HTTP range requests for remote
    files) into a 2-band GeoTIFF in dB; None when the item has no pixels over the AOI. `units`: the assets'
    ('db', 'linear' power, or 'auto': linear unless most values are negative, as `fetch` decides)."""
    import rasterio

    key = "?"
    try:
        key, _, asset = band_assets(item)[0]
        with rasterio.Env(**GDAL_HTTP_ENV), rasterio.open(sign(asset_href(item, key, asset))) as src:
            check_header(src, item.id, key, units)
            grid = grid_for(aoi, src.crs, src.transform, pad_px)
        data = read_item(item, grid, sign, units=units)
    except AcquisitionError as exc:
        raise MonitoringError(str(exc)) from None
    except rasterio.errors.RasterioIOError as exc:
        raise MonitoringError(f"STAC item '{item.id}': cannot read {key} ({exc})") from None
    if not np.isfinite(data).any():
        return None
    units_in = detect_units(data) if units == "auto" else units
    try:
        if units != "auto":  # detected units agree with the pixels by construction
            check_units(data, f"STAC item '{item.id}'", units_in)
    except AcquisitionError as exc:  # UnitsError is one
        raise MonitoringError(str(exc)) from None
    data = to_db(data, units_in)
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=len(BANDS), dtype="float32",
                   crs=grid.crs, transform=grid.transform, nodata=float("nan"), compress="deflate")
    with atomic_path(out_path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            dst.descriptions = BANDS
            orbit = item.properties.get("sat:orbit_state")
            dst.update_tags(units="dB", source_units=units_in,
                            **({ORBIT_TAG: str(orbit).lower()} if orbit else {}))  # terrain's look side
    return out_path


def watch_aoi(store: Store, aoi_name: str, source: str, collection: str, predictor: Any, out_dir: str | Path, *,
              since: datetime | str | None = None, units: str = "auto", tile: int = 512, overlap: int | None = None,
              batch: int = 4, threshold: float = 0.5, progress: bool = True, notify: bool = True,
              console: Any = None, terrain: Any = None, water_mask: str | Path | None = None) -> list[WatchOutcome]:
    """Map every new item over the AOI, oldest first; record each (and alert) and mark it processed.
    `units`: the items' pixels, 'db', 'linear' power (Planetary Computer's sentinel-1-rtc) or 'auto' (per item:
    linear unless most values are negative); windows are stored in dB. `overlap` None: `default_overlap(tile)`.
    `terrain` and `water_mask` are map_scene's, as in `run_aoi` (windows carry the item's pass for terrain)."""
    from ..mapping import map_scene

    if units not in ("auto", "db", "linear"):
        raise MonitoringError(f"units: '{units}' is not one of auto, db, linear")
    overlap = default_overlap(tile) if overlap is None else overlap
    aoi = aoi_geometry(store.get_aoi(aoi_name))
    since_dt = parse_time(since, "since") if isinstance(since, str) else since
    out_dir = check_output_dir(out_dir)  # before any download: a file in the way fails now
    check_layers(terrain, water_mask)  # a missing or wrong layer fails before the first item, as in `run`
    # `run` marks its items under the API root without a trailing '/': the same catalog, however it is typed,
    # is one key (the key as given is still honoured: databases written before hold it)
    key = f"{source.rstrip('/') or source}#{collection}"
    keys = {key, f"{source}#{collection}"}
    outcomes = []
    coll, items = _find(source, collection, aoi, since_dt, None)
    if items and not any(has_vv_vh(i) for i in items):  # a catalog whose assets floodwatch cannot name, not
        try:                                              # HH passes among dual-pol ones: said, not exit 0
            band_assets(items[0])
        except AcquisitionError as exc:
            raise MonitoringError(f"{exc}; none of the {len(items)} item(s) found has VV and VH assets") from None
    sign = None  # made at the first read: a token is asked for only when there is something to read
    for item in items:
        acquired = utc_iso(_acquired(item))
        if any(store.is_processed(k, item.id, aoi_name) for k in keys):
            outcomes.append(WatchOutcome(item.id, acquired, "skipped", []))
            continue
        # an HH-only pass in a mixed catalog: left out, as `fetch` does, rather than stopping every watch; not
        # marked processed, so an item whose assets the catalog completes later is still mapped
        if not has_vv_vh(item):
            outcomes.append(WatchOutcome(item.id, acquired, "no VV+VH", []))
            continue
        if sign is None:
            try:
                sign = _signer(source, coll)
            except AcquisitionError as exc:
                raise MonitoringError(str(exc)) from None
        window = read_aoi_window(item, aoi, out_dir / "inputs" / f"{_safe(item.id)}.tif", sign=sign, units=units)
        if window is None:
            store.mark_processed(key, item.id, aoi_name)
            outcomes.append(WatchOutcome(item.id, acquired, "outside", []))
            continue
        try:
            result = map_scene(window, predictor, out_dir / "maps", tile=tile, overlap=overlap, batch=batch,
                               threshold=threshold, progress=progress, terrain=terrain, water_mask=water_mask)
        except BaseException:  # e.g. refused as linear power told to be dB: no window tagged dB is left
            window.unlink(missing_ok=True)
            raise
        ids = record_map_result(store, result, acquired=acquired, scene_id=item.id, aois=[aoi_name],
                                notify=notify, console=console)
        store.mark_processed(key, item.id, aoi_name)
        outcomes.append(WatchOutcome(item.id, acquired, "mapped", ids, result.out_dir))
    return outcomes


def _safe(item_id: str) -> str:
    """An item id as a file name (ids may contain '/' or ':')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id).lstrip(".") or "item"
