"""`floodwatch change`, `floodwatch aoi ...` and `floodwatch web`: thin wrappers over floodwatch.monitoring."""
from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Column, Table

from . import options
from .common import (BATCH_SIZE, MODEL_HELP, OUT_ALIAS, QUIET, AssetUnits, MapBackend, Protocol, aliased,
                     check_output_named, esc, make_console, resolve_models, value)

console = make_console()
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"  # the web map's default basemap
db_option = options.DB


def register(app: typer.Typer) -> None:
    app.command("change", cls=aliased({"--out": "--output", **BATCH_SIZE}))(change)
    aoi_app = typer.Typer(help="Areas of interest: define them, record runs over them, watch a STAC catalog.",
                          no_args_is_help=True)
    aoi_app.command("add", cls=aliased({"--aoi": "--geojson"}))(aoi_add)  # fetch/run's name for the polygon
    aoi_app.command("list")(aoi_list)
    aoi_app.command("remove")(aoi_remove)
    aoi_app.command("history")(aoi_history)
    aoi_app.command("record")(aoi_record)
    aoi_app.command("watch", cls=OUT_ALIAS)(aoi_watch)
    aoi_app.command("retry-alerts")(aoi_retry_alerts)
    app.add_typer(aoi_app, name="aoi")
    app.command("web")(web)


class ChangeMethod(str, Enum):
    difference = "difference"
    bitemporal = "bitemporal"
    logratio = "logratio"


SCENE_HELP = (" GeoTIFF (VV, VH in dB), or an 8-bit PNG as OMBRIA's (VV, through its 8-bit-to-dB map; no "
              "georeference: outputs in pixels, no polygons or km²).")


