"""Options shared by the commands that run a model (evaluate, infer, map, change), declared once."""
from pathlib import Path
from typing import Optional

import typer

from .common import MODEL_HELP, Backend, MapBackend, Protocol

THRESHOLD = typer.Option(0.5, "--threshold", help="Water probability threshold.")
BACKEND = typer.Option(Backend.auto, "--backend", help="Model back-end; auto picks by the file suffix.")
TTA = typer.Option(False, "--tta", help="Test-time augmentation (identity, hflip, vflip, rot90).")
TTA_TRANSFORMS = typer.Option(None, "--tta-transforms", help="TTA views, e.g. 'hflip,vflip' or 'd4' (implies --tta).")
DOWNSAMPLE = typer.Option(1, "--downsample", min=1, help="Run the model on an N-times coarser grid (block means) and "
                          "interpolate its water probability back: about N² less model arithmetic; its accuracy "
                          "cost is in docs/benchmarks.md. The coarse grid keeps at least 8 px across each chip "
                          "or tile; a larger N is refused.")
SELF_TRAIN = typer.Option(False, "--self-train", help="Fine-tune the model on its own confident predictions over "
                          "each scene (map) or each region of the data (evaluate) before predicting it: up to 64 "
                          "tiles, 50 steps, no label read; the weights go back after each. Needs a torch checkpoint "
                          "(-m x.pt, or the default model's). Costs about 90 s a scene on 2 busy CPU cores. Left "
                          "out, 7 unseen events: 0.562 against 0.563 plain (Spain +2 points, Somalia -3: it helps "
                          "scenes with water to learn from, hurts scenes with almost none); docs/benchmarks.md, "
                          "sixteenth session.")
TILE = typer.Option(512, "--tile", min=8, help="Tile size in pixels.")
BATCH = typer.Option(4, "--batch", min=1, help="Tiles per predictor call.")
# = inference.tiling.DEFAULT_OVERLAP, written out so the CLI starts without numpy (a test checks they agree)
OVERLAP = typer.Option(32, "--overlap", min=0, help="Overlap between tiles in pixels.")
WEIGHTS = typer.Option(None, "--weights", help="Ensemble weights, one per -m: '2,1'.")
TEMPERATURE = typer.Option(None, "--temperature", help="Apply the temperature in this JSON file.")
REFINE = typer.Option(None, "--refine", help="Refine the probability: none, guided (edge-aware guided filter, "
                      "guidance = the SAR input), 'guided:r=4,eps=0.1,min=16' (radius, edge threshold, flip "
                      "regions under 16 px) or 'clean:min=16' (flip only).")
# The model options of the commands that map scenes (map, run, aoi watch): built by `scene_predictor`.
MAP_MODEL = typer.Option(None, "-m", "--model", help=MODEL_HELP + " Repeat for an ensemble. Not used by triton.")
MAP_BACKEND = typer.Option(MapBackend.auto, "--backend",
                           help="Model back-end; auto picks by the file suffix; triton calls a server.")
TRITON_URL = typer.Option("127.0.0.1:8000", "--url", help="Triton server address (backend triton).")
TRITON_MODEL = typer.Option("flood", "--triton-model", help="Model name on the Triton server.")
PROTOCOL = typer.Option(Protocol.http, "--protocol", help="Triton protocol (backend triton).")
# the default as monitoring.store.default_db_path() finds it (a test checks they agree)
DB = typer.Option(None, "--db", envvar="FLOODWATCH_DB",
                  help="Monitoring database: a file, sqlite:///path or postgresql://user:pass@host/db; "
                       "default $FLOODWATCH_DB or ~/.floodwatch/floodwatch.db.")

WATER_MASK = typer.Option(None, "--water-mask", help="Permanent water, counted apart: raster (any CRS; path or URL), "
                          "GeoJSON/shapefile, or 'jrc-gsw' / 'worldcover' (fetched for the scene).")

# Terrain (map, run): built into a mapping.terrain.Terrain by `terrain_options`.
HAND = typer.Option(None, "--hand", help="HAND raster (m; a path or URL), or 'glo30-hand'; computed from --dem when "
                    "absent.")
HAND_MAX = typer.Option(15.0, "--hand-max", min=0, help="Exclude water more than this many metres above drainage.")
DEM = typer.Option(None, "--dem", help="DEM raster (a path or URL), or 'glo30-dem': slope, radar shadow/layover, HAND, "
                   "depth.")
