"""Areas of interest: defining them, and recording each map/change run's flood inside them.

Everything is measured in EPSG:4326 on the WGS84 ellipsoid: flood polygons are clipped to the AOI and
their geodesic area taken; permanent water and valid coverage come from the run's class mask, clipped to
the AOI and polygonised, so a UTM scene and a lon/lat scene give the same km².
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import shapely
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidArgumentError, MonitoringError
from ..io import read_text
from ..lonlat import WIDE_EDGE, fold_longitudes, has_wide_edge, polygonal, split_antimeridian
from .geo import (EMPTY, from_wgs84, geodesic_area_km2, mask_polygons, read_geojson_geometries,
                  read_geojson_geometry, to_wgs84, union_valid)
from .store import AOIRecord, Store, acquisition_time, sqlite_path

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Class codes of mapping's flood_mask raster (overridden by stats['mask_codes'] when a run records them).
MASK_CODES = {"not_water": 0, "flood": 1, "permanent_water": 2, "nodata": 255}
#: change_mask.tif written by detect_change
CHANGE_CODES = {"not_water": 0, "flood": 1, "nodata": 255}


def add_aoi(store: Store, name: str, geojson: str | Path | dict[str, Any], *, threshold_km2: float | None = None,
            rise_percent: float | None = None, webhooks: str | Iterable[str] = (), replace: bool = False) -> AOIRecord:
    """Validate and store an AOI (polygons in EPSG:4326 lon/lat, as GeoJSON requires).

    geojson: a GeoJSON file, a GeoJSON dict, or a geometry object that has one (`__geo_interface__`: shapely's).
    webhooks: URLs (one URL alone is taken as one webhook) called with each alert; alerts need a rule,
    `threshold_km2` or `rise_percent`: webhooks without one are stored with a warning, as no alert reaches them.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MonitoringError(f"name: {name!r} is not an AOI name; use 1-64 letters, digits, '_', '-' or '.', "
                              "starting with a letter or digit")
    if hasattr(geojson, "__geo_interface__"):
        geojson = geojson.__geo_interface__
    if not isinstance(geojson, (str, os.PathLike, dict)):
        raise InvalidArgumentError(f"geojson: expected a GeoJSON file path, a GeoJSON dict or a geometry, got "
                                   f"{type(geojson).__name__}")
    threshold_km2, rise_percent = _rule(threshold_km2, "threshold_km2"), _rule(rise_percent, "rise_percent")
    webhooks = _webhook_list(webhooks)
    given = read_geojson_geometries(geojson)
    geom = polygonal(union_valid(given))
    label = str(geojson) if not isinstance(geojson, dict) else f"AOI '{name}'"
    if geom.is_empty:
        raise MonitoringError(f"{label}: no polygon in the GeoJSON (an AOI needs an area)")
    geom = _wrap_longitudes(geom, label)
    # An edge over 180° of longitude is a 2° box across the antimeridian or a 358° band round the world, and
    # nothing in the file says which (the geodesic area would take the short way, the matching the flat one):
    # refused rather than guessed. Outlines split at 180° (RFC 7946 §3.1.9) have no such edge.
    if has_wide_edge(shapely.GeometryCollection(given)):
        raise MonitoringError(f"{label}: {WIDE_EDGE}")
    from .alerts import check_webhook  # httpx: loaded only where webhooks are handled

    hooks = [check_webhook(h) for h in webhooks]
    if hooks and threshold_km2 is None and rise_percent is None:
        warnings.warn("webhooks: no rule is set (`threshold_km2` or `rise_percent`), so no alert will be sent to "
                      "them", stacklevel=2)
    record = AOIRecord(name=name, geometry=mapping(geom), area_km2=geodesic_area_km2(geom),
                       threshold_km2=threshold_km2, rise_percent=rise_percent, webhooks=hooks)
    store.add_aoi(record, replace=replace)
    return store.get_aoi(name)


def _wrap_longitudes(geom: BaseGeometry, label: str) -> BaseGeometry:
    """A lon/lat outline with longitudes brought into [-180, 180]. Web maps (geojson.io, Leaflet) give an area
    drawn across the antimeridian as 170..190: unambiguous, unlike an edge from 179 to -179, so it is cut at 180°
    and the part beyond moved a turn back, as RFC 7946 §3.1.9 has it."""
    minx, miny, maxx, maxy = geom.bounds
    if minx < -360 or maxx > 360 or maxx - minx > 360 or miny < -90 or maxy > 90:
        raise MonitoringError(f"{label}: coordinates {geom.bounds} are not lon/lat degrees (GeoJSON is EPSG:4326; "
                              "a file in another CRS needs a 'crs' member naming it)")
    return geom if minx >= -180 and maxx <= 180 else fold_longitudes(geom)


def _rule(value: Any, opt: str) -> float | None:
    # a str would reach numpy (a TypeError), a bool count as 1
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or not (np.isfinite(value) and value >= 0)):
        raise MonitoringError(f"{opt}: must be a number >= 0 (got {value!r})")
    return None if value is None else float(value)