def change(before: Path = typer.Option(..., "--before", help="Pre-event" + SCENE_HELP),
           after: Path = typer.Option(..., "--after", help="Post-event" + SCENE_HELP),
           model: Optional[str] = typer.Option(None, "-m", "--model",
                                               help=MODEL_HELP + " Not used by --method logratio."),
           output: Path = typer.Option(..., "-o", "--output", help="Output folder (replaced atomically)."),
           method: ChangeMethod = typer.Option(ChangeMethod.difference, "--method",
                                               help="Water after and not before (difference, bitemporal: the "
                                                    "model on both dates) or the backscatter log-ratio."),
           threshold: float = typer.Option(0.5, "--threshold", help="Water / new-water probability threshold."),
           logratio_threshold: str = typer.Option("-3", "--logratio-threshold",
                                                  help="A drop in dB (below 0), or 'otsu' (fitted per pair; a "
                                                       "fit at or above the unchanged level, 0 dB or an 8-bit "
                                                       "picture pair's median difference, is no drop: no new "
                                                       "water, a warning)."),
           band: str = typer.Option("VV", "--band", help="Band for the log-ratio (any case); a scene whose only "
                                                         "band is unnamed (a picture) is read as it."),
           tile: int = options.TILE,
           batch: int = options.BATCH,
           acquired: Optional[str] = typer.Option(None, "--acquired",
                                                  help="Post-event time: record the change in intersecting AOIs."),
           db: Optional[str] = db_option, quiet: bool = QUIET) -> None:
    """Map new water between two dates (flood = water after and not before).

    With --acquired, exit status 3 says the change is recorded but a webhook did not take its alert
    (`floodwatch aoi retry-alerts` sends it again)."""
    from ..errors import FloodwatchError
    from ..monitoring.change import detect_change

    lr = logratio_threshold if logratio_threshold == "otsu" else _float(logratio_threshold, "--logratio-threshold")
    if acquired:  # before any work: a bad time found after the outputs were written would leave them unrecorded
        from ..monitoring.store import acquisition_time

        acquisition_time(acquired, "--acquired")
    scenes = _read_scene(before, "--before"), _read_scene(after, "--after")  # before the model loads
    unplaced = [path for path, s in zip((before, after), scenes) if s.georef is None]
    if acquired and unplaced:
        raise FloodwatchError(f"--acquired: {unplaced[0]} has no georeference, so the change cannot be placed in an AOI")
    if acquired:
        from rasterio.transform import array_bounds

        from ..monitoring.aoi import check_recordable_at, grid_footprint

        after_grid = scenes[1].georef  # placed (checked above); the scene id and grid the record below takes
        footprint = grid_footprint(array_bounds(*scenes[1].shape, after_grid.affine()), after_grid.crs)
        check_recordable_at(db, [(f"{scenes[0].id}->{scenes[1].id}", footprint)], acquired, "change")
    predictor = None
    if method != ChangeMethod.logratio:  # the log-ratio needs no model: -m is not even loaded
        from ..inference.predictor import load_predictor

        predictor = load_predictor(resolve_models(model, "onnx")[0])
        wanted = predictor.preprocessing.bands
        for flag, path, scene in (("--before", before, scenes[0]), ("--after", after, scenes[1])):
            if len(scene.bands) < len(wanted):  # OMBRIA's pictures are VV only: the log-ratio maps them
                raise FloodwatchError(f"{flag}: {path} has {len(scene.bands)} band(s) ({', '.join(scene.bands)}) "
                                      f"but the model expects {len(wanted)} ({', '.join(wanted)}); --method "
                                      "logratio needs one band, or give -m a model trained on these bands")
    res = detect_change(*scenes, predictor, output, method=value(method), threshold=threshold,
                        logratio_threshold=lr, band=band, tile=tile, batch=batch, progress=not quiet)
    km2 = res.stats["flooded_km2"]
    console.print(f"new water: {res.stats['flooded_pixels']} px"
                  + (f", {km2:.3f} km²" if km2 is not None else " (no georeference: pixels only, no polygons)")
                  + f" -> {esc(output)}")
    from .flags import with_flags

    for note in res.stats["warnings"]:  # exit 0 all the same: the outputs are written, stats.json says it too
        note = with_flags(note, {"logratio_threshold": "--logratio-threshold"})
        make_console(stderr=True).print(f"[yellow]warning:[/] {esc(note)}", highlight=False, soft_wrap=True)
    if acquired:
        from ..monitoring.aoi import record_map_result
        from ..monitoring.store import Store

        with Store(db) as store:
            ids = record_map_result(store, res, acquired=acquired, scene_id=f"{res.stats['before']}->"
                                    f"{res.stats['after']}", kind="change")
            console.print(f"recorded in {len(ids)} AOI(s)")
            options.exit_if_undelivered(store, ids)


def _read_scene(path: Path, flag: str):
    from ..errors import FloodwatchError
    from ..monitoring.change import read_scene

    try:
        return read_scene(path)
    except FloodwatchError as exc:  # the file is named; the flag says which of the two dates it is
        raise type(exc)(f"{flag}: {exc}") from None


def _float(text: str, opt: str) -> float:
    from ..errors import FloodwatchError

    try:
        return float(text)
    except ValueError:
        raise FloodwatchError(f"{opt}: '{text}' is not a number") from None


