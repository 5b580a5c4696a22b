"""Scene-scale flood mapping: any-size SAR GeoTIFF in, georeferenced flood map and km² out.

Three threads overlap the work: a reader fetches the next window (a chunk of tile columns of one row of
tiles) while the predictor runs on the current one, and a writer thresholds, counts and writes the
finished pixels (with terrain options it also applies that window's rows and columns of the exclusion
flags). Queues are bounded and windows have a fixed width, so memory stays flat whatever the
scene's size: O(tile x chunk) for the windows plus O(overlap x width) of blending carried between rows.
GDAL's block cache is capped (`GDAL_CACHEMAX`, 128 MB unless the environment sets it): its default, 5% of
the machine's memory, would otherwise fill with the scene's blocks and grow with the scene.
Terrain options are the exception: their layers are whole-scene arrays (uint8 flags, the float32 DEM with
depth; see `floodwatch.mapping.terrain`), sized for AOI scenes.
"""
from __future__ import annotations

import contextlib
import numbers
import os
import queue
import tempfile
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import rasterio
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from ..data.arguments import check_whole
from ..errors import FloodwatchError, InvalidArgumentError, data_errors_of
from ..inference.base import model_file_label, predictor_backend, predictor_model_file, predictor_settings
from ..inference.tiling import DEFAULT_OVERLAP, TileGrid, WindowBlender, check_prediction, check_tiling
from ..io import atomic_dir, check_replaceable, write_json
from .area import AreaCounter
from .locations import (check_location, check_output_name, is_remote_output, resolve_input, resolve_output,
                        upload_dir)
from .masks import open_mask
from .outputs import (DEFLATE_LEVEL, EXCLUDED, MASK_NODATA, PERMANENT, PROB_NODATA_U8, PROBABILITY_DEFLATE_LEVEL,
                      aligned_block, finish_raster, finish_raster_in_process, open_strip_writer, write_window)
from .memory import release_freed_memory, share_one_malloc_arena
from .profile import StageClock
from .quicklook import Quicklook
from .scene import SceneReader, sample_tiles
from .terrain import EXCLUSION_DESCRIPTION, EXCLUSION_NODATA, FLAG_NAMES, FloodDepth, Terrain, TerrainLayers
from .vectorize import vectorize_mask

if TYPE_CHECKING:  # torch loads only when a scene is self-trained
    from ..inference.selftrain import SelfTraining

OUTPUT_NAMES = {"mask": "flood_mask.tif", "probability": "flood_probability.tif",
                "polygons": "flood_polygons.geojson", "stats": "stats.json", "quicklook": "quicklook.png"}
#: written beside those with terrain options: the exclusion flags, and depth with `Terrain(depth=True)`
TERRAIN_OUTPUT_NAMES = {"exclusion": "exclusion.tif", "depth": "flood_depth.tif"}
#: GDAL block cache while mapping, MB (the environment's GDAL_CACHEMAX wins)
GDAL_CACHE_MB = 128
#: tile columns per window: 8 x 480 + 32 = 3,872 px wide at the default tiling
CHUNK_TILES = 8
#: scenes with at least this many pixels (10,000²) make their probability COG in a helper process
COG_PROCESS_PIXELS = 100_000_000
_DONE = object()


def is_map_output(entry: Path) -> bool:
    """True for an entry of a scene's output folder that an earlier map_scene wrote (or a GIS sidecar of one:
    QGIS's statistics .aux.xml, external pyramids .ovr and masks .msk), so a rerun may replace it; the folder
    is refused, not deleted, if it holds anything else."""
    names = {*OUTPUT_NAMES.values(), *TERRAIN_OUTPUT_NAMES.values()}
    name = entry.name
    for sidecar in (".aux.xml", ".ovr", ".msk"):
        name = name.removesuffix(sidecar)
    return entry.is_file() and name in names


def check_scene_folders(out_dir: str | Path, names: list[str]) -> None:
    """Before any scene is mapped: no `out_dir/<name>/` holds files map did not write (map_scene checks each
    again). Object-storage outputs are not listed."""
    if not is_remote_output(out_dir):
        for name in names:
            check_replaceable(Path(resolve_output(out_dir)) / name, is_map_output, "map")


