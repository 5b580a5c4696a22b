"""Score a model on labelled chips, beside an Otsu threshold on exactly the same pixels."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..data.preprocess import Preprocessing, network_input
from ..data.sample import IGNORE_INDEX, WATER, Sample
from ..errors import CheckpointError, DataError
from ..inference.base import (Predictor, equal_shape_batches, predictor_model_file, predictor_settings,
                              predictor_temporal, progress_bar)
from ..inference.overlay import COLOURS, comparison_rgb, safe_name, sar_backdrop, save_png, side_by_side, with_legend
from ..inference.predictor import load_predictor
from ..inference.selftrain import SelfTraining, self_trained, torch_model
from ..inference.tiling import check_threshold
from ..io import atomic_dir, check_replaceable
from .calibration import CalibrationAccumulator
from .metrics import ConfusionAccumulator, scores
from .otsu import OtsuBaseline, band_index


def evaluate(predictor: Predictor | str | os.PathLike | None, dataset: Sequence[Sample], *, batch_size: int = 8,
             threshold: float = 0.5, otsu: bool | OtsuBaseline = True,
             save_predictions: str | os.PathLike | None = None, progress: bool = True,
             self_train: SelfTraining | None = None, data_name: str | None = None) -> dict[str, Any]:
    """Pixel-aggregated and per-chip-mean scores of `predictor` on `dataset`, per region, beside Otsu.

    predictor: a Predictor or a model reference `load_predictor` loads (a checkpoint / ONNX file, a registered
    name, None for the default model). The result starts with what was scored, as the CLI's JSON does: `model`,
    the model file(s) the predictor runs (`inference.base.predictor_model_file`; None for one that names none),
    `data` (data_name, when given) and the predictor's options (`predictor_settings`: tta, downsample,
    temperature, refine, weights), and `label`: what the masks mark, "water" or, for OMBRIA, "flood" (then
    `label_note` says what that means for this model and Otsu; the scores keep their water_* names). Pixels
    with mask == IGNORE_INDEX or no data are excluded from everything;
    chips without a scorable pixel are skipped and counted (`empty_chips`), unlabelled ones too
    (`unlabelled_chips`), overall and in their region: a region none of whose chips can be scored is listed with
    these counts and undefined (nan) scores. `otsu`: True picks the conventional
    baseline for the data (see OtsuBaseline.for_dataset), or pass an OtsuBaseline; False skips it.
    save_predictions: a folder that receives one PNG per chip: SAR | model vs truth | Otsu vs truth. It replaces
    an existing folder only when that holds nothing but PNG files (an earlier run's); anything else is refused.
    `ece` (overall and per region) and `reliability` (15 bins) describe calibration (see calibration.py).
    self_train: each region (an event, a scene) is predicted by the model fine-tuned on its own chips' confident
    predictions (`floodwatch.inference.selftrain`; no label is read), as `map --self-train` does per scene; the
    weights are put back after each region, and `self_training` records what each region's step did. The
    dataset is then held in memory, to be grouped by region.
    data_name: what the chips are (the data folder, a spec's split), recorded as `data` and named with the chip
    when a chip that names no file of its own cannot be scored (bands the model lacks).
    """
    if save_predictions:  # the user's folder: one holding other files is refused now, not after the scoring
        check_replaceable(save_predictions, is_prediction_png, "evaluate")
    if not isinstance(predictor, Predictor):
        predictor = load_predictor(predictor)
    check_threshold(threshold)
    if batch_size < 1:
        raise DataError(f"batch_size: {batch_size} must be at least 1")
    if self_train is not None:  # an ONNX model or an ensemble is refused before any chip is read
        self_train.validate()
        torch_model(predictor)
    pp: Preprocessing = predictor.preprocessing
    temporal = predictor_temporal(predictor)
    baseline = (OtsuBaseline.for_dataset(dataset) if otsu is True else otsu) or None

    model_acc, otsu_acc = ConfusionAccumulator(), ConfusionAccumulator()
    calibration: dict[str, CalibrationAccumulator] = {}  # "" = all chips, else per region
    regions: dict[str, tuple[ConfusionAccumulator, ConfusionAccumulator]] = {}
    per_chip: list[dict[str, Any]] = []
    learned: dict[str, dict[str, Any]] = {}  # region -> what its self-training did
    skipped = {"empty": 0, "unlabelled": 0}
    labels: set[str] = set()  # what the scored chips' masks mark (Sample.label)
    unlabelled_in: dict[str, int] = {}  # region -> its chips without a label
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out_dir = (Path(stack.enter_context(atomic_dir(save_predictions, ours=is_prediction_png, writer="evaluate")))
                   if save_predictions else None)
        bar = stack.enter_context(progress_bar(progress, len(dataset), "evaluating"))
        # One streaming pass (lazy datasets read each chip once); inputs are built per batch, never all at once.
        pending: list[Sample] = []

        def flush() -> None:
            items = [(s, _network_input(s, pp, temporal, data_name)) for s in pending]
            for batch in equal_shape_batches(items, batch_size):
                prob = np.asarray(predictor.predict(np.stack([x for _, x in batch])))
                expected = (len(batch),) + batch[0][0].shape
                if prob.shape != expected:
                    raise CheckpointError(f"predictor returned shape {prob.shape}, expected {expected}")
                for (sample, _), p in zip(batch, prob):
                    labels.add(sample.label)
                    for key in ("", sample.region or "(none)"):
                        calibration.setdefault(key, CalibrationAccumulator()).update(p, sample.mask, sample.valid)
                    _score_chip(sample, p >= threshold, baseline, model_acc, otsu_acc, regions, per_chip, out_dir)
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(batch))
            pending.clear()

        stream = dataset
        if self_train is not None:
            # closed with the stack: a failure mid-region puts the weights back now, not when garbage-collected
            stream = stack.enter_context(contextlib.closing(
                _self_trained_by_region(dataset, predictor, self_train, temporal, flush, learned)))
        for sample in stream:
            if sample.mask is None or sample.is_empty:
                region = sample.region or "(none)"
                # counted in its region, which is listed even when none of its chips can be scored
                region_accs = regions.setdefault(region, (ConfusionAccumulator(), ConfusionAccumulator()))
                if sample.mask is None:
                    skipped["unlabelled"] += 1
                    unlabelled_in[region] = unlabelled_in.get(region, 0) + 1
                else:
                    skipped["empty"] += 1
                    for acc in (model_acc, otsu_acc, *region_accs):  # Otsu skips the same chips
                        acc.empty_chips += 1
                if bar is not None:
                    bar.advance(bar.task_ids[0])
                continue
            pending.append(sample)
            if len(pending) >= batch_size:
                flush()
        flush()
        if not per_chip:
            raise DataError(f"dataset: no labelled chip with a scorable pixel ({len(dataset)} chips: "
                            f"{skipped['empty']} empty, {skipped['unlabelled']} unlabelled)")

    # what made the scores, as infer's summary.json and map's stats.json record it
    label = " + ".join(sorted(labels)) or "water"
    result: dict[str, Any] = {"model": predictor_model_file(predictor), **({"data": data_name} if data_name else {}),
                              **predictor_settings(predictor),
                              "threshold": threshold, "label": label,
                              **({"label_note": note} if (note := label_note(label, temporal)) else {}),
                              "seconds": round(time.perf_counter() - start, 3),
                              **model_acc.compute(), "ece": calibration[""].ece(),
                              # empty_chips: model_acc's, the skipped ones and those update() found empty alike
                              "reliability": calibration[""].reliability(), "unlabelled_chips": skipped["unlabelled"]}
    if baseline is not None:
        result["otsu"] = {"method": baseline.describe(), **otsu_acc.compute()}
    result["regions"] = {}
    for region in sorted(regions):
        m, o = regions[region]
        # a region with nothing scored has the scores of no pixels: nan (null in JSON), like any undefined ratio
        result["regions"][region] = {**m.compute(), "ece": calibration.get(region, CalibrationAccumulator()).ece(),
                                     "unlabelled_chips": unlabelled_in.get(region, 0),
                                     **({"otsu": o.compute()} if baseline is not None else {})}
    result["per_chip"] = per_chip
    if self_train is not None:
        result["self_training"] = learned
    if out_dir is not None:
        result["predictions_dir"] = str(Path(save_predictions))
    return result


def _network_input(sample: Sample, pp: Preprocessing, temporal: str, data_name: str | None) -> np.ndarray:
    """network_input, whose errors name the sample's file or, for a data set's chip, only its id (a bare "0013:"):
    then they name the chip as one, and the data it is of."""
    try:
        return network_input(sample, pp, temporal)
    except DataError as exc:
        if "path" in sample.extra:
            raise
        what = str(exc).removeprefix(f"{sample.id}: ")
        raise DataError(f"{data_name + ': ' if data_name else ''}chip {sample.id}: {what}") from None


def _self_trained_by_region(dataset: Sequence[Sample], predictor: Predictor, options: SelfTraining, temporal: str,
                            flush: Callable[[], None], learned: dict[str, dict[str, Any]]) -> Iterator[Sample]:
    """The dataset's samples region by region, each region's yielded while the model is fine-tuned on it; `flush`
    runs before the weights go back, so every chip is predicted by its own region's model."""
    by_region: dict[str, list[Sample]] = {}
    for sample in dataset:
        by_region.setdefault(sample.region or "(none)", []).append(sample)
    pp = predictor.preprocessing
    for region, own in by_region.items():
        chips = [s for s in own if s.valid.any()]  # by the SAR alone: no label decides what it learns from
        if not chips:
            yield from own  # skipped and counted by the caller
            continue
        inputs = _LazyInputs(chips, pp, temporal)
        with self_trained(predictor, inputs, [s.valid for s in chips], options) as info:
            learned[region] = info
            yield from own
            flush()


class _LazyInputs(Sequence):
    """Network inputs built when indexed: self-training reads only the chips it draws."""

    def __init__(self, samples: list[Sample], pp: Preprocessing, temporal: str):
        self.samples, self.pp, self.temporal = samples, pp, temporal

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> np.ndarray:
        return network_input(self.samples[i], self.pp, self.temporal)


def label_note(label: str, temporal: str) -> str | None:
    """One line on what the scores mean when the masks mark the flood rather than all water; None for water."""
    if "flood" not in label:
        return None
    if temporal == "bitemporal":
        return ("the masks mark the flood, not all water: scored against them is this bi-temporal model's change, "
                "and Otsu's dark water in the after image, water there before included")
    return ("the masks mark the flood, not all water: water this single-date model finds that was there before "
            "(rivers, lakes) is scored as false alarm, and Otsu's likewise; a bi-temporal model (model_config.temporal"
            ": bitemporal) maps what they mark")


def is_prediction_png(entry: Path) -> bool:
    """True for an entry of a save_predictions folder that an earlier evaluate wrote: <chip>.png files."""
    return entry.suffix == ".png" and entry.is_file()


def _score_chip(sample: Sample, pred: np.ndarray, baseline: OtsuBaseline | None, model_acc: ConfusionAccumulator,
                otsu_acc: ConfusionAccumulator, regions: dict, per_chip: list, out_dir: Path | None) -> None:
    scored = sample.valid & (sample.mask != IGNORE_INDEX)
    region_accs = regions.setdefault(sample.region or "(none)", (ConfusionAccumulator(), ConfusionAccumulator()))
    counts = model_acc.update(pred, sample.mask, scored)
    region_accs[0].update(pred, sample.mask, scored)
    row = {"id": sample.id, "region": sample.region, "water_iou": scores(counts)["water_iou"],
           "water_pixels": int(counts[1].sum()), "pixels": int(counts.sum()),
           # what each chip adds to the pixel-aggregated score's errors
           "false_water": int(counts[0, 1]), "missed_water": int(counts[1, 0])}
    otsu_pred = None
    if baseline is not None:
        otsu_pred = baseline.predict(sample)
        otsu_counts = otsu_acc.update(otsu_pred, sample.mask, scored)
        region_accs[1].update(otsu_pred, sample.mask, scored)
        row["otsu_water_iou"] = scores(otsu_counts)["water_iou"]
    per_chip.append(row)
    if out_dir is not None:
        band = band_index(sample, "VH")
        backdrop = sar_backdrop(sample.image[band], sample.valid)
        truth = sample.mask == WATER
        panels = [backdrop, comparison_rgb(backdrop, pred, truth, scored)]
        if otsu_pred is not None:
            panels.append(comparison_rgb(backdrop, otsu_pred, truth, scored))
        name = sample.bands[band] if len(sample.bands) == sample.image.shape[0] else None
        sar = f"SAR{' after' if sample.before is not None else ''}{f' ({name})' if name else ''}"
        titles = [sar, "model vs truth", "Otsu vs truth"][:len(panels)]
        save_png(out_dir / f"{safe_name(sample.id)}.png",
                 with_legend(side_by_side(panels), titles, legend_colours(sample.label)))


def legend_colours(label: str) -> dict[str, tuple[int, int, int]]:
    """The comparison overlay's legend, naming the class the masks mark ("missed flood" on OMBRIA)."""
    return {name.replace("water", label): colour for name, colour in COLOURS.items()}


def to_json_safe(obj: Any) -> Any:
    """nan/inf -> None so the file is strict JSON (undefined scores stay visibly undefined)."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(v) for v in obj]
    return obj