def aoi_add(name: str = typer.Argument(..., help="AOI name (letters, digits, _ - .)."),
            geojson: Path = typer.Option(..., "--geojson", help="Polygon(s) in EPSG:4326, or in the CRS a "
                                         "'crs' member names (as GDAL/QGIS write it)."),
            threshold_km2: Optional[float] = typer.Option(None, "--threshold-km2",
                                                          help="Alert when flooded km² go above this: once per "
                                                               "crossing, not at every pass that stays above."),
            rise_percent: Optional[float] = typer.Option(None, "--rise-percent",
                                                         help="Alert on this rise since the previous acquisition."),
            webhook: List[str] = typer.Option([], "--webhook", help="Webhook URL for alerts (repeatable)."),
            replace: bool = typer.Option(False, "--replace", help="Replace an AOI of the same name, with its records, "
                                                                  "alerts and watched items (they were of the old "
                                                                  "outline)."),
            db: Optional[str] = db_option) -> None:
    """Add an area of interest."""
    from ..monitoring.alerts import check_webhook
    from ..monitoring.aoi import add_aoi
    from ..monitoring.store import Store

    for url in webhook:  # add_aoi checks them too; here before the store is opened (and maybe made)
        check_webhook(url)
    with Store(db) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # add_aoi's warning of a webhook without a rule: said below in flags
        a = add_aoi(store, name, geojson, threshold_km2=threshold_km2, rise_percent=rise_percent, webhooks=webhook,
                    replace=replace)
        console.print(f"AOI '{esc(a.name)}': {_km2(a.area_km2)} km² in {esc(store.path)}")
    if a.webhooks and a.threshold_km2 is None and a.rise_percent is None:
        make_console(stderr=True).print("[yellow]warning:[/] --webhook without --threshold-km2 or --rise-percent: "
                                        "no rule is set, so no alert will be sent to it", highlight=False)


def aoi_list(db: Optional[str] = db_option) -> None:
    """List the AOIs with their latest record."""
    from ..monitoring.store import Store

    with Store(db, create=False) as store:  # a mistyped --db is not made and shown empty
        t = Table(Column("name", overflow="fold"), "area km²", "alert km²", "alert rise %", "webhooks", "records",
                  "latest", "flooded km²")
        for a in store.aois():
            hist = store.history(a.name)
            last = hist[-1] if hist else None
            t.add_row(esc(a.name), _km2(a.area_km2), _opt(a.threshold_km2), _opt(a.rise_percent),
                      str(len(a.webhooks)), str(len(hist)), last["acquired"] if last else "-",
                      _km2(last["flooded_km2"]) if last else "-")
        console.print(t)