def _webhook_list(webhooks: Any) -> list[Any]:
    if webhooks is None:
        return []
    if isinstance(webhooks, str):  # one URL, not its characters one by one
        return [webhooks]
    if not isinstance(webhooks, Iterable):
        raise MonitoringError(f"webhooks: expected a URL or a list of URLs, got {type(webhooks).__name__}")
    return list(webhooks)


def aoi_geometry(aoi: AOIRecord) -> BaseGeometry:
    return shape(aoi.geometry)


#: mapping.MapResult.paths uses short keys; the store uses these (change results already do).
PATH_ALIASES = {"mask": "flood_mask", "probability": "flood_probability", "polygons": "flood_polygons"}


def _get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def result_paths(result: Any) -> dict[str, Path]:
    return {PATH_ALIASES.get(k, k): Path(v) for k, v in (_get(result, "paths") or {}).items() if v}


def result_footprint(result: Any) -> tuple[BaseGeometry, Path | None]:
    """(the run's footprint in EPSG:4326, its class-mask raster if any)."""
    paths = result_paths(result)
    stats = _get(result, "stats") or {}
    mask_path = paths.get("flood_mask") or paths.get("change_mask")
    if mask_path is not None and mask_path.is_file():
        import rasterio

        with warnings.catch_warnings():  # a picture's outputs: refused below in one line, without this first
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            try:
                with rasterio.open(mask_path) as src:
                    crs, bounds = src.crs, src.bounds
            except rasterio.errors.RasterioError as exc:
                raise MonitoringError(f"{mask_path}: cannot read the class mask ({str(exc).splitlines()[0]})") \
                    from None
        if crs is None:
            raise MonitoringError(f"{mask_path}: not georeferenced, so it cannot be placed in an AOI")
        footprint = box(*bounds)
        crs = crs.to_string()
    elif stats.get("bounds") and stats.get("crs"):
        footprint, crs = box(*stats["bounds"]), stats["crs"]
    else:
        raise MonitoringError("result: neither a georeferenced mask nor stats bounds/crs to place it on the map")
    footprint = to_wgs84(shapely.segmentize(footprint, max(footprint.length / 400, 1e-9)), crs)
    return split_antimeridian(footprint), mask_path


def _mask_areas(mask_path: Path, aoi_geom: BaseGeometry, codes: dict[str, int]) -> dict[str, float]:
    """km² of valid pixels, flood and permanent water of a class raster inside the AOI (ellipsoidal)."""
    import rasterio
    from rasterio import features, windows

    try:
        with rasterio.open(mask_path) as src:
            local = from_wgs84(aoi_geom, src.crs.to_string())
            w = windows.from_bounds(*local.bounds, transform=src.transform)
            c0, r0 = max(0, math.floor(w.col_off)), max(0, math.floor(w.row_off))
            c1 = min(src.width, math.ceil(w.col_off + w.width))
            r1 = min(src.height, math.ceil(w.row_off + w.height))
            if c1 <= c0 or r1 <= r0:
                return {"valid_km2": 0.0, "permanent_water_km2": 0.0, "flood_km2": 0.0}
            win = windows.Window(c0, r0, c1 - c0, r1 - r0)
            data = src.read(1, window=win)
            tr = src.window_transform(win)
            crs = src.crs.to_string()
    except rasterio.errors.RasterioError as exc:  # GDAL's own text ("Read failed. See previous ...") names no file
        raise MonitoringError(f"{mask_path}: cannot read the class mask ({str(exc).splitlines()[0]})") from None
    inside = features.geometry_mask([local], out_shape=data.shape, transform=tr, invert=True, all_touched=False)
    out = {"valid_km2": (data != codes["nodata"]) & inside}
    if "permanent_water" in codes:
        out["permanent_water_km2"] = (data == codes["permanent_water"]) & inside
    out["flood_km2"] = (data == codes["flood"]) & inside
    return {k: geodesic_area_km2(split_antimeridian(mask_polygons(m, tr, crs)).intersection(aoi_geom))
            for k, m in out.items()}


