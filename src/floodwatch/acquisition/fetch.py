"""`fetch`: search a catalog for Sentinel-1 over an AOI, read each date's window, write VV/VH dB GeoTIFFs
and a JSON of what was fetched and from where."""
from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import AcquisitionError, CoverageError, FloodwatchError, NoItemsError, UnitsError
from ..io import atomic_path, check_output_dir
from ..lonlat import WIDE_EDGE, has_wide_edge
from .read import (BANDS, INTEGER_TYPES, Grid, aoi_coverage, asset_data_type, asset_href, band_assets,
                   check_units, detect_units, fill_gaps, grid_for, has_vv_vh, read_item, to_db)
from .search import Retries, item_time, search_api, utc_iso
from .signing import missing_key_note, no_signing, planetary_computer_signer, redact
from .sources import GRD_ADVICE, Source, resolve_source

MANIFEST = "fetch.json"
#: the scene tag mapping's terrain reads the pass from (mapping.terrain.scene_metadata; docs/terrain.md)
ORBIT_TAG = "orbit_direction"
ORBITS = ("ascending", "descending")
MAX_PIXELS = 1e8  # per date and band: 800 MB of float32 for VV+VH, about 100 x 100 km at 10 m
SCENE = "scene.tif"


@dataclass
class FetchedScene:
    key: str  # folder name: the UTC date, plus the relative orbit when one date has several passes
    path: Path
    acquired: str  # first item's time, ISO UTC
    coverage: float
    units_in: str
    items: list[dict[str, Any]]
    orbit: str | None = None  # the pass (ascending/descending) of all the items; None when they differ or do not say
    orbit_note: str | None = None  # why `orbit` is None, when the items disagree


@dataclass
class FetchResult:
    out_dir: Path
    manifest: Path
    scenes: list[FetchedScene] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def parse_bbox(text: str) -> BaseGeometry:
    """'W,S,E,N' in degrees -> a polygon."""
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise AcquisitionError(f"bbox: '{text}' is not four numbers W,S,E,N") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise AcquisitionError(f"bbox: '{text}' is not W,S,E,N in degrees with W < E and S < N")
    # W < E says which way round: no edge may span 180° of longitude, where GeoJSON readers would have to guess
    return shapely.segmentize(box(w, s, e, n), 90.0)


def read_aoi(path: str | Path) -> BaseGeometry:
    """The union of the polygons of a GeoJSON file (geometry, Feature or FeatureCollection), EPSG:4326."""
    path = Path(path)
    if path.is_dir():
        raise AcquisitionError(f"aoi: {path}: is a folder, not a GeoJSON file")
    try:
        doc = json.loads(path.read_text())
        kind = doc.get("type")
        feats = doc["features"] if kind == "FeatureCollection" else [doc] if kind == "Feature" else [{"geometry": doc}]
        given = [shape(f["geometry"]) for f in feats if f.get("geometry")]
        geoms = [shapely.make_valid(g) for g in given]
    except FileNotFoundError:
        raise AcquisitionError(f"aoi: {path}: file not found") from None
    except (ValueError, KeyError, TypeError, AttributeError, OSError, shapely.errors.GEOSException) as exc:
        raise AcquisitionError(f"aoi: {path}: not a GeoJSON geometry ({type(exc).__name__}: {exc})") from None
    geom = shapely.union_all([g for g in geoms if g.area > 0]) if geoms else shapely.Polygon()
    if geom.is_empty:
        raise AcquisitionError(f"aoi: {path}: no polygon (an AOI needs an area)")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise AcquisitionError(f"aoi: {path}: coordinates are not lon/lat degrees (GeoJSON is EPSG:4326)")
    if has_wide_edge(shapely.GeometryCollection(given)):  # the search would cover a band round the world
        raise AcquisitionError(f"aoi: {path}: {WIDE_EDGE}")
    return geom


