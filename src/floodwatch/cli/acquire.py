"""`floodwatch fetch` and `floodwatch run`: thin wrappers over floodwatch.acquisition and monitoring.run."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import List, Optional

import typer

from . import options
from .common import AssetUnits, MapBackend, Protocol, value

SOURCE_HELP = ("Catalog: pc-rtc (default; Planetary Computer RTC, needs PC_SDK_SUBSCRIPTION_KEY), pc-grd, "
               "earth-search-grd, cdse-grd, or a STAC API URL (with --collection).")


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch_cmd)
    app.command("run")(run_cmd)


def _source(source: str, collection: Optional[str], stac: Optional[str], units: "AssetUnits"):
    from ..acquisition import resolve_source

    return resolve_source(source, collection=collection, url=stac, units=value(units))


def _area(aoi: Optional[str], bbox: Optional[str], *, stored: bool = True):
    """(geometry or None, default AOI name) from --aoi FILE|NAME or --bbox. `stored` False: --aoi is a file
    only (fetch has no AOI database to look a name up in)."""
    from ..acquisition import parse_bbox, read_aoi
    from ..errors import FloodwatchError

    if (aoi is None) == (bbox is None):
        raise FloodwatchError("--aoi/--bbox: give exactly one of them")
    if bbox is not None:
        geom = parse_bbox(bbox)
        return geom, "bbox_" + "_".join(f"{v:.4f}" for v in geom.bounds)
    if not stored or Path(aoi).is_file() or aoi.lower().endswith((".json", ".geojson")):
        return read_aoi(aoi), Path(aoi).stem
    return None, aoi


@contextlib.contextmanager
def _area_named(bbox: Optional[str]):
    """The library calls the area `aoi` in its messages ("aoi: ... more than 100 Mpx"); when it came from
    --bbox, that is the flag to name."""
    from ..errors import FloodwatchError

    try:
        yield
    except FloodwatchError as exc:
        if bbox is None or not str(exc).startswith("aoi:"):
            raise
        raise type(exc)("bbox" + str(exc)[len("aoi"):]) from None


def fetch_cmd(
    aoi: Optional[Path] = typer.Option(None, "--aoi", help="AOI polygon(s), GeoJSON in EPSG:4326."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="AOI as W,S,E,N in degrees."),
    start: str = typer.Option(..., "--start", help="First day (YYYY-MM-DD) or ISO time."),
    end: str = typer.Option(..., "--end", help="Last day (inclusive) or ISO time."),
    source: str = typer.Option("pc-rtc", "--source", help=SOURCE_HELP),
    collection: Optional[str] = typer.Option(None, "--collection", help="Collection (with a URL --source)."),
    stac: Optional[str] = typer.Option(None, "--stac", help="Another API root for --source (a mirror or proxy)."),
    units: AssetUnits = typer.Option(AssetUnits.auto, "--units",
                                     help="Asset pixel units: auto (as the source says), dB or linear power."),
    min_coverage: float = typer.Option(0.5, "--min-coverage", help="Skip dates covering less of the AOI (0-1)."),
    out_dir: Path = typer.Option(..., "-o", "--output", help="Output folder: <date>/scene.tif and fetch.json."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Fetch Sentinel-1 VV/VH (dB, one GeoTIFF per date) over an AOI from a public STAC catalog."""
    from rich.console import Console
    from rich.table import Table

    from ..acquisition import fetch
    from ..acquisition.fetch import MANIFEST
    from ..errors import FloodwatchError

    geom, _ = _area(str(aoi) if aoi else None, bbox, stored=False)
    with _area_named(bbox):
        try:
            res = fetch(geom, start, end, out_dir, source=_source(source, collection, stac, units),
                        min_coverage=min_coverage, progress=not quiet)
        except FloodwatchError as exc:
            # a later date failed: say, on the error's one line, where the scenes written before it are listed
            written = next((n for n in reversed(getattr(exc, "__notes__", [])) if MANIFEST in n), None)
            if written is None:
                raise
            raise type(exc)(f"{exc}; {written}") from None
    table = Table("date", "acquired", "items", "AOI coverage", "source units", "scene")
    for s in res.scenes:
        table.add_row(s.key, s.acquired, str(len(s.items)), f"{100 * s.coverage:.0f}%", s.units_in, str(s.path))
    Console().print(table)
    Console().print(f"manifest: {res.manifest}")