def check_recordable(store: Store, scene_id: str, acquired: datetime | str, kind: str = "map", *,
                     footprint: BaseGeometry | None = None, aois: Iterable[str] | None = None) -> None:
    """Refuse what record_map_result would refuse without `replace`: `scene_id` already recorded (as `kind`)
    under another acquisition time in one of `aois`, by default the AOIs `footprint` (EPSG:4326, e.g.
    `grid_footprint` of the scene's header) intersects. Commands call it before their work, so a conflict
    leaves no outputs unrecorded."""
    acquired = acquisition_time(acquired)
    if aois is None:
        aois = [a.name for a in store.aois() if footprint is None or aoi_geometry(a).intersects(footprint)]
    for name in aois:
        old = store.find_record(name, scene_id, kind)
        if old is not None and old["acquired"] != acquired:
            raise MonitoringError(f"AOI '{name}': {kind} '{scene_id}' is already recorded as acquired "
                                  f"{old['acquired']} (record {old['id']}); recording it as {acquired} would "
                                  "replace that: give it another `scene_id`, or `replace` to correct its time")


def check_recordable_at(db: str | None, scenes: Iterable[tuple[str, BaseGeometry]], acquired: datetime | str,
                        kind: str = "map") -> None:
    """check_recordable for each (scene_id, footprint) against the database at `db` (None: the default). A SQLite
    file that is not there yet holds nothing to meet; any other database that cannot be opened is an error
    now, before the work whose recording would fail. `scenes` is read only when the database exists (it may
    be a generator reading headers)."""
    path = sqlite_path(db)
    if path is not None and not path.exists():
        return
    with Store(db, create=False) as store:
        for scene_id, footprint in scenes:
            check_recordable(store, scene_id, acquired, kind, footprint=footprint)


def grid_footprint(bounds: Sequence[float], crs: Any) -> BaseGeometry:
    """A raster's bounds (in `crs`) as its footprint in EPSG:4326, as record_map_result places results."""
    return result_footprint({"stats": {"bounds": list(bounds), "crs": str(crs)}, "paths": {}})[0]