def aoi_remove(name: str = typer.Argument(..., help="AOI name."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask; needed when not at a terminal."),
               db: Optional[str] = db_option) -> None:
    """Remove an AOI with its records, alerts and the STAC items `aoi watch` processed for it."""
    import sys

    from ..errors import MonitoringError
    from ..monitoring.store import Store

    with Store(db, create=False) as store:
        n = len(store.history(name))  # an unknown name fails here, before asking
        what = f"AOI '{name}' and its {n} record(s)"
        if not yes:
            if not sys.stdin.isatty():
                raise MonitoringError(f"aoi remove: not at a terminal to confirm removing AOI '{name}'; add --yes")
            typer.confirm(f"Remove {what} from {store.path}?", abort=True)  # plain text: no markup to escape
        store.remove_aoi(name)
        console.print(esc(f"removed {what}"))


def _opt(v: float | None, fmt: str = "g") -> str:
    return "-" if v is None else format(v, fmt)


def _km2(v: float | None) -> str:
    """km² to 3 decimals, or 2 significant digits below 0.01 (a small AOI's 0.00004 km² is not 0.000)."""
    return "-" if v is None else f"{v:.2g}" if 0 < abs(v) < 0.01 else f"{v:.3f}"


def aoi_history(name: str = typer.Argument(..., help="AOI name."),
                png: Optional[Path] = typer.Option(None, "--png", help="Also plot the series."),
                csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the series as CSV (full "
                                                   "precision; times in UTC)."),
                db: Optional[str] = db_option) -> None:
    """Time series of one AOI: flooded km², permanent water, coverage per acquisition, oldest first."""
    from ..monitoring.store import Store

    if png:
        check_output_named(png, ".png", "PNG", "--png")
    if csv:
        check_output_named(csv, ".csv", "CSV", "--csv")
    with Store(db, create=False) as store:
        hist = store.history(name)
        threshold = store.get_aoi(name).threshold_km2
    t = Table("acquired", "kind", Column("scene", overflow="fold"), "flooded km²", "permanent water km²",
              "valid km²", "coverage", title=f"AOI {esc(name)}")
    for r in hist:
        t.add_row(r["acquired"], r["kind"], esc(r["scene_id"]), _km2(r["flooded_km2"]),
                  _km2(r["permanent_water_km2"]), _km2(r["valid_km2"]), _opt(r["coverage"], ".0%"))
    console.print(t)
    if csv:
        from ..monitoring.plots import write_history_csv

        console.print(esc(f"table: {write_history_csv(hist, csv)}"))
    if png:
        from ..monitoring.plots import plot_history

        console.print(esc(f"plot: {plot_history(hist, png, title=f'AOI {name}', threshold_km2=threshold)}"))


def aoi_record(out_dir: Path = typer.Argument(..., help="A `floodwatch map` or `floodwatch change` output folder."),
               acquired: str = typer.Option(..., "--acquired", help="Acquisition time (ISO-8601), from Sentinel-1's "
                                            "launch (2014-04-03) to now."),
               scene_id: Optional[str] = typer.Option(None, "--scene-id", help="Default: the folder name."),
               replace: bool = typer.Option(False, "--replace",
                                            help="Replace a record of the same scene id under another --acquired "
                                                 "(to correct its time); without it that is an error."),
               db: Optional[str] = db_option) -> None:
    """Record a finished map/change run in every AOI it intersects (and check alert rules).

    Exit status 3: recorded, but a webhook did not take an alert (`floodwatch aoi retry-alerts` sends it
    again)."""
    from ..monitoring.aoi import record_output_dir
    from ..monitoring.store import Store

    with Store(db) as store:
        ids = record_output_dir(store, out_dir, acquired=acquired, scene_id=scene_id, replace=replace)
        console.print(f"recorded in {len(ids)} AOI(s)"
                      + ("" if ids else ": none overlaps the map (floodwatch aoi add NAME --geojson FILE)"))
        options.exit_if_undelivered(store, ids)


def aoi_watch(name: str = typer.Argument(..., help="AOI name."),
              stac: str = typer.Option(..., "--stac", help="STAC API root URL, or a static catalog or collection, a saved search (FeatureCollection) or one item's JSON (URL or file)."),
              collection: str = typer.Option(..., "--collection", help="STAC collection of Sentinel-1 items."),
              since: Optional[str] = typer.Option(None, "--since", help="Only items acquired from this date."),
              model: Optional[List[str]] = options.MAP_MODEL,
              output: Path = typer.Option(Path("watch_out"), "-o", "--output", help="Where windows and maps go."),
              units: AssetUnits = typer.Option(
                  AssetUnits.auto, "--units",
                  help="Pixel units of the items: auto (per item: linear power, as Planetary Computer's "
                       "sentinel-1-rtc, unless most values are negative), dB or linear power."),
              backend: MapBackend = options.MAP_BACKEND, url: str = options.TRITON_URL,
              triton_model: str = options.TRITON_MODEL, protocol: Protocol = options.PROTOCOL,
              tta: bool = options.TTA, tta_transforms: Optional[str] = options.TTA_TRANSFORMS,
              refine: Optional[str] = options.REFINE, downsample: int = options.DOWNSAMPLE,
              weights: Optional[str] = options.WEIGHTS, temperature: Optional[Path] = options.TEMPERATURE,
              tile: int = options.TILE, threshold: float = options.THRESHOLD, db: Optional[str] = db_option,
              water_mask: Optional[str] = options.WATER_MASK, hand: Optional[str] = options.HAND,
              hand_max: float = options.HAND_MAX, dem: Optional[str] = options.DEM,
              slope_max: float = options.SLOPE_MAX, exclude: Optional[str] = options.EXCLUDE,
              depth: bool = options.DEPTH, orbit: Optional[str] = options.ORBIT,
              quiet: bool = QUIET) -> None:
    """Map every new Sentinel-1 item over an AOI from a STAC catalog; already-processed items are skipped.
    The model options (--backend, --tta, --refine, --downsample ...), --threshold, --water-mask and the terrain
    options are map's and run's (docs/terrain.md).

    Exit status 3: mapped and recorded, but a webhook did not take an alert (`floodwatch aoi retry-alerts`)."""
    from ..monitoring.stac import watch_aoi
    from ..monitoring.store import Store

    terrain = options.terrain_options(hand, hand_max, dem, slope_max, exclude, depth, orbit)  # before the store
    predictor = options.scene_predictor(model, value(backend), url=url, triton_model=triton_model,
                                        protocol=value(protocol), tta=tta, tta_transforms=tta_transforms,
                                        refine=refine, downsample=downsample, threshold=threshold, tile=tile,
                                        weights=weights, temperature=temperature)
    with Store(db) as store:
        outcomes = watch_aoi(store, name, stac, collection, predictor, output, since=since,
                             units=value(units), tile=tile, threshold=threshold, progress=not quiet,
                             terrain=terrain, water_mask=water_mask)
        t = Table(Column("item", overflow="fold"), "acquired", "status", "flooded km²")
        for o in outcomes:
            km2 = "-" if not o.record_ids else f"{store.record(o.record_ids[0], False)['flooded_km2']:.3f}"
            t.add_row(esc(o.item_id), o.acquired, esc(o.status), km2)
        console.print(t)
        options.exit_if_undelivered(store, [i for o in outcomes for i in o.record_ids])


def aoi_retry_alerts(db: Optional[str] = db_option) -> None:
    """Send again every alert a webhook has not acknowledged yet.

    Exit status 3: some are still not delivered."""
    from ..monitoring.alerts import retry_undelivered
    from ..monitoring.store import Store

    with Store(db, create=False) as store:  # a mistyped --db is named, not made and found to hold nothing
        counts = retry_undelivered(store, console=make_console(stderr=True))
        console.print(f"delivered {counts['delivered']}, still failing {counts['failed']}")
    if counts["failed"]:
        raise typer.Exit(options.ALERTS_UNDELIVERED)


def web(host: str = typer.Option("127.0.0.1", "--host", help="Interface (loopback by default)."),
        port: int = typer.Option(8080, "--port", help="TCP port, 1-65535."), db: Optional[str] = db_option,
        outputs: Optional[Path] = typer.Option(None, "--outputs",
                                               help="Folder whose files (quicklooks) /files/ may serve."),
        basemap: str = typer.Option(OSM_URL, "--basemap", help="XYZ tile URL with {z}/{x}/{y} for the basemap "
                                    "(default OpenStreetMap), or 'offline' for the bundled Natural Earth outlines."),
        tile_url: Optional[str] = typer.Option(None, "--tile-url", hidden=True, help="Old name of --basemap."),
        write_token: Optional[str] = typer.Option(None, "--write-token", envvar="FLOODWATCH_WEB_TOKEN",
                                                  show_default=False,
                                                  help="Turn on the write endpoints (POST /api/alerts/retry) for "
                                                       "requests with 'Authorization: Bearer TOKEN'; read-only "
                                                       "without it. Prefer the environment variable."),
        access_log: bool = typer.Option(False, "--access-log", help="Log every request (off: a map view asks "
                                        "for dozens of tiles).")) -> None:
    """Serve the monitoring web map (read-only unless a write token is set) of an existing database: `aoi add`
    or a recorded run makes one."""
    from ..errors import FloodwatchError
    from ..monitoring.web import serve

    if not 1 <= port <= 65535:
        raise FloodwatchError(f"--port: {port} is not a TCP port (1-65535)")
    if outputs is not None and not outputs.is_dir():
        raise FloodwatchError(f"--outputs: '{outputs}' is not a folder")
    try:
        from ..monitoring.web.app import basemap_config

        basemap_config(tile_url or basemap)
    except FloodwatchError as exc:
        raise FloodwatchError(f"--{exc}") from None
    serve(db, outputs, host=host, port=port, basemap=tile_url or basemap, write_token=write_token,
          access_log=access_log, announce=lambda: console.print(f"floodwatch web on http://{host}:{port}/"
                                                                + (" (write endpoints on)" if write_token else "")))