@dataclass
class MapResult:
    """out_dir and paths are Paths, or URL strings when the output went to object storage."""

    scene: str
    out_dir: Path | str
    paths: dict[str, Path | str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def predictor_options(model: str | os.PathLike | Sequence[str | os.PathLike] | None,
                      backend: str = "auto") -> dict[str, Any]:
    """Keywords for `load_predictor` when its predictor feeds `map_scene` (measured on 2 cores, 5,000² scene,
    docs/benchmarks.md): ONNX Runtime's idle intra-op threads stop busy-waiting, which leaves the CPU to the
    reader and writer threads (INT8: 14 % less CPU, 5 % less wall time), and it stops pre-planning memory per
    batch shape (peak RSS: INT8 -80 MB, fp32 1.48 -> 1.12 GB, at the same speed). torch runs in bfloat16 on a
    CPU that has it in hardware (1.8-1.9x per tile, 99.99 % of the mask unchanged; tenth session), unless the
    environment sets FLOODWATCH_TORCH_BF16=0. An ensemble (a list) gets its members' back-end's; one mixing
    back-ends gets none (load_predictor gives every member the same keywords)."""
    from ..inference.predictor import backend_for

    kinds = {backend_for(m, backend) for m in (model if isinstance(model, (list, tuple)) else [model])}
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind == "onnx":
        return {"spinning": False, "memory_pattern": False}
    if kind == "torch":  # FLOODWATCH_TORCH_BF16=0 keeps float32 (stats.json records which ran)
        return {"bf16_cpu": os.environ.get("FLOODWATCH_TORCH_BF16", "1") != "0"}
    return {}


#: An ONNX file's metadata precision (export's --precision) as stats.json names it: in torch's names, so that a
#: torch model and an ONNX file running the same arithmetic say the same
_ONNX_PRECISION = {"fp32": "float32", "fp16": "float16"}


def predictor_precision(predictor) -> str:
    """The arithmetic a predictor runs in, for stats.json: a torch model's autocast type ('bfloat16' where `map`
    asked for it and the CPU has it, else 'float32'), an ONNX file's precision ('int8', 'float32', 'float16';
    its metadata says 'fp32', 'fp16'), through wrappers (TTA, temperature, downsampling, refinement); an
    ensemble's joined by '+'."""
    members = getattr(predictor, "members", None)
    if members:
        return "+".join(dict.fromkeys(predictor_precision(m) for m in members))
    base = getattr(predictor, "base", None)
    if base is not None:
        return predictor_precision(base)
    if hasattr(predictor, "autocast_dtype"):
        dtype = predictor.autocast_dtype
        return "float32" if dtype is None else str(dtype).replace("torch.", "")
    meta = getattr(predictor, "meta", None)
    if not (isinstance(meta, dict) and "precision" in meta):
        return "unknown"
    return _ONNX_PRECISION.get(str(meta["precision"]), str(meta["precision"]))


def map_scene(scene: str | Path, predictor: Any | str | Path | Sequence[str | Path], out_dir: str | Path, *,
              vh: str | Path | None = None, units: str = "db", tile: int = 512, overlap: int = DEFAULT_OVERLAP,
              batch: int = 4, threshold: float = 0.5,
              water_mask: str | Path | None = None, min_area_m2: float = 1000.0, simplify: float = 1.0,
              probability: str = "uint8", progress: bool = True, backend: str | None = None,
              terrain: Terrain | None = None, chunk_tiles: int = CHUNK_TILES, name: str | None = None,
              self_train: SelfTraining | None = None,
              model: str | Path | Sequence[str | Path] | None = None) -> MapResult:
    """Map floods in one scene and write `out_dir/<scene stem>/` (or `out_dir/<name>/`) atomically.

    scene (and vh, water_mask): a local path or a URL GDAL reads (https://, s3://, gs://); out_dir: a local
    folder or an fsspec URL (s3://, gs://, memory://), see `floodwatch.mapping.locations`.

    predictor: anything with `preprocessing` and `predict(N,C,H,W) -> (N,H,W)` water probability; or a model
    reference (a .pt/.pth checkpoint, an .onnx file, a registered name; a list: an ensemble; None: the default
    model, as `map` without -m), loaded as `map` loads it: `load_predictor(model, **predictor_options(model))`
    (bfloat16 torch on a CPU that has it, FLOODWATCH_TORCH_BF16=0 keeps float32); stats.json's `model` records
    the file that runs. Load it yourself for TTA, refinement or other options.
    vh: the VH file when `scene` is a single-band VV file. units: 'db' or 'linear' power.
    water_mask: permanent-water reference, kept apart from new flood: a raster (any grid), a GeoJSON or
    shapefile, or a public layer name ('jrc-gsw', 'worldcover').
    terrain: HAND/DEM/exclusion options (`Terrain`); water under an exclusion flag is counted apart
    (mask value 3) and an exclusion COG is written; with `depth`, a depth COG too.
    min_area_m2: polygons smaller than this are left out of the GeoJSON (the rasters keep every pixel).
    simplify: polygon simplification tolerance in pixels. probability: 'uint8' (0-100) or 'float32'.
    chunk_tiles: tile columns per window (memory against per-window overhead).
    name: the output folder under `out_dir` (`mapping.locations.output_names` tells same-named scenes apart): a
    folder name, or names joined by '/'; nothing that leads out of `out_dir`.
    tile, overlap, batch, chunk_tiles: ints (a float, even 512.0, is refused).
    self_train: fine-tune the (torch) model on its own confident predictions over up to `max_chips` tiles of this
    scene before mapping it (`floodwatch.inference.selftrain`); the trained weights are back afterwards, so
    the next scene starts from the same model. stats.json's `self_training` says what it did and its seconds.
    stats.json's `stage_seconds` says where the time went (see `floodwatch.mapping.profile`).
    model: the model file that a ready `predictor` runs (a list: an ensemble's), recorded in stats.json as infer
    and evaluate record theirs.
    backend: what stats.json records as the back-end; None: what runs the predictor's model, through its
    wrappers ('torch', 'onnx', 'triton', an ensemble's joined by '+': `inference.base.predictor_backend`; a
    predictor of one's own: its `backend`, else its class name), as `map` records it.
    """
    check_location(scene, "scene")
    check_location(out_dir, "out_dir")
    for option, where in (("vh", vh), ("water_mask", water_mask)):
        if where is not None:
            check_location(where, option)
    if name is not None:
        check_output_name(name)
    _check_options(tile=tile, overlap=overlap, batch=batch, chunk_tiles=chunk_tiles, threshold=threshold,
                   min_area_m2=min_area_m2, simplify=simplify, probability=probability)
    if predictor is None or model_files(predictor):
        if model is not None:
            raise InvalidArgumentError("model: names the file a ready `predictor` runs; leave it out when "
                                       "`predictor` is the model file")
        from ..inference.predictor import load_predictor

        share_one_malloc_arena()  # before ONNX Runtime's and torch's threads first allocate, as `map` does
        refs = list(predictor) if isinstance(predictor, (list, tuple)) else predictor
        # stats.json then names the file that runs (predictor_model_file): a registered name is no path
        predictor = load_predictor(refs, **predictor_options(refs))
    elif not (hasattr(predictor, "predict") and hasattr(predictor, "preprocessing")):
        raise InvalidArgumentError(f"predictor: a {type(predictor).__name__} is neither a Predictor (with "
                                   "`preprocessing` and `predict`) nor a model file")
    if self_train is not None:
        from ..inference.selftrain import torch_model

        self_train.validate()
        torch_model(predictor)  # an ONNX/Triton model is refused before the scene is read
    if terrain is not None:
        terrain.validate()
        terrain = terrain if terrain.active else None
    if is_remote_output(out_dir):  # map into a local folder, then upload it
        with tempfile.TemporaryDirectory(prefix="floodwatch-map-") as staging:
            local = map_scene(scene, predictor, staging, vh=vh, units=units, tile=tile, overlap=overlap, batch=batch,
                              threshold=threshold, water_mask=water_mask, min_area_m2=min_area_m2,
                              simplify=simplify, probability=probability, progress=progress, backend=backend,
                              terrain=terrain, chunk_tiles=chunk_tiles, name=name, self_train=self_train,
                              model=model)
            url = upload_dir(local.out_dir, f"{resolve_output(out_dir)}/{name or local.out_dir.name}")
        return MapResult(scene=local.scene, out_dir=url,
                         paths={k: f"{url}/{Path(v).name}" for k, v in local.paths.items()}, stats=local.stats)
    out_dir = resolve_output(out_dir)
    share_one_malloc_arena()  # before the reader and writer threads start (see floodwatch.mapping.memory)
    t_start = time.perf_counter()
    clock = StageClock()
    env = {} if os.environ.get("GDAL_CACHEMAX") else {"GDAL_CACHEMAX": GDAL_CACHE_MB}
    with rasterio.Env(**env), SceneReader(scene, vh=vh, units=units, bands=predictor.preprocessing.bands) as reader, \
            contextlib.ExitStack() as adapted:
        grid = TileGrid(reader.height, reader.width, tile, overlap, pad_last_row=True)  # memory: see TileGrid
        final = Path(out_dir) / (name or reader.stem)
        # the folder may be the user's (same name as the scene): refused before the work, not replaced after it
        check_replaceable(final, is_map_output, "map")
        with data_errors_of("water_mask"):  # the flag first, as the terrain layers' errors
            water = open_mask(water_mask, reader) if water_mask else None
        try:
            t_terrain, cpu_terrain = time.perf_counter(), time.process_time()
            # HAND from a DEM, or public tiles fetched, can take minutes before the first tile is mapped
            with _working(progress and terrain is not None, "terrain layers (DEM/HAND, slope, radar shadow)"):
                layers = TerrainLayers(terrain, scene, reader) if terrain else None
            t_terrain, cpu_terrain = time.perf_counter() - t_terrain, time.process_time() - cpu_terrain
            with atomic_dir(final, ours=is_map_output, writer="map") as tmp:
                self_training = None
                if self_train is not None:  # once every input and the output folder passed their checks; the
                    # weights go back when `adapted` closes
                    self_training = adapted.enter_context(_self_trained(reader, predictor, self_train, tile,
                                                                        progress))
                run = _Run(reader, grid, predictor, tmp, batch=batch, threshold=threshold, water=water,
                           probability=probability, clock=clock, chunk_tiles=chunk_tiles, terrain=layers)
                run.execute(progress)
                release_freed_memory()  # the loop's windows, before the COG helper and vectorising start
                paths = {k: final / v for k, v in OUTPUT_NAMES.items()}
                depth = None
                if layers is not None:
                    paths["exclusion"] = final / TERRAIN_OUTPUT_NAMES["exclusion"]
                    if terrain.depth:
                        t0, cpu0 = time.perf_counter(), time.process_time()
                        # timed in stats["terrain"] (runtime_s, cpu_s), not a stage of every run
                        depth = _write_depth(tmp, reader, layers, terrain.depth_percentile)
                        paths["depth"] = final / TERRAIN_OUTPUT_NAMES["depth"]
                        t_terrain += time.perf_counter() - t0
                        cpu_terrain += time.process_time() - cpu0
                with ThreadPoolExecutor(1, thread_name_prefix="floodwatch-cog") as pool:
                    rasters = run.finish_rasters(pool, env)
                    with clock.stage("vectorise"):
                        poly = vectorize_mask(tmp / OUTPUT_NAMES["mask"], tmp / OUTPUT_NAMES["polygons"],
                                              min_area_m2=min_area_m2, simplify=simplify,
                                              max_pixel_m2=float(run.area.pixel_m2.max()),
                                              properties=depth.properties if depth is not None else None)
                    for seconds in rasters:
                        clock.add(seconds.result())
                with clock.stage("stats"):
                    stats = run.stats(scene=scene, vh=vh, units=units, water_mask=water_mask, threshold=threshold,
                                      backend=backend or predictor_backend(predictor),
                                      polygons=poly, runtime_s=time.perf_counter() - t_start)
                    stats["model"] = (model_file_label(model) if model is not None
                                      else predictor_model_file(predictor))
                    stats["precision"] = predictor_precision(predictor)
                    stats.update(predictor_settings(predictor))  # TTA, refinement ... as evaluate/infer record
                    if self_training is not None:
                        stats["self_training"] = self_training
                    if layers is not None:
                        # layer building and depth (the per-window flag bookkeeping runs inside the writer thread)
                        stats["terrain"] = {**layers.info, "runtime_s": t_terrain, "cpu_s": cpu_terrain,
                                            "depth": depth.summary if depth is not None else None}
                    _save_quicklook(run.quicklook, tmp / OUTPUT_NAMES["quicklook"], name or reader.stem, stats,
                                    reference=water is not None, terrain=layers is not None)
                stats["stage_seconds"] = clock.as_dict()
                write_json(tmp / OUTPUT_NAMES["stats"], stats)
        finally:
            if water is not None:
                water.close()
    return MapResult(scene=str(scene), out_dir=final, paths=paths, stats=stats)


def _save_quicklook(look: Quicklook, path: Path, name: str, stats: dict, *, reference: bool, terrain: bool) -> None:
    """Without a permanent-water reference every detected water pixel is mask value 1, rivers and lakes too:
    the title and legend then say water, not new flood. The legend lists the classes this run could produce."""
    share = stats["flooded_fraction"]
    what = "new flood" if reference else "water (flood or permanent: no water_mask)"
    title = (f"{name}: {stats['flooded_km2']:.2f} km2 {what}, {'-' if share is None else f'{100 * share:.1f}'}% "
             f"of {stats['valid_km2']:.1f} km2 imaged")
    classes = ["flood" if reference else "water", *(["permanent water"] if reference else []),
               *(["excluded (terrain)"] if terrain else []), "no data"]
    look.save(path, title, classes)


def model_files(predictor) -> bool:
    """Whether `predictor` is a model file for load_predictor, or a list of them (an ensemble)."""
    if isinstance(predictor, (list, tuple)):
        return bool(predictor) and all(isinstance(m, (str, os.PathLike)) for m in predictor)
    return isinstance(predictor, (str, os.PathLike))


def _check_options(*, tile, overlap, batch, chunk_tiles, threshold, min_area_m2, simplify, probability) -> None:
    """map_scene's numbers, refused as the caller's argument (InvalidArgumentError) naming it. A float is no
    int even when whole (512.0, from 1024 / 2): numpy would fail on it deep inside the run; bool is no number."""
    for option, value, least in (("tile", tile, 1), ("overlap", overlap, 0), ("batch", batch, 1),
                                 ("chunk_tiles", chunk_tiles, 1)):
        check_whole(value, option, least)
    for option, value in (("threshold", threshold), ("min_area_m2", min_area_m2), ("simplify", simplify)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidArgumentError(f"{option}: {value!r} is a {type(value).__name__}, not a number")
    try:  # the rules every sliding-window prediction shares (inference.tiling), here a caller's bad argument
        check_prediction(threshold, batch)
        check_tiling(tile, overlap)
    except FloodwatchError as exc:
        raise InvalidArgumentError(str(exc)) from None
    if probability not in ("uint8", "float32"):
        raise InvalidArgumentError(f"probability: '{probability}' is not one of uint8, float32")
    for option, value in (("min_area_m2", min_area_m2), ("simplify", simplify)):
        if not value >= 0:
            raise InvalidArgumentError(f"{option}: {value} must be at least 0")


@contextlib.contextmanager
def _self_trained(reader: SceneReader, predictor, options: SelfTraining, tile: int, progress: bool):
    """`self_trained` on up to `options.max_chips` tiles drawn from the scene; yields its record for stats.json
    with the seconds spent reading them and in all."""
    from ..inference.selftrain import self_trained

    t0 = time.perf_counter()
    windows = sample_tiles(reader, tile, options.max_chips, seed=options.seed)
    read_s = time.perf_counter() - t0
    if not windows:  # mapped as it is: there is nothing to learn from, and an error would lose the map
        yield {"chips": 0, "steps_run": 0, "skipped": "no tile of the scene is at least half data",
               "read_seconds": round(read_s, 2), "seconds": round(read_s, 2)}
        return
    inputs = [predictor.preprocessing.apply(image[None], valid[None])[0] for image, valid in windows]
    with self_trained(predictor, inputs, [valid for _, valid in windows], options, progress) as info:
        yield {**info, "read_seconds": round(read_s, 2), "seconds": round(time.perf_counter() - t0, 2)}


def _write_depth(tmp: Path, ref, layers: TerrainLayers, percentile: float) -> FloodDepth:
    """Depth of every flood pixel from the finished mask and the DEM, written as a float32 COG."""
    import rasterio

    with rasterio.open(tmp / OUTPUT_NAMES["mask"]) as ds:
        flood = ds.read(1) == 1
    depth = FloodDepth.compute(flood, layers.dem, percentile)
    part = tmp / ".flood_depth.full.tif"
    with open_strip_writer(part, ref, "float32", float("nan")) as ds:
        write_window(ds, 0, 0, depth.depth)
    # timed with the terrain steps (stats["terrain"]), not as stages of every run
    finish_raster(str(part), str(tmp / TERRAIN_OUTPUT_NAMES["depth"]), "average",
                  f"flood depth (m): DEM p{percentile:g} along each flood area's edge minus the ground", {})
    return depth


class _Run:
    """One pass over a scene, window by window: reader thread -> predicting and blending on the caller's
    thread -> writer thread."""

    def __init__(self, reader: SceneReader, grid: TileGrid, predictor, tmp: Path, *, batch: int, threshold: float,
                 water, probability: str, clock: StageClock, chunk_tiles: int,
                 terrain: TerrainLayers | None = None):
        self.reader, self.grid, self.predictor, self.tmp = reader, grid, predictor, tmp
        self.clock, self.blender = clock, WindowBlender(grid, chunk_tiles)
        self.batch, self.threshold, self.water, self.probability = batch, threshold, water, probability
        self.terrain = terrain
        self.area = AreaCounter(reader.crs, reader.transform, reader.height, reader.width)
        self.quicklook = Quicklook(reader.height, reader.width, transform=reader.transform, crs=reader.crs)
        self.tiles_predicted = 0
        self.tiles_done = 0
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        # (file, name, resampling, description, deflate level)
        self.pending_rasters: list[tuple[Path, str, str, str, int]] = []

    # -- threads ---------------------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _DONE

    def _close(self, q: queue.Queue, consumer: threading.Thread) -> None:
        """Tell the consumer thread to finish, unless it has already died."""
        while consumer.is_alive():
            try:
                q.put(_DONE, timeout=0.1)
                return
            except queue.Full:
                continue

    def _guard(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            self.errors.append(exc)
            self.stop.set()

    def _windows(self):
        for i in range(len(self.grid.row_origins)):
            for j in range(len(self.blender.chunks)):
                yield i, j

    def _read(self, q_in: queue.Queue) -> None:
        try:
            for i, j in self._windows():
                with self.clock.stage("read"):
                    image, valid = self.reader.read_window(*self.blender.window(i, j))
                if not self._put(q_in, (i, j, image, valid)):
                    return
        finally:
            self._put(q_in, _DONE)

    def _write(self, q_out: queue.Queue) -> None:
        ref = self.reader
        mask_tmp, prob_tmp = self.tmp / ".flood_mask.full.tif", self.tmp / ".flood_probability.full.tif"
        prob_dtype, prob_nodata = (("uint8", PROB_NODATA_U8) if self.probability == "uint8"
                                   else ("float32", float("nan")))
        excl_tmp = self.tmp / ".exclusion.full.tif"
        with contextlib.ExitStack() as stack:
            # windows finish rows at multiples of the tile step and columns at multiples of a chunk's width
            step = self.grid.tile - self.grid.overlap
            block = aligned_block(step, step * len(self.blender.chunks[0]))
            mds = stack.enter_context(open_strip_writer(mask_tmp, ref, "uint8", MASK_NODATA, block))
            pds = stack.enter_context(open_strip_writer(prob_tmp, ref, prob_dtype, prob_nodata, block))
            eds = (stack.enter_context(open_strip_writer(excl_tmp, ref, "uint8", EXCLUSION_NODATA, block))
                   if self.terrain is not None else None)
            while True:
                item = q_out.get()
                if item is _DONE:
                    break
                if self.stop.is_set():
                    continue  # drain so the producer never blocks
                with self.clock.stage("write"):
                    self._write_window(mds, pds, eds, *item)
        if not self.stop.is_set():
            # the mask first: vectorising and depth read it
            self._to_cog(mask_tmp, OUTPUT_NAMES["mask"], "nearest", "flood: 1 flood, 0 dry, 2 permanent water, "
                         "3 water-like but excluded by terrain, 255 no data")
            self.pending_rasters = [(prob_tmp, OUTPUT_NAMES["probability"], "average", "water probability" +
                                     (" (percent)" if prob_dtype == "uint8" else ""), PROBABILITY_DEFLATE_LEVEL)]
            if eds is not None:
                self.pending_rasters.append((excl_tmp, TERRAIN_OUTPUT_NAMES["exclusion"], "nearest",
                                             EXCLUSION_DESCRIPTION, DEFLATE_LEVEL))

    def _to_cog(self, tmp: Path, name: str, resampling: str, description: str) -> None:  # the mask
        self.clock.add(finish_raster(str(tmp), str(self.tmp / name), resampling, description, {}))

    def finish_rasters(self, pool: Executor, gdal_env: dict) -> list[Future]:
        """Start the overviews and COGs of the rasters after the mask (probability, exclusion) on `pool`; each
        future gives its stage seconds. `map_scene` vectorises meanwhile, so both cores work after the last
        window. From `COG_PROCESS_PIXELS` up the work runs in a helper process (`finish_raster_in_process`):
        beside a thread vectorising slowed from 10.7 to 14-17 s at real size, and the process takes about
        0.4 s to start (docs/benchmarks.md, tenth session), more than a small scene's whole tail."""
        big = self.reader.height * self.reader.width >= COG_PROCESS_PIXELS
        finish = finish_raster_in_process if big else finish_raster
        jobs = [pool.submit(finish, str(part), str(self.tmp / name), resampling, description, gdal_env, level)
                for part, name, resampling, description, level in self.pending_rasters]
        self.pending_rasters = []
        return jobs

    def _write_window(self, mds, pds, eds, row0: int, col0: int, prob: np.ndarray, valid: np.ndarray) -> None:
        valid = valid & np.isfinite(prob)
        water = valid & (prob >= self.threshold)
        mask = np.where(valid, np.uint8(0), np.uint8(MASK_NODATA))
        rows, cols = prob.shape
        if self.water is not None:
            reference = self.water.read_window(row0, row0 + rows, col0, col0 + cols) & valid
            flood = water & ~reference
            mask[water & reference] = PERMANENT
            self.area.add("permanent_reference", row0, reference, col0)
            self.area.add("permanent_detected", row0, water & reference, col0)
        else:
            flood = water
        if self.terrain is not None:
            # Known water (the reference) wins over terrain: a lake in a steep valley is still a lake.
            flags = self.terrain.read_window(row0, row0 + rows, col0, col0 + cols)
            excluded = flood & (flags != 0)
            flood = flood & ~excluded
            mask[excluded] = EXCLUDED
            self.area.add("excluded_water", row0, excluded, col0)
            for bit, name in FLAG_NAMES.items():
                self.area.add(f"excluded_{name}", row0, valid & ((flags & bit) != 0), col0)
            write_window(eds, row0, col0, np.where(valid, flags, np.uint8(EXCLUSION_NODATA)))
        mask[flood] = 1
        if self.probability == "uint8":
            out = np.where(valid, np.rint(np.nan_to_num(prob) * 100), PROB_NODATA_U8).astype(np.uint8)
        else:
            out = np.where(valid, prob, np.float32(np.nan)).astype(np.float32)
        write_window(mds, row0, col0, mask)
        write_window(pds, row0, col0, out)
        for name, sel in (("valid", valid), ("water", water), ("flood", flood), ("dry", valid & ~water)):
            self.area.add(name, row0, sel, col0)
        self.quicklook.add_mask(row0, mask, col0)

    # -- the caller's thread: tiles -> predictor -> blender ----------------------------------------------
    def execute(self, show_progress: bool) -> None:
        # One window waits in each queue: enough to keep reading, predicting and writing overlapped, and
        # each slot is a window's worth of memory (a 3,872 px wide window of two bands: 16 MB).
        q_in: queue.Queue = queue.Queue(maxsize=1)
        q_out: queue.Queue = queue.Queue(maxsize=1)
        reader = threading.Thread(target=self._guard, args=(self._read, q_in), name="floodwatch-read", daemon=True)
        writer = threading.Thread(target=self._guard, args=(self._write, q_out), name="floodwatch-write",
                                  daemon=True)
        reader.start()
        writer.start()
        t0 = time.perf_counter()
        try:
            with _progress(show_progress) as bar:
                task = bar.add_task(self.reader.stem, total=len(self.grid), rate="")
                while True:
                    item = self._get(q_in)
                    if item is _DONE:
                        break
                    i, j, image, valid = item
                    self.blender.start(i, j)
                    self._predict_window(image, valid, self.blender.chunks[j])
                    with self.clock.stage("blend"):
                        row0, col0, prob = self.blender.finish()
                    n, m = prob.shape
                    self.quicklook.add_sar(row0, image[0, :n, :m], col0)
                    if not self._put(q_out, (row0, col0, prob, valid[:n, :m].copy())):
                        break
                    self.tiles_done += len(self.blender.chunks[j])
                    dt = max(time.perf_counter() - t0, 1e-9)
                    km2 = self.area.km2("valid") if show_progress else 0.0
                    bar.update(task, completed=self.tiles_done,
                               rate=f"{self.tiles_done / dt:.1f} tiles/s  {km2 / dt:.1f} km²/s")
        except BaseException as exc:
            self.errors.append(exc)
            self.stop.set()
        finally:
            self._close(q_out, writer)
            reader.join()
            writer.join()
        if self.errors:
            raise self.errors[0]

    def _predict_window(self, image: np.ndarray, valid: np.ndarray, chunk: list[int]) -> None:
        t, (h, w) = self.grid.tile, image.shape[-2:]
        c0 = chunk[0]
        if h < t or w < chunk[-1] - c0 + t:  # only when the scene is smaller than a tile along that axis
            pad = ((0, 0), (0, t - h), (0, chunk[-1] - c0 + t - w))
            image = np.pad(image, pad, constant_values=np.nan)
            valid = np.pad(valid, pad[1:], constant_values=False)
        cols = [col for col in chunk if valid[:, col - c0:col - c0 + t].any()]  # all-nodata tiles skipped
        for k in range(0, len(cols), self.batch):
            part = cols[k:k + self.batch]
            with self.clock.stage("preprocess"):
                x = np.stack([image[:, :, col - c0:col - c0 + t] for col in part])
                v = np.stack([valid[:, col - c0:col - c0 + t] for col in part])
                x = self.predictor.preprocessing.apply(x, v)
            with self.clock.stage("predict"):
                prob = np.asarray(self.predictor.predict(x), np.float32)
            if prob.shape != (len(part), t, t):
                raise FloodwatchError(f"predictor returned shape {prob.shape}, expected {(len(part), t, t)}")
            with self.clock.stage("blend"):
                for col, p in zip(part, prob):
                    self.blender.add(col, p)
            self.tiles_predicted += len(part)

    # -- summary -----------------------------------------------------------------------------------------
    def stats(self, *, scene, vh, units, water_mask, threshold, backend, polygons, runtime_s) -> dict[str, Any]:
        a, r = self.area, self.reader
        valid, flood = a.km2("valid"), a.km2("flood")
        split = {"flood": flood, "permanent_water": a.km2("permanent_detected"),
                 "excluded_water": a.km2("excluded_water"), "dry": a.km2("dry")}
        return {
            # absolute, so the record stays usable from elsewhere (the web map's SAR backdrop, `aoi record`)
            "scene": resolve_input(scene), "vh": resolve_input(vh) if vh else None, "units": units, "backend": backend,
            "crs": r.crs.to_string(), "transform": list(r.transform)[:6], "width": r.width, "height": r.height,
            "tile": self.grid.tile, "overlap": self.grid.overlap, "batch": self.batch, "threshold": threshold,
            "tiles": len(self.grid), "tiles_predicted": self.tiles_predicted,
            "valid_km2": valid, "water_km2": a.km2("water"), "flooded_km2": flood,
            # of nothing seen no share is flooded, not 0 % (as infer's summary.json says null)
            "flooded_fraction": flood / valid if valid > 0 else None,
            "permanent_water_km2": a.km2("permanent_detected"),
            "permanent_water_reference_km2": a.km2("permanent_reference"),
            "excluded_water_km2": split["excluded_water"],
            # flood + permanent water + dark-but-excluded + dry = the valid (imaged) area
            "area_split_km2": split,
            "excluded_area_km2": ({name: a.km2(f"excluded_{name}") for name in FLAG_NAMES.values()}
                                  if self.terrain is not None else None),
            "water_mask": str(water_mask) if water_mask else None,
            "valid_pixels": a.pixels("valid"), "flooded_pixels": a.pixels("flood"),
            "polygons": polygons["features"], "polygon_area_km2": polygons["area_km2"],
            "polygons_removed_small": polygons["removed"],
            "area_method": "per pixel, blocks of 64 px measured in a scene-centred Lambert equal-area projection "
                           "(WGS84); polygon areas with pyproj.Geod",
            "runtime_s": runtime_s, "tiles_per_s": len(self.grid) / runtime_s if runtime_s else 0.0,
            "km2_per_s": valid / runtime_s if runtime_s else 0.0,
        }


@contextlib.contextmanager
def _working(show: bool, what: str) -> Iterator[None]:
    """A spinner with the time elapsed, for a stage with no count to show."""
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), disable=not show,
                  transient=True) as bar:
        bar.add_task(what, total=None)
        yield


def _progress(show: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not show, transient=False)