def record_map_result(store: Store, result: Any, *, acquired: datetime | str, scene_id: str, kind: str = "map",
                      aois: Iterable[str] | None = None, notify: bool = True, console: Any = None,
                      replace: bool = False) -> list[int]:
    """Record a map (or change) run for every AOI it intersects; returns the record ids.

    `result` is a mapping MapResult or change ChangeResult (or a dict with 'stats' and 'paths'). With
    `notify`, the AOIs' alert rules are checked and webhooks called (see alerts.check_alerts). `acquired`
    must lie between Sentinel-1's launch and now (store.acquisition_time). Recording a scene again updates its
    record; under another acquisition time that is an error unless `replace` (the time is being corrected)."""
    acquired = acquisition_time(acquired)
    footprint, mask_path = result_footprint(result)
    # absolute: the web map and later commands run from other folders than the one this run was recorded from
    paths = {k: str(v.resolve()) for k, v in result_paths(result).items()}
    stats = _get(result, "stats") or {}
    polys_path = paths.get("flood_polygons")
    floods_all = read_geojson_geometry(Path(polys_path)) if polys_path and Path(polys_path).is_file() else None
    floods_all = None if floods_all is None else split_antimeridian(floods_all)
    codes = stats.get("mask_codes") or (CHANGE_CODES if kind == "change" else MASK_CODES)
    if not (isinstance(codes, dict) and all(isinstance(codes.get(k), int) for k in ("flood", "nodata"))):
        raise MonitoringError(f"stats: mask_codes must map 'flood' and 'nodata' to pixel values, got {codes!r}"[:200])
    names = list(aois) if aois is not None else [a.name for a in store.aois()]
    targets = [a for a in map(store.get_aoi, names) if aoi_geometry(a).intersects(footprint)]
    if not replace:  # every AOI is checked before any is recorded: all of them or none
        check_recordable(store, scene_id, acquired, kind, aois=[a.name for a in targets])
    rows = []  # every AOI measured before any is written: a mask unreadable in one AOI's window records none
    for aoi in targets:
        name, geom = aoi.name, aoi_geometry(aoi)
        areas = _mask_areas(mask_path, geom, codes) if mask_path is not None and mask_path.is_file() else {}
        if floods_all is not None:
            floods = shapely.make_valid(floods_all).intersection(geom)
            flooded = geodesic_area_km2(floods)
        elif mask_path is not None:
            floods, flooded = EMPTY, areas.get("flood_km2", 0.0)
        else:
            raise MonitoringError(f"result: no flood polygons or mask to measure in AOI '{name}'")
        valid = areas.get("valid_km2")
        rows.append(dict(aoi=name, acquired=acquired, scene_id=scene_id, kind=kind, flooded_km2=flooded,
                         permanent_water_km2=areas.get("permanent_water_km2"), valid_km2=valid,
                         coverage=None if valid is None else min(1.0, valid / max(aoi.area_km2, 1e-12)),
                         floods=mapping(floods) if not floods.is_empty else mapping(EMPTY), paths=paths))
    ids = store.add_records(rows)
    if notify:
        from .alerts import check_alerts

        for rid in ids:
            check_alerts(store, rid, console=console)
    return ids


def record_output_dir(store: Store, out_dir: str | Path, *, acquired: datetime | str, scene_id: str | None = None,
                      kind: str | None = None, notify: bool = True, replace: bool = False) -> list[int]:
    """Record a finished map or change output folder (its stats.json and files) after the fact (as
    record_map_result, which says what `acquired` and `replace` may be)."""
    acquired = acquisition_time(acquired)  # a bad time is named before the folder is read
    out_dir = Path(out_dir)
    stats_path = out_dir / "stats.json"
    if not stats_path.is_file():
        raise MonitoringError(f"{out_dir}: no stats.json (not a floodwatch map or change output folder)")
    try:
        stats = json.loads(read_text(stats_path, error=MonitoringError))
    except RecursionError:
        raise MonitoringError(f"{stats_path}: JSON nested too deeply") from None
    except ValueError as exc:
        raise MonitoringError(f"{stats_path}: not valid JSON ({exc})") from None
    if not isinstance(stats, dict):
        raise MonitoringError(f"{stats_path}: expected a JSON object of run statistics, got a JSON "
                              f"{type(stats).__name__}")
    named = stats.get("paths") or {}
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
        raise MonitoringError(f"{stats_path}: 'paths' must be an object of file names")
    is_change = (out_dir / "change_mask.tif").is_file()
    kind = kind or ("change" if is_change else "map")
    candidates = {"flood_mask": "flood_mask.tif", "flood_probability": "flood_probability.tif",
                  "flood_polygons": "flood_polygons.geojson", "quicklook": "quicklook.png",
                  "change_mask": "change_mask.tif", "change_score": "change_score.tif"}
    paths = {k: out_dir / v for k, v in candidates.items() if (out_dir / v).is_file()}
    if is_change and (out_dir / "change_polygons.geojson").is_file():
        paths["flood_polygons"] = out_dir / "change_polygons.geojson"
    for k, v in named.items():  # a run may name its own files
        p = Path(v) if Path(v).is_absolute() else out_dir / v
        if p.is_file():
            paths.setdefault(k, p)
    paths["stats"] = stats_path
    return record_map_result(store, {"stats": stats, "paths": paths}, acquired=acquired,
                             scene_id=scene_id or stats.get("scene_id") or out_dir.name, kind=kind, notify=notify,
                             replace=replace)