def parse_day(text: str | date | datetime, opt: str) -> datetime:
    """A date or ISO time -> aware UTC datetime (a bare date is its midnight)."""
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=timezone.utc)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day, tzinfo=timezone.utc)
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AcquisitionError(f"{opt}: '{text}' is not a date (YYYY-MM-DD) or ISO-8601 time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def day_range(start: Any, end: Any) -> tuple[datetime, datetime]:
    """[start, end] where a bare end date means the whole of that day."""
    lo = parse_day(start, "start")
    hi = parse_day(end, "end")
    if isinstance(end, str) and len(end.strip()) == 10:
        hi = hi + timedelta(days=1) - timedelta(microseconds=1)
    if hi < lo:
        raise AcquisitionError(f"end: {end} is before `start` {start}")
    return lo, hi


def fetch(aoi: BaseGeometry, start: Any, end: Any, out_dir: str | Path, *, source: Source | str | None = None,
          min_coverage: float = 0.5, pad_px: int = 16, first_only: bool = False, retries: Retries = Retries(),
          progress: bool = True, console: Any = None) -> FetchResult:
    """Fetch Sentinel-1 VV/VH over `aoi` (EPSG:4326) acquired in [start, end] into `out_dir`.

    One `<date>/scene.tif` (2 bands, VV and VH, float32 dB, NaN nodata) per acquisition date, and
    `fetch.json`. Dates whose items cover less than `min_coverage` of the AOI are skipped (with a warning);
    none left is a CoverageError. `first_only`: stop after the first date written. A date that fails after
    others were written: `fetch.json` lists those, with the failure (`failed`, `not_attempted`), and the
    error is raised (its note names the manifest); one that fails before any leaves the folder as it was.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    src = source if isinstance(source, Source) else resolve_source(source)
    if not 0.0 <= min_coverage <= 1.0:
        raise AcquisitionError(f"min_coverage: {min_coverage} must be between 0 and 1")
    since, until = day_range(start, end)
    out_dir = check_output_dir(out_dir)  # a file or a read-only place in the way fails now, not after the download
    label = f"{src.name} ({src.url}, {src.collection})" if src.name != src.url else f"{src.url} ({src.collection})"
    if src.units == "dn":  # refuse before any request: these numbers are not backscatter
        raise UnitsError(f"{label}: serves uncalibrated GRD digital numbers, not backscatter; {GRD_ADVICE}")
    coll, items = search_api(src.url, src.collection, aoi, since, until, label=label, access=src.access,
                             retries=retries)
    when = f"between {utc_iso(since)} and {utc_iso(until)}"
    if not items:
        raise NoItemsError(f"{label}: no Sentinel-1 items over the AOI {when}")
    usable = [i for i in items if has_vv_vh(i)]
    if not usable:
        pols = sorted({p for i in items for p in i.properties.get("sar:polarizations", [])})
        found = f"polarisations: {', '.join(pols) or 'unknown'}"
        # an item that says VV and VH, and lacks an asset: name what it has (not an HH-only item's)
        listing = next((i for i in items if set(BANDS) <= set(i.properties.get("sar:polarizations", []))), None)
        if listing is not None:
            found = f"they list VV and VH, but '{listing.id}' has the assets {', '.join(sorted(listing.assets))}"
        raise NoItemsError(f"{label}: {len(items)} item(s) over the AOI {when}, none with VV and VH "
                           f"({found}); floodwatch needs VV+VH")
    for item in usable:
        types = {asset_data_type(a) for _, _, a in band_assets(item)}
        if src.units == "auto" and types & set(INTEGER_TYPES):
            raise UnitsError(f"STAC item '{item.id}': {'/'.join(sorted(t for t in types if t))} pixels are "
                             f"uncalibrated GRD digital numbers, not backscatter; {GRD_ADVICE}")
    sign = no_signing
    if src.signing == "planetary-computer":
        note = missing_key_note(coll)
        if note:
            console.print(note, highlight=False)
        sign = planetary_computer_signer(coll, label=label, retries=retries)
    result = FetchResult(out_dir, out_dir / MANIFEST)
    groups = _group(usable)
    done = 0  # dates finished, written or skipped
    try:
        with _progress(progress, sum(len(g) for g in groups.values())) as bar:
            for key, group in groups.items():
                scene = _fetch_group(key, group, aoi, out_dir, sign, src, pad_px, min_coverage, result, console,
                                     bar)
                done += 1
                if scene is not None:
                    result.scenes.append(scene)
                    if first_only:
                        break
    except (Exception, KeyboardInterrupt) as exc:
        # scenes already written keep their provenance (and replace an earlier run's fetch.json, which would
        # describe other scenes); the error is still the caller's
        keys = list(groups)
        if result.scenes and done < len(keys):
            failure = {"failed": {"key": keys[done], "items": [i.id for i in groups[keys[done]]],
                                  "error": _error_text(exc)}, "not_attempted": keys[done + 1:]}
            n = len(result.scenes)
            with contextlib.suppress(Exception):  # the fetch's own error is the one to report
                _write_manifest(result, src, aoi, since, until, min_coverage, failure)
                _note(exc, f"{result.manifest} lists the {n} scene{'s' * (n > 1)} written before {keys[done]}")
        raise
    if not result.scenes:
        best = max(result.skipped, key=lambda s: s["coverage"])
        raise CoverageError(f"{label}: the items {when} cover at most {100 * best['coverage']:.0f}% of the AOI "
                            f"({best['key']}), below `min_coverage` {100 * min_coverage:.0f}%")
    _write_manifest(result, src, aoi, since, until, min_coverage)
    return result


def _group(items: list[Any]) -> dict[str, list[Any]]:
    """Items by UTC date and relative orbit (one pass); keys are dates, '_r<orbit>' added where one date
    has more than one pass. Oldest first."""
    by: dict[tuple[str, Any], list[Any]] = {}
    for i in items:
        by.setdefault((item_time(i).strftime("%Y-%m-%d"), i.properties.get("sat:relative_orbit")), []).append(i)
    per_day: dict[str, int] = {}
    for day, _ in by:
        per_day[day] = per_day.get(day, 0) + 1
    return {(day if per_day[day] == 1 else f"{day}_r{orbit}"): g for (day, orbit), g in sorted(
        by.items(), key=lambda kv: (item_time(kv[1][0]), str(kv[0][1])))}


def _fetch_group(key, group, aoi, out_dir, sign, src, pad_px, min_coverage, result, console, bar):
    grid = _grid(group[0], aoi, sign, pad_px, src)
    data = None
    for item in group:  # one item in memory at a time besides the mosaic
        layer = read_item(item, grid, sign, access=src.access, units=src.units)
        data = layer if data is None else fill_gaps(data, layer)
        bar.advance()
    units_in = detect_units(data) if src.units == "auto" else src.units
    if src.units != "auto":  # detected units agree with the pixels by construction
        check_units(data, key, units_in)
    data = to_db(data, units_in)
    coverage = aoi_coverage(data, aoi, grid)
    if coverage < max(min_coverage, 1e-9):
        console.print(f"warning: {key}: the items cover {100 * coverage:.0f}% of the AOI, below the minimum coverage "
                      f"{100 * min_coverage:.0f}%: skipped", highlight=False)
        result.skipped.append({"key": key, "coverage": coverage, "items": [i.id for i in group]})
        return None
    if coverage < 0.999:
        console.print(f"warning: {key}: partial coverage, the items cover {100 * coverage:.0f}% of the AOI",
                      highlight=False)
    path = out_dir / key / SCENE
    orbit, note = _orbit(group)
    _write_scene(path, data, grid, units_in, orbit)
    return FetchedScene(key, path, utc_iso(item_time(group[0])), coverage, units_in,
                        [_item_record(i) for i in group], orbit, note)


def _orbit(group: list[Any]) -> tuple[str | None, str | None]:
    """(the items' common pass, or None; a note when they mix passes). Terrain takes the shadow and layover
    side from it, so a mosaic of both passes gets none rather than one that is wrong for part of it."""
    states = {str(i.properties.get("sat:orbit_state") or "").lower() for i in group}
    if len(states) == 1 and states <= set(ORBITS):
        return states.pop(), None
    if len(states & set(ORBITS)) > 1:
        return None, (f"items mix ascending and descending passes: no {ORBIT_TAG} tag written, "
                      "terrain flags both passes")
    return None, None


def _grid(item: Any, aoi: BaseGeometry, sign, pad_px: int, src: Source) -> Grid:
    """The AOI's grid in the first item's CRS and pixel lattice (read from its VV COG's header)."""
    import rasterio

    from .read import GDAL_HTTP_ENV, HttpLog, _gdal_error, check_header

    key, _, asset = band_assets(item)[0]
    with HttpLog() as log:
        try:
            with rasterio.Env(**GDAL_HTTP_ENV), rasterio.open(sign(asset_href(item, key, asset))) as ds:
                check_header(ds, item.id, key, src.units)
                crs, transform = ds.crs, ds.transform
        except rasterio.errors.RasterioIOError as exc:
            raise _gdal_error(exc, item.id, key, src.access, log) from None
    grid = grid_for(aoi, crs, transform, pad_px)
    if grid.width * grid.height > MAX_PIXELS:
        raise AcquisitionError(f"aoi: {grid.width} x {grid.height} px at {abs(transform.a):g} m is more than "
                               f"{MAX_PIXELS / 1e6:.0f} Mpx per date; split the AOI into smaller ones")
    return grid


def _write_scene(path: Path, data: np.ndarray, grid: Grid, units_in: str, orbit: str | None = None) -> None:
    import rasterio

    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=len(BANDS), dtype="float32",
                   crs=grid.crs, transform=grid.transform, nodata=float("nan"), compress="deflate", tiled=True,
                   blockxsize=256, blockysize=256)
    if grid.width < 256 or grid.height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data.astype(np.float32))
            dst.descriptions = BANDS
            dst.update_tags(units="dB", source_units=units_in)
            if orbit is not None:
                dst.update_tags(**{ORBIT_TAG: orbit})


def _item_record(item: Any) -> dict[str, Any]:
    p = item.properties
    return {"id": item.id, "collection": item.collection_id, "datetime": utc_iso(item_time(item)),
            "platform": p.get("platform"), "orbit_state": p.get("sat:orbit_state"),
            "relative_orbit": p.get("sat:relative_orbit"), "absolute_orbit": p.get("sat:absolute_orbit"),
            "instrument_mode": p.get("sar:instrument_mode"),
            "assets": {k: redact(asset_href(item, k, a)) for k, _, a in band_assets(item)}}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(exc).split())
    if not isinstance(exc, FloodwatchError):  # floodwatch's say what failed; another's kind says what it is
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return re.sub(r"https?://\S+", lambda m: redact(m.group()), text)  # no signature in the manifest