SLOPE_MAX = typer.Option(15.0, "--slope-max", min=0, max=90,
                         help="Exclude water on terrain steeper than this (degrees).")
EXCLUDE = typer.Option(None, "--exclude", help="Exclusion mask: raster (nonzero) or GeoJSON/shapefile.")
DEPTH = typer.Option(False, "--depth", help="Flood depth COG and per-polygon depth (needs --dem).")
ORBIT = typer.Option(None, "--orbit", help="ascending or descending, when the scene's metadata do not say.")


def terrain_options(hand, hand_max, dem, slope_max, exclude, depth, orbit):
    """The Terrain for these option values, or None when no terrain option was given."""
    from ..errors import FloodwatchError
    from ..mapping.terrain import Terrain

    if depth and dem is None:
        raise FloodwatchError("--depth: needs --dem")
    if orbit is not None and orbit not in ("ascending", "descending"):
        raise FloodwatchError(f"--orbit: '{orbit}' is not one of ascending, descending")
    terrain = Terrain(hand=hand, hand_max=hand_max, dem=dem, slope_max=slope_max, exclude=exclude, depth=depth,
                      orbit=orbit)
    return terrain if terrain.active else None


def check_self_train(model, backend: str, downsample: int) -> None:
    """--self-train's refusals, before any data is read: a model that cannot learn, or a coarser grid."""
    from ..errors import FloodwatchError
    from ..inference.predictor import backend_for

    kind = backend_for(model, backend)
    if kind != "torch":  # `map --backend triton` has no model file: the server runs its own
        runs = (f"{model} runs on {kind}" if backend == "auto" else  # an .onnx file
                f"--backend {kind} runs a model on a server" if kind == "triton" else f"--backend {kind} runs it")
        raise FloodwatchError(f"--self-train: needs a torch checkpoint to fine-tune; {runs}, which cannot learn")
    if downsample != 1:
        raise FloodwatchError("--self-train: fine-tunes the model at full resolution; not with --downsample")


def scene_model(model: Optional[list[str]], backend: str, *, url: str, triton_model: str, protocol: str,
                tta: bool, tta_transforms: Optional[str], refine: Optional[str], downsample: int, threshold: float,
                tile: int, weights: Optional[str] = None, temperature: Optional[Path] = None,
                self_train: bool = False):
    """(model, load_predictor keywords) as the commands that map scenes (map, run, aoi watch) take them from
    their model options: the model a path, a list of paths (an ensemble) or None (the Triton server's); the
    keywords plain values, which Dask workers get as they are. Every refusal comes before any model loads, and
    all of it before the caller opens a store, asks a catalog or starts a cluster."""
    from ..errors import FloodwatchError
    from ..inference.refine import parse_refine
    from ..mapping import predictor_options
    from ..models.zoo import kind_for_backend
    from .common import resolve_models

    # a file given here would be silently not the one mapping; a temperature acts on any model's probabilities,
    # so one fitted (evaluate --calibrate) on the file the server runs holds there
    if backend == "triton":
        for flag, given in (("-m/--model", model), ("--weights", weights)):
            if given:
                raise FloodwatchError(f"{flag}: not used with --backend triton, which runs the server's model "
                                      "(--triton-model names it)")
    if self_train and len(model or []) > 1:  # it fine-tunes one network per scene
        raise FloodwatchError(f"--self-train: fine-tunes one torch checkpoint; not an ensemble of {len(model)} "
                              "models (-m)")
    refine_kwargs = parse_refine(refine, threshold)  # per tile: the blender averages refined probabilities
    check_downsample(downsample, tile)
    model_kwargs = {}
    if weights is not None:  # none given: the default model, one
        model_kwargs["weights"] = parse_weights(weights, model or [None])
    if temperature is not None:  # read here: Dask workers need no access to the file
        from ..inference.temperature import load_temperature

        model_kwargs["temperature"] = load_temperature(temperature)
    if backend == "triton":  # the server names its own model
        kwargs = {"url": url, "model_name": triton_model, "protocol": protocol}
    else:  # self-training needs the default's checkpoint
        models = resolve_models(model, "checkpoint" if self_train else kind_for_backend(backend))
        model = models if len(models) > 1 else models[0]
        kwargs = predictor_options(model, backend)
    if self_train:  # an ONNX file cannot learn (Dask workers would each fail)
        check_self_train(model, backend, downsample)
    kwargs.update(model_kwargs)
    if tta or tta_transforms:
        kwargs["tta"] = tta_transforms or True
    if downsample != 1:
        kwargs["downsample"] = downsample
    if refine_kwargs is not None:
        kwargs["refine"] = refine_kwargs
    return model, kwargs


