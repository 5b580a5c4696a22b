"""`floodwatch map`: whole Sentinel-1 scenes in, georeferenced flood maps and km² out."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import options


def register(app: typer.Typer) -> None:
    @app.command("map")
    def map_cmd(
        scenes: Optional[List[str]] = typer.Argument(
            None, help="Scene GeoTIFFs with VV and VH bands (paths or https/s3/gs URLs); a folder maps every "
                       "GeoTIFF in it."),
        model: Path = typer.Option(..., "-m", "--model", help="Checkpoint (.pt) or ONNX model (ignored by triton)."),
        out_dir: str = typer.Option(..., "-o", "--output",
                                    help="Output folder or fsspec URL (s3://, gs://); each scene gets <stem>/ in it."),
        vv: Optional[str] = typer.Option(None, "--vv", help="Single-band VV file (with --vh) instead of SCENE."),
        vh: Optional[str] = typer.Option(None, "--vh", help="Single-band VH file on the same grid as the VV one."),
        units: str = typer.Option("db", "--units", help="Input units: db or linear (power)."),
        backend: str = typer.Option("auto", "--backend", help="torch, onnx, triton, or auto (by file suffix)."),
        url: str = typer.Option("127.0.0.1:8000", "--url", help="Triton server address (backend triton)."),
        triton_model: str = typer.Option("flood", "--triton-model", help="Model name on the Triton server."),
        protocol: str = typer.Option("http", "--protocol", help="Triton protocol: http or grpc."),
        tta: bool = options.TTA,
        tta_transforms: Optional[str] = options.TTA_TRANSFORMS,
        refine: Optional[str] = options.REFINE,
        tile: int = typer.Option(512, "--tile", min=8, help="Tile size in pixels."),
        overlap: int = typer.Option(64, "--overlap", min=0, help="Overlap between tiles in pixels."),
        batch: int = typer.Option(4, "--batch", min=1, help="Tiles per predictor call."),
        threshold: float = options.THRESHOLD,
        water_mask: Optional[str] = typer.Option(None, "--water-mask",
                                                  help="Permanent-water raster (any CRS); counted apart."),
        min_area: float = typer.Option(1000.0, "--min-area", help="Drop flood polygons under this many m²."),
        simplify: float = typer.Option(1.0, "--simplify", help="Polygon simplification tolerance in pixels."),
        probability: str = typer.Option("uint8", "--probability", help="Probability raster: uint8 (%) or float32."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Map scenes in parallel on a local Dask cluster."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address to use instead."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
        acquired: Optional[str] = typer.Option(
            None, "--acquired", help="Acquisition time (ISO-8601): record the result in every intersecting AOI."),
        db: Optional[str] = typer.Option(None, "--db", envvar="FLOODWATCH_DB",
                                         help="Monitoring database for --acquired (default ~/.floodwatch)."),
    ) -> None:
        """Flood map per scene: COG mask + probability, GeoJSON polygons (EPSG:4326), stats.json, quicklook."""
        from rich.console import Console
        from rich.table import Table

        from ..errors import FloodwatchError
        from ..mapping import map_scene, map_scenes, scene_files

        if vh is not None and vv is None and len(scenes or []) == 1:
            vv, scenes = scenes[0], []
        if vv is not None:
            if scenes:
                raise FloodwatchError("--vv: give either SCENE arguments or --vv/--vh, not both")
            if vh is None:
                raise FloodwatchError("--vv: needs the matching --vh file")
            files = [vv]
        elif not scenes:
            raise FloodwatchError("SCENE: give at least one scene GeoTIFF or folder (or --vv/--vh)")
        else:
            if vh is not None:
                raise FloodwatchError("--vh: pairs with one VV file, given as SCENE or --vv")
            files = scene_files(scenes)
        kw = dict(vh=vh, units=units, tile=tile, overlap=overlap, batch=batch, threshold=threshold,
                  water_mask=water_mask, min_area_m2=min_area, simplify=simplify, probability=probability)
        predictor_kwargs = ({"url": url, "model_name": triton_model, "protocol": protocol}
                            if backend == "triton" else {})
        if tta or tta_transforms:
            predictor_kwargs["tta"] = tta_transforms or True
        from ..inference.refine import parse_refine

        refine_kwargs = parse_refine(refine, threshold)  # per tile: the blender averages refined probabilities
        if refine_kwargs is not None:
            predictor_kwargs["refine"] = refine_kwargs
        if workers or scheduler:
            results = map_scenes(files, model, out_dir, workers=workers, scheduler=scheduler, backend=backend,
                                 predictor_kwargs=predictor_kwargs, progress=not quiet, **kw)
        else:
            from ..inference import load_predictor

            predictor = load_predictor(model, backend, **predictor_kwargs)
            label = None if backend == "auto" else backend
            results = [map_scene(f, predictor, out_dir, progress=not quiet, backend=label, **kw) for f in files]
        table = Table("scene", "flood km²", "valid km²", "flooded %", "permanent km²", "polygons", "s", "output")
        for r in results:
            s = r.stats
            table.add_row(Path(r.scene).name, f"{s['flooded_km2']:.3f}", f"{s['valid_km2']:.2f}",
                          f"{100 * s['flooded_fraction']:.1f}", f"{s['permanent_water_km2']:.3f}",
                          str(s["polygons"]), f"{s['runtime_s']:.1f}", str(r.out_dir))
        Console().print(table)
        if acquired:
            from ..monitoring.aoi import record_map_result
            from ..monitoring.store import Store

            with Store(db) as store:
                n = sum(len(record_map_result(store, r, acquired=acquired, scene_id=Path(r.scene).stem))
                        for r in results)
            Console().print(f"recorded in {n} AOI time series")