def _note(exc: BaseException, text: str) -> None:
    # PEP 678's notes (shown under a traceback from Python 3.11; `fetch_cmd` adds it to its one line), set
    # directly as add_note is 3.11+
    exc.__notes__ = [*getattr(exc, "__notes__", []), text]


def _write_manifest(result: FetchResult, src: Source, aoi: BaseGeometry, since, until, min_coverage,
                    failure: dict[str, Any] | None = None) -> None:
    """fetch.json; `failure`: what to add when a date failed after others were written (`failed`: its key,
    items and error; `not_attempted`: the later dates' keys)."""
    doc = {"source": src.name, "api": src.url, "collection": src.collection, "aoi": mapping(aoi),
           "start": utc_iso(since), "end": utc_iso(until), "min_coverage": min_coverage,
           "fetched_at": utc_iso(datetime.now(timezone.utc)),
           "scenes": [{"key": s.key, "path": str(s.path.relative_to(result.out_dir)), "acquired": s.acquired,
                       "units": "dB", "source_units": s.units_in, "bands": list(BANDS),
                       "coverage": round(s.coverage, 6), "orbit_state": s.orbit,
                       **({"orbit_note": s.orbit_note} if s.orbit_note else {}), "items": s.items}
                      for s in result.scenes],
           "skipped": [{**s, "coverage": round(s["coverage"], 6)} for s in result.skipped]}
    doc.update(failure or {})
    with atomic_path(result.manifest) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self):
        pass


class _Bar:
    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.task = self.progress.add_task("fetch", total=total)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()
        return False

    def advance(self):
        self.progress.advance(self.task)


def _progress(on: bool, total: int):
    return _Bar(total) if on else _NoBar()