def scene_predictor(model: Optional[list[str]], backend: str, **options):
    """The Predictor `scene_model`'s options describe, loaded in this process."""
    return load_scene_predictor(*scene_model(model, backend, **options), backend)


def load_scene_predictor(model, kwargs: dict, backend: str):
    """The Predictor for `scene_model`'s model and keywords (map_scene names its back-end in stats.json)."""
    from ..inference.predictor import load_predictor
    from ..mapping.memory import share_one_malloc_arena

    share_one_malloc_arena()  # before ONNX Runtime's and torch's threads first allocate
    return load_predictor(model, backend=backend, **kwargs)


def check_downsample(downsample: int, tile: int) -> None:
    """The refusal the downsampled model makes at the first tile (too few coarse pixels across it), made before
    a download: a scene is mapped in tiles of at most --tile px."""
    from ..errors import FloodwatchError

    if downsample == 1:
        return
    from ..inference.downsample import MIN_COARSE_PX

    coarse_px = -(-tile // downsample)  # as DownsampledPredictor counts them: a partial block is a pixel
    if coarse_px < MIN_COARSE_PX:
        most = max(1, (tile - 1) // (MIN_COARSE_PX - 1))
        raise FloodwatchError(f"--downsample: a factor of {downsample} leaves {coarse_px} px across a {tile} px tile "
                              f"(--tile); a prediction needs at least {MIN_COARSE_PX} (a factor of at most {most} "
                              "here)")


def parse_weights(weights: Optional[str], models: list[Path]) -> Optional[list[float]]:
    """'--weights 2,1' -> [2.0, 1.0] (one per -m)."""
    from ..errors import FloodwatchError

    if weights is None:
        return None
    try:
        values = [float(w) for w in weights.split(",")]
    except ValueError:
        raise FloodwatchError(f"--weights '{weights}': expected numbers separated by commas") from None
    if len(values) != len(models):
        raise FloodwatchError(f"--weights: {len(values)} weights for {len(models)} models (-m)")
    if len(values) == 1:
        raise FloodwatchError("--weights: ensemble weights need more than one model (-m)")
    from ..inference.ensemble import ensemble_weights

    ensemble_weights(values, len(values))  # its rule, before any model loads (or a Dask worker meets it)
    return values


def model_options_predictor(model: list[Path], backend: str, tta: bool, tta_transforms: Optional[str],
                            weights: Optional[str], temperature: Optional[Path], refine: Optional[str] = None,
                            threshold: float = 0.5, downsample: int = 1):
    """The Predictor the shared model options describe: one model or an ensemble, TTA, temperature,
    refinement (its small-region clean-up uses the command's --threshold unless the spec sets t=)."""
    from ..inference import load_predictor
    from ..inference.temperature import load_temperature
    from ..inference.refine import parse_refine

    if tta_transforms and not tta:
        tta = True
    refine_kwargs = parse_refine(refine, threshold)  # before loading: a bad --refine fails fast
    return load_predictor(model, backend, tta=(tta_transforms or True) if tta else None,
                          temperature=load_temperature(temperature) if temperature else None,
                          weights=parse_weights(weights, model), refine=refine_kwargs, downsample=downsample)


#: exit status of a command that stored its records but could not deliver an alert to a webhook
ALERTS_UNDELIVERED = 3


def exit_if_undelivered(store, record_ids: list[int]) -> None:
    """Exit ALERTS_UNDELIVERED when an alert of these records has not reached a webhook: the records are
    stored, but cron and scripts must be able to tell that nobody was told."""
    from ..monitoring.alerts import undelivered
    from .common import make_console

    n = undelivered(store, record_ids)
    if n:
        make_console(stderr=True).print(f"[yellow]warning:[/] {n} webhook deliver{'y' if n == 1 else 'ies'} of "
                                        "these alerts not done; `floodwatch aoi retry-alerts` sends them again",
                                        highlight=False)
        raise typer.Exit(ALERTS_UNDELIVERED)