def run_cmd(
    aoi: Optional[str] = typer.Option(None, "--aoi", help="A stored AOI name, or a GeoJSON file (EPSG:4326)."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="AOI as W,S,E,N in degrees."),
    date: str = typer.Option(..., "--date", help="Day (YYYY-MM-DD): the first acquisition from then is mapped."),
    days: int = typer.Option(1, "--days", min=1, help="Look this many days from --date for an acquisition."),
    model: Optional[List[str]] = options.MAP_MODEL,
    out_dir: Path = typer.Option(Path("floodwatch_run"), "-o", "--output", help="Output folder."),
    name: Optional[str] = typer.Option(None, "--name", help="AOI name to store a new --aoi FILE / --bbox under."),
    source: str = typer.Option("pc-rtc", "--source", help=SOURCE_HELP),
    collection: Optional[str] = typer.Option(None, "--collection", help="Collection (with a URL --source)."),
    stac: Optional[str] = typer.Option(None, "--stac", help="Another API root for --source (a mirror or proxy)."),
    units: AssetUnits = typer.Option(AssetUnits.auto, "--units",
                                     help="Asset pixel units: auto (as the source says), dB or linear power."),
    min_coverage: float = typer.Option(0.5, "--min-coverage", help="Refuse dates covering less of the AOI (0-1)."),
    threshold_km2: Optional[float] = typer.Option(None, "--threshold-km2",
                                          help="Alert rule for a new AOI (a stored AOI's own is kept)."),
    rise_percent: Optional[float] = typer.Option(None, "--rise-percent",
                                          help="Alert rule for a new AOI (a stored AOI's own is kept)."),
    backend: MapBackend = options.MAP_BACKEND,
    url: str = options.TRITON_URL,
    triton_model: str = options.TRITON_MODEL,
    protocol: Protocol = options.PROTOCOL,
    tta: bool = options.TTA,
    tta_transforms: Optional[str] = options.TTA_TRANSFORMS,
    refine: Optional[str] = options.REFINE,
    downsample: int = options.DOWNSAMPLE,
    weights: Optional[str] = options.WEIGHTS,
    temperature: Optional[Path] = options.TEMPERATURE,
    tile: int = options.TILE,
    threshold: float = options.THRESHOLD,
    db: Optional[str] = options.DB,
    water_mask: Optional[str] = options.WATER_MASK,
    hand: Optional[str] = options.HAND,
    hand_max: float = options.HAND_MAX,
    dem: Optional[str] = options.DEM,
    slope_max: float = options.SLOPE_MAX,
    exclude: Optional[str] = options.EXCLUDE,
    depth: bool = options.DEPTH,
    orbit: Optional[str] = options.ORBIT,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Fetch, map, record in the AOI's history and raise its alerts: a place and a date to km² in one step.
    The model options (--backend, --tta, --refine, --downsample ...), --water-mask and the terrain options are
    map's (docs/terrain.md). Exit status 3: recorded, but a webhook did not take an alert (`floodwatch aoi
    retry-alerts` sends it again)."""
    from rich.console import Console

    from ..monitoring.run import run_aoi
    from ..monitoring.store import Store

    geom, default_name = _area(aoi, bbox)
    src = _source(source, collection, stac, units)
    terrain = options.terrain_options(hand, hand_max, dem, slope_max, exclude, depth, orbit)  # before the store
    predictor = options.scene_predictor(model, value(backend), url=url, triton_model=triton_model,
                                        protocol=value(protocol), tta=tta, tta_transforms=tta_transforms,
                                        refine=refine, downsample=downsample, threshold=threshold, tile=tile,
                                        weights=weights, temperature=temperature)
    with Store(db) as store, _area_named(bbox):
        res = run_aoi(store, name or default_name, date, predictor, out_dir, geometry=geom, source=src, days=days,
                      min_coverage=min_coverage, threshold_km2=threshold_km2, rise_percent=rise_percent, tile=tile,
                      threshold=threshold, progress=not quiet, terrain=terrain, water_mask=water_mask)
        rec = store.record(res.record_ids[0], False) if res.record_ids else None
    console = Console()
    console.print(f"{res.aoi}: {res.scene.key} ({len(res.scene.items)} item(s), {100 * res.scene.coverage:.0f}% of "
                  f"the AOI) -> {res.map.out_dir}")
    if rec is not None:
        console.print(f"flooded {rec['flooded_km2']:.3f} km² in AOI '{res.aoi}'; {len(res.alert_ids)} new alert(s)")
    with Store(db) as store:
        options.exit_if_undelivered(store, res.record_ids)
