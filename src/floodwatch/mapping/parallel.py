"""Many scenes at once on a Dask distributed cluster; every task loads its own predictor."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.progress import Progress

from ..data.files import TIFF_SUFFIXES, pair_band_files
from ..errors import DataError, FloodwatchError, InvalidArgumentError
from ..io import output_folder
from .locations import (check_location, input_stem, is_remote_input, is_remote_output, output_names, resolve_input,
                        resolve_output)
from .pipeline import MapResult, check_scene_folders, map_scene, model_files
from .terrain_sources import public_layer


def scene_files(paths: Sequence[str | Path]) -> list[Path | str]:
    """Files as given; a folder stands for every GeoTIFF directly inside it (sorted); URLs (https://, s3://,
    gs://) stay strings."""
    out: list[Path | str] = []
    for given in paths:
        check_location(given, "scenes")
        if is_remote_input(given):
            out.append(str(given))
            continue
        p = Path(given)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in TIFF_SUFFIXES and f.is_file())
            if not found:
                raise DataError(f"{p}: folder holds no GeoTIFF (.tif/.tiff)")
            out.extend(found)
        else:
            out.append(p)
    return out


def _resolve_source(source):
    """A layer location workers can open: public layer names ('jrc-gsw', 'glo30-dem') and URLs unchanged,
    local paths absolute."""
    if source is None or public_layer(str(source)) is not None:
        return source
    return resolve_input(source)


def _model_files(model) -> bool:
    """Whether `model` is for load_predictor: a path, a list of them (an ensemble), or None (the Triton server
    names its own model)."""
    return model is None or model_files(model)


def _load(model, backend: str, predictor_kwargs: dict):
    if _model_files(model):
        from ..inference import load_predictor

        return load_predictor(model, backend, **predictor_kwargs)
    if hasattr(model, "predict") and not isinstance(model, type):
        return model  # a ready predictor (shared by threads of an in-process cluster)
    return model()  # a factory or class: lets callers plug in any Predictor


def _map_one(scene: str, model, out_dir: str, backend: str, predictor_kwargs: dict, kw: dict) -> MapResult:
    predictor = _load(model, backend, predictor_kwargs)
    files = _model_files(model)
    try:
        return map_scene(scene, predictor, out_dir, progress=False,
                         model=model if files else None, **kw)
    except FloodwatchError as exc:
        failure = exc
    # Re-raised bare, outside the handler: a chained library exception (rasterio's) may not unpickle
    # on the client, and the one-line message is all the caller needs.
    raise type(failure)(str(failure))


def map_scenes(scenes: Sequence[str | Path], model: str | Path | Sequence[str | Path] | Callable | Any,
               out_dir: str | Path, *,
               workers: int | None = None, scheduler: str | None = None, backend: str = "auto",
               predictor_kwargs: dict | None = None, processes: bool = True, progress: bool = True,
               **kw: Any) -> list[MapResult]:
    """Map every scene (folders expand to their GeoTIFFs; <stem>_vv/_vh files pair, `pair_band_files`) in
    parallel with dask.distributed, each into `out_dir/<stem>/` (same stems: `locations.output_names`).

    model: a model path or a list of them for an ensemble (each task calls `load_predictor(model, backend,
    **predictor_kwargs)`; `predictor_kwargs` may hold its `weights` and a `temperature`), None with
    backend 'triton' (the server's model, `predictor_kwargs` naming the server), or a
    zero-argument callable (e.g. a class) returning a Predictor. scheduler: address of a running cluster; otherwise a
    LocalCluster of `workers` single-threaded workers. Other keywords go to `map_scene`.
    Results come back in the order of `scenes`; failed scenes are reported together in one error."""
    from dask.distributed import Client, LocalCluster, as_completed

    check_location(out_dir, "out_dir")  # before resolve_output makes None a folder './None'
    files = scene_files(scenes)
    if not files:
        raise DataError("no scenes given")
    for f in files:
        if not is_remote_input(f) and not Path(f).is_file():
            raise DataError(f"{f}: file not found")
    if kw.get("vh") and len(files) > 1:
        raise InvalidArgumentError("vh: a VH file pairs with one VV scene, not with several")
    if kw.get("self_train") is not None and not processes and hasattr(model, "predict"):
        # threads would fine-tune one shared network on several scenes at once
        raise InvalidArgumentError("self_train: each scene fine-tunes its own copy of the model; give `model` as a "
                                   "file or a factory, not a ready predictor shared by threads")
    # Workers of a real cluster run in other folders (or on other machines): send absolute paths or URLs.
    files = [resolve_input(f) for f in files]  # one spelling per file before pairing
    pairs = pair_band_files(files) if not kw.get("vh") else [(files[0], None)]
    files = [f for f, _ in pairs]
    names = output_names(files, paired=[v is not None for _, v in pairs] if not kw.get("vh") else [True])
    kw = {k: _resolve_source(v) if k in ("vh", "water_mask") and v else v for k, v in kw.items()}
    if kw.get("terrain") is not None:
        t = kw["terrain"]
        kw["terrain"] = replace(t, hand=_resolve_source(t.hand), dem=_resolve_source(t.dem),
                                exclude=_resolve_source(t.exclude))
    if isinstance(model, (list, tuple)) and _model_files(model):
        model = [m if is_remote_input(m) else resolve_input(m) for m in model]
    elif isinstance(model, (str, Path)) and not is_remote_input(model):
        model = resolve_input(model)
    out_dir = resolve_output(out_dir)
    check_scene_folders(out_dir, names)  # before a cluster starts, not as one failure among the maps
    # a local output folder that this run created is removed again if every scene fails
    with output_folder(out_dir) if not is_remote_output(out_dir) else nullcontext():
        cluster = None if scheduler else LocalCluster(n_workers=workers or 1, threads_per_worker=1,
                                                       processes=processes, dashboard_address=None)
        try:
            with Client(scheduler or cluster) as client:
                futures = {client.submit(_map_one, f, model, out_dir, backend, predictor_kwargs or {},
                                         dict(kw, vh=vh, name=names[i]) if vh else dict(kw, name=names[i]),
                                         key=f"map-{i}-{input_stem(f)}", pure=False): i
                           for i, (f, vh) in enumerate(pairs)}
                results: list[MapResult | None] = [None] * len(files)
                failures: list[str] = []
                with Progress(disable=not progress) as bar:
                    task = bar.add_task("scenes", total=len(files))
                    for fut in as_completed(futures):
                        i = futures[fut]
                        try:
                            results[i] = fut.result()
                        except FloodwatchError as exc:
                            failures.append(f"{str(files[i]).rsplit('/', 1)[-1]}: {exc}")
                        bar.advance(task)
        finally:
            if cluster is not None:
                cluster.close()
        if failures:
            raise FloodwatchError(f"{len(failures)} of {len(files)} scenes failed: " + "; ".join(failures))
    return results  # type: ignore[return-value]
