"""`run`: from "a flood at X on day D" to a flood map, a row in the AOI's history and its alerts, in one call:
fetch (acquisition) -> map (mapping.map_scene) -> record (aoi.record_map_result, which raises alerts)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..acquisition import FetchedScene, fetch
from ..acquisition.fetch import parse_day
from ..acquisition.search import Retries
from ..acquisition.sources import Source, resolve_source
from ..errors import MonitoringError
from ..inference.tiling import check_prediction, check_tiling, default_overlap
from ..io import check_output_dir
from .aoi import add_aoi, aoi_geometry, record_map_result
from .store import Store


@dataclass
class RunResult:
    aoi: str
    scene: FetchedScene
    map: Any  # mapping.MapResult
    record_ids: list[int]
    alert_ids: list[int] = field(default_factory=list)
    manifest: Path | None = None


def ensure_aoi(store: Store, name: str, geometry: BaseGeometry | None, *, threshold_km2: float | None = None,
               rise_percent: float | None = None) -> BaseGeometry:
    """The AOI's geometry: the stored one, or `geometry` stored under `name` first.

    A stored AOI of that name with another geometry is an error (its history would mix two places), and so are
    alert rules other than its stored ones."""
    if store.has_aoi(name):
        stored = aoi_geometry(store.get_aoi(name))
        if geometry is not None and stored.symmetric_difference(geometry).area > 1e-6 * stored.area:
            raise MonitoringError(f"name: AOI '{name}' is already stored with another geometry; give another "
                                  "`name`, or use `aoi` NAME to run over the stored one")
        record = store.get_aoi(name)
        # a rule given for a stored AOI would be dropped while the user believes it set: the same rule (a cron
        # line that repeats it) is fine, another one is refused
        for opt, value, kept in (("threshold_km2", threshold_km2, record.threshold_km2),
                                 ("rise_percent", rise_percent, record.rise_percent)):
            if value is not None and value != kept:
                stored_rule = f"is stored with {opt} {kept}" if kept is not None else f"has no {opt} rule"
                raise MonitoringError(f"{opt}: AOI '{name}' {stored_rule}; a stored AOI keeps its rules (`aoi add` "
                                      "with replace sets new ones, and starts its history afresh)")
        return stored
    if geometry is None:
        raise MonitoringError(f"aoi: '{name}' is neither a stored AOI nor a GeoJSON file")
    return aoi_geometry(add_aoi(store, name, mapping(geometry), threshold_km2=threshold_km2,
                                rise_percent=rise_percent))


def check_layers(terrain: Any, water_mask: str | Path | None) -> None:
    """map_scene opens these only after the download: a local path that is not there, or a public layer of
    the wrong kind, fails here instead, before anything is fetched or written."""
    from ..errors import data_errors_of
    from ..mapping.terrain_sources import resolve_layer

    given = [("water_mask", water_mask, "water", "water mask")]
    if terrain is not None:
        terrain.validate()
        given += [("hand", terrain.hand, "hand", "HAND"), ("dem", terrain.dem, "elevation", "DEM"),
                  ("exclude", terrain.exclude, "water", "exclusion mask")]
    for option, layer, kind, what in given:
        if layer is not None:
            with data_errors_of(option):
                resolve_layer(layer, kind, what)


def run_aoi(store: Store, name: str, day: Any, predictor: Any, out_dir: str | Path, *,
            geometry: BaseGeometry | None = None, source: Source | str | None = None, days: int = 1,
            min_coverage: float = 0.5, threshold_km2: float | None = None, rise_percent: float | None = None,
            tile: int = 512, overlap: int | None = None, batch: int = 4, threshold: float = 0.5,
            retries: Retries = Retries(), progress: bool = True, notify: bool = True,
            console: Any = None, terrain: Any = None, water_mask: str | Path | None = None) -> RunResult:
    """Fetch the first acquisition over AOI `name` in [day, day + days), map it, record it, raise alerts.

    `geometry` (EPSG:4326) defines the AOI when `name` is not stored yet. `terrain`: a
    `floodwatch.mapping.Terrain` (exclusion, depth), and `water_mask` (permanent water, counted apart from the
    flood), as `map_scene` takes them; `overlap` None: `default_overlap(tile)`. Outputs: `out_dir/inputs/` (what
    `fetch` writes) and `out_dir/maps/<date>/scene/` (what `map` writes). A run that fails leaves the database as
    it was: an AOI it stored is removed again."""
    from ..mapping import map_scene

    if days < 1:
        raise MonitoringError(f"days: {days} must be at least 1")
    overlap = default_overlap(tile) if overlap is None else overlap
    check_tiling(tile, overlap)  # before the download, not after it
    check_prediction(threshold, batch)
    check_layers(terrain, water_mask)
    src = source if isinstance(source, Source) else resolve_source(source)
    start = parse_day(day, "date")
    end = start + timedelta(days=days) - timedelta(microseconds=1)
    out_dir = check_output_dir(out_dir)  # before the AOI is stored and the download starts
    new = not store.has_aoi(name)
    # stored now, so that a bad name or geometry fails before the download; a run that then fails takes it out
    # again (with anything recorded under it), leaving the database as it was
    aoi = ensure_aoi(store, name, geometry, threshold_km2=threshold_km2, rise_percent=rise_percent)
    try:
        fetched = fetch(aoi, start, end, out_dir / "inputs", source=src, min_coverage=min_coverage, first_only=True,
                        retries=retries, progress=progress, console=console)
        scene = fetched.scenes[0]
        result = map_scene(scene.path, predictor, out_dir / "maps" / scene.key, tile=tile, overlap=overlap,
                           batch=batch, threshold=threshold, progress=progress, terrain=terrain, water_mask=water_mask)
        ids = [i["id"] for i in scene.items]
        scene_id = ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"
        before = {a["id"] for a in store.alerts(name)}
        record_ids = record_map_result(store, result, acquired=scene.acquired, scene_id=scene_id, aois=[name],
                                       notify=notify, console=console)
        # `aoi watch` over the same catalog skips what `run` already recorded
        for item_id in ids:
            store.mark_processed(f"{src.url}#{src.collection}", item_id, name)
    except BaseException:  # Ctrl-C and SIGTERM too
        if new:
            store.remove_aoi(name)
        raise
    alerts = [a["id"] for a in store.alerts(name) if a["id"] not in before]
    return RunResult(name, scene, result, record_ids, alerts, fetched.manifest)
