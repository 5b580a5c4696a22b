"""`floodwatch map`: whole Sentinel-1 scenes in, georeferenced flood maps and km² out."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import options
from .common import (BATCH_SIZE, QUIET, MapBackend, Probability, Protocol, Units, aliased, esc,
                     make_console, value)


def register(app: typer.Typer) -> None:
    @app.command("map", cls=aliased(BATCH_SIZE))
    def map_cmd(
        scenes: Optional[List[str]] = typer.Argument(
            None, help="Scene GeoTIFFs with VV and VH bands (paths or https/s3/gs URLs); a folder maps every "
                       "GeoTIFF in it. Single-band <stem>_vv.tif and <stem>_vh.tif files pair into one scene; a "
                       "lone one takes its partner from its folder."),
        model: Optional[List[str]] = options.MAP_MODEL,
        out_dir: str = typer.Option(..., "-o", "--output",
                                    help="Output folder or fsspec URL (s3://, gs://); each scene gets <stem>/ in it "
                                    "(same-named scenes: <folder>/<stem>/; a _vv/_vh pair: the pair's stem)."),
        vv: Optional[str] = typer.Option(None, "--vv", help="Single-band VV file or URL (with --vh) instead of SCENE."),
        vh: Optional[str] = typer.Option(None, "--vh",
                                         help="Single-band VH file or URL on the same grid as the VV one."),
        units: Units = typer.Option(Units.db, "--units", help="Input pixel units: dB, or linear power. Pixels "
                                    "at the file's nodata, NaN, exactly 0.0 dB or 0 power are no data."),
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
        self_train: bool = options.SELF_TRAIN,
        tile: int = options.TILE,
        overlap: int = options.OVERLAP,
        batch: int = options.BATCH,
        threshold: float = options.THRESHOLD,
        water_mask: Optional[str] = options.WATER_MASK,
        hand: Optional[str] = options.HAND,
        hand_max: float = options.HAND_MAX,
        dem: Optional[str] = options.DEM,
        slope_max: float = options.SLOPE_MAX,
        exclude: Optional[str] = options.EXCLUDE,
        depth: bool = options.DEPTH,
        orbit: Optional[str] = options.ORBIT,
        min_area: float = typer.Option(1000.0, "--min-area", min=0, help="Drop flood polygons under this many m²."),
        simplify: float = typer.Option(1.0, "--simplify", min=0, help="Polygon simplification tolerance in pixels."),
        probability: Probability = typer.Option(Probability.uint8, "--probability",
                                                help="Probability raster: uint8 (percent) or float32."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Map scenes in parallel on a local Dask cluster."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address to use instead."),
        quiet: bool = QUIET,
        acquired: Optional[str] = typer.Option(
            None, "--acquired", help="Acquisition time (ISO-8601): record the result in every intersecting AOI."),
        db: Optional[str] = options.DB,
    ) -> None:
        """Flood map per scene: COG mask + probability, GeoJSON polygons (EPSG:4326), stats.json, quicklook;
        with terrain options also exclusion.tif (bit flags) and, with --depth, flood_depth.tif. Exit status 3
        (with --acquired): recorded, but a webhook did not take an alert (`floodwatch aoi retry-alerts`)."""
        from rich.table import Column, Table

        from ..errors import FloodwatchError
        from ..mapping import map_scene, map_scenes, pair_band_files, scene_files
        from ..mapping.pipeline import check_scene_folders
        from ..mapping.locations import input_stem, output_names

        units, backend, protocol, probability = (value(units), value(backend), value(protocol),
                                                 value(probability))

        if vh is not None and vv is None and len(scenes or []) == 1:
            vv, scenes = scenes[0], []
        if vv is not None:
            if scenes:
                raise FloodwatchError("--vv: give either SCENE arguments or --vv/--vh, not both")
            if vh is None:
                raise FloodwatchError("--vv: needs the matching --vh file")
            files, pairs = [vv], [(vv, vh)]
        elif not scenes:
            raise FloodwatchError("SCENE: give at least one scene GeoTIFF or folder (or --vv/--vh)")
        else:
            if vh is not None:
                raise FloodwatchError("--vh: pairs with one VV file, given as SCENE or --vv")
            files = scene_files(scenes)
            pairs = pair_band_files(files)
        if acquired:  # before any work: a bad time found after the maps were written would leave them unrecorded
            from ..monitoring.store import acquisition_time

            acquisition_time(acquired, "--acquired")
            _check_recordable(pairs, acquired, db)
        if not (workers or scheduler):  # map_scenes names its own; a clash is an error before any work
            names = output_names([f for f, _ in pairs], paired=[v is not None for _, v in pairs])
            check_scene_folders(out_dir, names)
        terrain = options.terrain_options(hand, hand_max, dem, slope_max, exclude, depth, orbit)
        model, predictor_kwargs = options.scene_model(
            model, backend, url=url, triton_model=triton_model, protocol=protocol, tta=tta,
            tta_transforms=tta_transforms, refine=refine, downsample=downsample, threshold=threshold, tile=tile,
            weights=weights, temperature=temperature, self_train=self_train)
        kw = dict(units=units, tile=tile, overlap=overlap, batch=batch, threshold=threshold,
                  water_mask=water_mask, min_area_m2=min_area, simplify=simplify, probability=probability,
                  terrain=terrain)
        if self_train:
            from ..inference.selftrain import SelfTraining

            kw["self_train"] = SelfTraining()
        if workers or scheduler:
            if len(pairs) > 1 and backend != "triton":  # as below; the model is loaded here once for its bands
                from ..inference import load_predictor

                bands = load_predictor(model, backend, **predictor_kwargs).preprocessing.bands
                _open_each(pairs, units, bands, remote=False)  # workers may hold credentials the client lacks
            results = map_scenes(files, model, out_dir, workers=workers, scheduler=scheduler, backend=backend,
                                 predictor_kwargs=predictor_kwargs, progress=not quiet, vh=vh, **kw)
        else:
            predictor = options.load_scene_predictor(model, predictor_kwargs, backend)
            if len(pairs) > 1:  # every scene opens before the first is mapped: a bad last one leaves no maps
                _open_each(pairs, units, predictor.preprocessing.bands)
            results = [map_scene(f, predictor, out_dir, progress=not quiet, vh=v, name=n, model=model,
                                 **kw)
                       for (f, v), n in zip(pairs, names)]
        # names and paths fold onto more lines in a narrow terminal, never cut with an ellipsis
        table = Table(Column("scene", overflow="fold"), "flood km²", "valid km²", "flooded %", "permanent km²",
                      "excluded km²", "polygons", "s", Column("output", overflow="fold"))
        for r in results:
            s = r.stats
            table.add_row(esc(Path(r.scene).name), f"{s['flooded_km2']:.3f}", f"{s['valid_km2']:.2f}",
                          "-" if s["flooded_fraction"] is None else f"{100 * s['flooded_fraction']:.1f}",
                          f"{s['permanent_water_km2']:.3f}",
                          f"{s['excluded_water_km2']:.3f}", str(s["polygons"]), f"{s['runtime_s']:.1f}",
                          esc(r.out_dir))
        console = make_console()
        console.print(table)
        for r in results:  # exit 0 (the maps are written), but an all-no-data scene is rarely what was meant
            if r.stats["valid_km2"] == 0:
                make_console(stderr=True).print(f"[yellow]warning:[/] {esc(r.scene)}: no valid pixels (all no data: "
                                                f"NaN, the file's nodata or 0.0); its map is empty", highlight=False)
        if acquired:
            from ..monitoring.aoi import record_map_result
            from ..monitoring.store import Store

            with Store(db) as store:
                ids = [i for r in results
                       for i in record_map_result(store, r, acquired=acquired, scene_id=input_stem(r.scene))]
                console.print(f"recorded in {len(ids)} AOI time series")
                options.exit_if_undelivered(store, ids)


def _open_each(pairs, units: str, bands, remote: bool = True) -> None:
    """Open every scene's header as `map_scene` will (bands, pixel type, grid): a bad file fails the run
    before any map is written."""
    from ..mapping.locations import is_remote_input
    from ..mapping.scene import SceneReader

    for f, v in pairs:
        if remote or not (is_remote_input(f) or (v is not None and is_remote_input(v))):
            SceneReader(f, vh=v, units=units, bands=bands).close()


def _check_recordable(pairs, acquired: str, db) -> None:
    """Before mapping: no scene (by its stem, as recorded) is in an AOI it overlaps under another time. Local
    scenes only (a header read each)."""
    import warnings

    import rasterio
    import rasterio.errors

    from ..mapping.locations import input_stem, is_remote_input
    from ..monitoring.aoi import check_recordable_at, grid_footprint

    def footprints():  # read only where a database exists to check against
        for f, _ in pairs:
            if not is_remote_input(f):
                with warnings.catch_warnings():  # a scene without a grid is refused later, in one line
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    with rasterio.open(f) as ds:
                        crs, bounds = ds.crs, ds.bounds
                # yielded with the file closed: a generator left at a conflict is finalised later, anywhere
                if crs:
                    yield input_stem(f), grid_footprint(bounds, crs)

    check_recordable_at(db, footprints(), acquired)
