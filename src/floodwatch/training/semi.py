"""Semi-supervised training: pseudo-labelling rounds (Noisy Student style) and FixMatch-style consistency.

`train_semi_supervised(spec, results_dir)` is what `floodwatch.training.train` (and `floodwatch train`) runs when the spec has a
`semi_supervised` section (see `floodwatch.config` for its fields).

Round 0 is the supervised model: trained from the spec (into `round_0/`), or the floodwatch checkpoint given
as `pretrained` (then nothing is trained for round 0). Round r = 1..R:

1. the teacher (the best model of round r-1, or with `teacher: ensemble` the mean of the best models of all
   previous rounds, optionally with test-time augmentation) predicts every unlabelled chip whole, through
   the same pre-processing as training (`data.preprocess.network_input`);
2. pixels with water probability >= confidence become water, <= 1 - confidence not water, the rest (and
   nodata) IGNORE_INDEX; with `otsu_agreement: BAND`, teacher water where that band is not darker than the
   Otsu threshold of the band pooled over all unlabelled chips is IGNORE_INDEX too (open water is dark in
   SAR, in cross-polarisation most of all, so a bright "water" pixel is more likely a teacher error than
   a flood; the check only removes water, it never makes land, and it filters the pseudo-labels only, not
   the consistency loss's targets); chips with fewer confident valid pixels than `min_confident_fraction`
   are skipped;
3. the student, initialised from the previous round's model, trains on the labelled training chips plus the
   pseudo-labelled ones (loss weight `unlabelled_weight`), with augmentation on (the spec's, or TAO's
   defaults when the spec has none and `augment_students` is true). Pseudo-labelled chips of another size
   than the model input are cropped/padded like any training chip (`training.data.ChipDataset`).
   With `consistency.enabled`, every step also adds a FixMatch loss on a batch of unlabelled chips
   (`ConsistencyLoss`).

Layout of a run (`<results_dir>/<name>/`): `round_<r>/` (a normal training run folder each: best.pt,
metrics.csv, spec.yaml, ..., and last.pt/epoch_NNN.pt as training_config.checkpoints says),
`semi_supervised.json` (per round: teacher, chips pseudo-labelled and skipped, confident pixel share,
pseudo water share, the Otsu check's band and threshold and the share of the teacher's water it ignored,
best validation water IoU) and `best.pt`, a copy of the last round's best.pt (the final model).
`resume=True` skips the rounds the summary records as finished and continues an unfinished round from its
last.pt.

Runs in one process (`--gpus 1`); the teacher and the student use the GPU when there is one.
"""
from __future__ import annotations

import contextlib
import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..config import ConsistencyConfig, SemiSupervisedConfig, Spec, TAO_DEFAULT_AUGMENTATION, load_spec
from ..data.sample import IGNORE_INDEX, NOT_WATER, WATER, Sample
from ..errors import CheckpointError, DataError, FloodwatchError, LayoutError, SpecError
from ..evaluation.otsu import pooled_threshold, require_band
from ..io import atomic_path, write_json
from ..models.precision import autocast
from . import distributed as dist_util
from .data import ChipDataset, load_samples
from .loop import TrainResult, Trainer, best_row, check_resume_spec, read_metrics

SUMMARY = "semi_supervised.json"
_EPS = 1e-6


@dataclass
class SemiSupervisedResult(TrainResult):
    """TrainResult of the final round (best_checkpoint is `<run>/best.pt`), plus the per-round summary."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    summary: Path = Path(SUMMARY)


# -- pseudo-labels --------------------------------------------------------------------------------------
def pseudo_label(prob: np.ndarray, valid: np.ndarray | None, confidence: float) -> np.ndarray:
    """(H, W) water probability -> int64 mask: WATER where prob >= confidence, NOT_WATER where
    prob <= 1 - confidence, IGNORE_INDEX elsewhere and where `valid` is False or prob is not finite.
    The comparisons allow 1e-6 of float32 rounding (a float32 0.9 counts as 0.9)."""
    if not 0.5 < confidence < 1.0:
        raise SpecError(f"semi_supervised.confidence: must be between 0.5 and 1 (exclusive), got {confidence}")
    prob = np.asarray(prob, np.float64)
    ok = np.isfinite(prob)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    mask = np.full(prob.shape, IGNORE_INDEX, np.int64)
    mask[ok & (prob >= confidence - _EPS)] = WATER
    mask[ok & (prob <= 1.0 - confidence + _EPS)] = NOT_WATER
    return mask


@dataclass
class PseudoLabelStats:
    chips: int = 0
    pseudo_labelled: int = 0
    skipped_empty: int = 0  # no valid pixel at all
    skipped_low_confidence: int = 0  # confident share of valid pixels below min_confident_fraction (or none)
    valid_pixels: int = 0
    confident_pixels: int = 0
    water_pixels: int = 0
    vetoed_water_pixels: int = 0  # teacher water that the Otsu agreement check turned into ignore
    agreement: tuple[str, float] | None = None  # (band, dB threshold) of that check; None: it was off

    def as_dict(self) -> dict[str, Any]:
        return {"chips": self.chips, "chips_pseudo_labelled": self.pseudo_labelled,
                "chips_skipped_empty": self.skipped_empty,
                "chips_skipped_low_confidence": self.skipped_low_confidence,
                "confident_pixel_share": self.confident_pixels / self.valid_pixels if self.valid_pixels else 0.0,
                "pseudo_water_share": self.water_pixels / self.confident_pixels if self.confident_pixels else 0.0,
                "otsu_agreement": _agreement_entry(self.agreement),
                "vetoed_water_share": (None if self.agreement is None else
                                       self.vetoed_water_pixels / (self.water_pixels + self.vetoed_water_pixels)
                                       if self.water_pixels + self.vetoed_water_pixels else 0.0)}


def teacher_probabilities(teacher: Any | Sequence[Any], samples: Sequence[Sample], batch_size: int = 8,
                          progress: bool = False) -> Iterator[np.ndarray]:
    """Water probability (H, W) per sample, in order. `teacher`: a Predictor or a list of them (their mean;
    each member builds its input with its own pre-processing, so members need not share it)."""
    from ..data.preprocess import network_input
    from ..inference.base import equal_shape_batches, predictor_temporal
    from ..data.progress import track

    members = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not members:
        raise FloodwatchError("semi_supervised: no teacher model")
    chunk = max(1, batch_size) * 4
    samples = list(samples)
    starts = range(0, len(samples), chunk)
    for start in track(starts, "pseudo-labelling", total=len(starts), show=progress or False):
        part = samples[start:start + chunk]
        total: list[np.ndarray | None] = [None] * len(part)
        for member in members:
            temporal = predictor_temporal(member)
            items = [(i, network_input(s, member.preprocessing, temporal)) for i, s in enumerate(part)]
            for batch in equal_shape_batches(items, batch_size):
                prob = np.asarray(member.predict(np.stack([x for _, x in batch])), np.float64)
                expected = (len(batch),) + batch[0][1].shape[-2:]
                if prob.shape != expected:
                    raise CheckpointError(f"teacher returned shape {prob.shape}, expected {expected}")
                for (i, _), p in zip(batch, prob):
                    total[i] = p if total[i] is None else total[i] + p
        for p in total:
            yield (p / len(members)).astype(np.float32)


def pseudo_label_samples(teacher: Any | Sequence[Any], samples: Sequence[Sample], confidence: float, *,
                         min_confident_fraction: float = 0.0, batch_size: int = 8, progress: bool = False,
                         agreement: tuple[str, float] | None = None) -> tuple[list[Sample], PseudoLabelStats]:
    """The chips the teacher is confident enough about, with pseudo-label masks, and what was done.
    `agreement` (band name, dB threshold): teacher water where that band is not below the threshold is
    ignored, so a pseudo-label says water only where the teacher and a backscatter threshold agree."""
    stats = PseudoLabelStats(chips=len(samples), agreement=agreement)
    out: list[Sample] = []
    for s, prob in zip(samples, teacher_probabilities(teacher, samples, batch_size, progress)):
        valid = np.asarray(s.valid, bool)
        n_valid = int(valid.sum())
        if n_valid == 0:
            stats.skipped_empty += 1
            continue
        mask = pseudo_label(prob, valid, confidence)
        if agreement is not None:
            band, threshold = agreement
            index = require_band(s, band, "semi_supervised.otsu_agreement")
            with np.errstate(invalid="ignore"):
                veto = (mask == WATER) & ~(np.asarray(s.image[index]) < threshold)
            mask[veto] = IGNORE_INDEX
            stats.vetoed_water_pixels += int(veto.sum())
        confident = int((mask != IGNORE_INDEX).sum())
        stats.valid_pixels += n_valid
        stats.confident_pixels += confident
        stats.water_pixels += int((mask == WATER).sum())
        if confident == 0 or confident / n_valid < min_confident_fraction:
            stats.skipped_low_confidence += 1
            continue
        out.append(Sample(image=s.image, mask=mask, valid=valid, id=s.id, region=s.region, georef=s.georef,
                          bands=s.bands, before=s.before, extra={**s.extra, "pseudo_label": True}))
        stats.pseudo_labelled += 1
    return out, stats


def load_teacher(checkpoints: Sequence[str | Path], tta: bool | Sequence[str] = False) -> list[Any]:
    """TorchPredictors for the checkpoints (each wrapped in a TTAPredictor when `tta`)."""
    from ..inference.predictor import TorchPredictor

    members: list[Any] = [TorchPredictor(c) for c in checkpoints]
    if tta:
        from ..inference.tta import TTAPredictor

        members = [TTAPredictor(m, True if tta is True else list(tta)) for m in members]
    return members


# -- unlabelled chips -----------------------------------------------------------------------------------
@dataclass
class UnlabelledSet:
    """One `semi_supervised.unlabelled` entry, opened (files are read by `read`)."""

    name: str  # "semi_supervised.unlabelled[i]", for errors
    path: Path
    format: str
    bands: tuple[str, ...] | None  # None: decided per file (bare chip files)
    items: Sequence[Any]  # a data.ChipDataset, or (chip file, its VH file or None) pairs

    def __len__(self) -> int:
        return len(self.items)

    def read(self, bands: Sequence[str], temporal: str, progress: bool | None = False) -> list[Sample]:
        """All chips as unlabelled Samples holding exactly `bands` (the model's), in that order."""
        from ..data.progress import track

        out = []
        for item in track(self.items, f"reading {self.name}", total=len(self.items), show=progress):
            if self.format == "chips":
                from ..inference.chips import read_chip

                s = read_chip(item[0], bands=bands, vh=item[1])
            else:
                s = item
            out.append(self._fit(s, bands, temporal))
        return out

    def check_bands(self, bands: Sequence[str]) -> None:
        if self.bands is not None and not _has_bands(self.bands, bands):
            raise DataError(f"{self.name}: {self.path} has band(s) {', '.join(self.bands)} but the model takes "
                            f"{', '.join(bands)}")

    def _fit(self, s: Sample, bands: Sequence[str], temporal: str) -> Sample:
        names = [b.upper() for b in s.bands]
        if not _has_bands(s.bands, bands):
            raise DataError(f"{self.name}: chip '{s.id}' has band(s) {', '.join(s.bands)} but the model takes "
                            f"{', '.join(bands)}")
        idx = [names.index(b.upper()) for b in bands]
        if temporal == "bitemporal" and s.before is None:
            raise DataError(f"{self.name}: chip '{s.id}' has no 'before' image and the model is bi-temporal")
        pick = lambda a: a if a is None or idx == list(range(a.shape[0])) else a[idx]  # noqa: E731
        return Sample(image=pick(s.image), mask=None, valid=np.asarray(s.valid, bool), id=s.id, region=s.region,
                      georef=s.georef, bands=tuple(bands), before=pick(s.before),
                      extra={**s.extra, "unlabelled_source": str(self.path)})


def _has_bands(have: Sequence[str], want: Sequence[str]) -> bool:
    names = [b.upper() for b in have]
    return all(b.upper() in names for b in want)


def open_unlabelled(config: SemiSupervisedConfig) -> list[UnlabelledSet]:
    """Open every `unlabelled` entry (lazily: files are listed, not read); a missing or unreadable folder is a
    one-line DataError naming the entry."""
    from ..data import open_dataset
    from ..data.files import chip_files, pair_band_files
    from ..data.formats import _ALIASES, detect_format

    sets = []
    for i, source in enumerate(config.unlabelled):
        name = f"semi_supervised.unlabelled[{i}]"
        path = Path(source.path)
        if not path.exists():
            raise DataError(f"{name}: {path}: folder not found")
        if not path.is_dir():
            raise DataError(f"{name}: {path}: not a folder")
        fmt = _ALIASES.get(source.format.lower(), source.format.lower()) if source.format else None
        if fmt is None:
            try:
                fmt = detect_format(path)
            except LayoutError:
                fmt = "chips"  # a bare folder of chip files
        if fmt == "chips":
            files = chip_files(path)
            if source.split is not None or source.exclude_regions:
                which = "split" if source.split is not None else "exclude_regions"
                raise DataError(f"{name}: {which} applies to a data set layout, not to a folder of chip files")
            if not files:
                raise DataError(f"{name}: {path}: no chip files (GeoTIFF/PNG/JPG) and no known data set layout")
            # <chip>_vv/<chip>_vh files are one chip, as for infer and map
            sets.append(UnlabelledSet(name, path, fmt, None, pair_band_files(files)))
            continue
        try:
            ds = open_dataset(path, format=fmt, split=source.split, labelled_only=False)
        except DataError as exc:
            raise DataError(f"{name}: {exc}") from None
        if source.exclude_regions:
            where = f" split '{source.split}'" if source.split is not None else ""
            ds.check_regions(source.exclude_regions, f"{name}.exclude_regions: {path}{where}")
            ds = ds.subset([r.id for r in ds.records if r.region not in source.exclude_regions])
            if len(ds) == 0:
                raise DataError(f"{name}.exclude_regions: leaves no chip of {path}")
        if len(ds) == 0:
            raise DataError(f"{name}: {path}: no chips")
        sets.append(UnlabelledSet(name, path, fmt, tuple(ds.bands), ds))
    return sets


# -- consistency (FixMatch) -----------------------------------------------------------------------------
class ConsistencyLoss:
    """Per training step: a batch of unlabelled chips; weak view = the `weak` augmentation (flips); target =
    the model's argmax on the weak view where its max probability >= confidence (no gradient); strong view =
    the `strong` augmentation of the weak view, whose geometric part moves the target identically (one
    BatchAugmenter call on image and target); loss = weight * cross-entropy(strong view, target).

    Callable as the Trainer's `extra_loss(model, epoch)`; `loss(model, image, valid)` is one step on a
    given batch. Randomness is seeded from (seed, epoch)."""

    def __init__(self, samples: Sequence[Sample], prep, size: tuple[int, int], config: ConsistencyConfig, *,
                 confidence: float, batch_size: int, temporal: str = "single", seed: int = 0,
                 device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None):
        from ..augment import BatchAugmenter

        self.confidence = float(config.confidence or confidence)
        self.weight = float(config.weight)
        self.device, self.autocast_dtype, self.seed = torch.device(device), autocast_dtype, int(seed)
        chips = [Sample(image=s.image, mask=np.full(s.shape, IGNORE_INDEX, np.int64), valid=s.valid, id=s.id,
                        region=s.region, bands=s.bands, before=s.before) for s in samples if s.valid.any()]
        if not chips:
            raise DataError("semi_supervised.consistency: no unlabelled chip with valid pixels")
        self.data = ChipDataset(chips, prep, size, temporal=temporal, train=True, seed=self.seed + 2)
        self.batch_size = int(batch_size)
        db = [float(s) for s in prep.scale[:len(prep.bands)]] + [0.0] * (prep.channels - len(prep.bands))
        db = db * (2 if temporal == "bitemporal" else 1)
        self.weak = BatchAugmenter(config.weak, seed=self.seed, db_scale=db)
        self.strong = BatchAugmenter(config.strong, seed=self.seed + 1, db_scale=db)
        self._epoch: int | None = None
        self._iter: Iterator | None = None

    def _loader(self, epoch: int):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 7919 + 17)
        return iter(torch.utils.data.DataLoader(self.data, batch_size=self.batch_size, shuffle=True, generator=g,
                                                num_workers=0))

    def _next(self, epoch: int):
        if epoch != self._epoch:
            self._epoch = epoch
            self.data.set_epoch(epoch)
            self.weak.manual_seed(self.seed * 1_000_003 + epoch * 1013)
            self.strong.manual_seed(self.seed * 1_000_003 + epoch * 1013 + 1)
            self._iter = self._loader(epoch)
        try:
            return next(self._iter)
        except StopIteration:  # fewer unlabelled than labelled steps: go round again
            self._iter = self._loader(epoch)
            return next(self._iter)

    def __call__(self, model: torch.nn.Module, epoch: int) -> torch.Tensor:
        image, _, valid = self._next(epoch)
        return self.weight * self.loss(model, image.to(self.device), valid.to(self.device))

    @staticmethod
    @contextlib.contextmanager
    def frozen_norm_statistics(model: torch.nn.Module) -> Iterator[None]:
        """BatchNorm normalises with the batch as usual but its running statistics stay put. The
        unlabelled batches come from another sensor encoding and, in the strong view, carry dB noise: mixed
        into the running statistics they shifted how the labelled domain is normalised at evaluation, and
        the model stopped finding water (measured: ETCI validation IoU 0.65 -> 0.002 in three epochs)."""
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
        try:
            yield
        finally:
            for m, momentum in zip(norms, saved):
                m.momentum = momentum

    def _autocast(self) -> torch.autocast:  # the Trainer's precision (training_config.precision)
        return autocast(self.device, self.autocast_dtype)

    def views(self, model: torch.nn.Module, image: torch.Tensor, valid: torch.Tensor):
        """(strong view, its target, weak view, weak target): targets are IGNORE_INDEX where not confident."""
        weak, _, valid_w = self.weak(image, None, valid)
        with torch.no_grad(), self._autocast():
            prob = torch.softmax(model(weak).float(), dim=1)
        conf, target = prob.max(dim=1)
        target = torch.where((conf >= self.confidence) & valid_w, target, torch.full_like(target, IGNORE_INDEX))
        strong, target_s, valid_s = self.strong(weak, target, valid_w)
        target_s = torch.where(valid_s, target_s, torch.full_like(target_s, IGNORE_INDEX))
        return strong, target_s, weak, target

    def loss(self, model: torch.nn.Module, image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        from .losses import cross_entropy

        with self.frozen_norm_statistics(model):
            strong, target, _, _ = self.views(model, image, valid)
            with self._autocast():
                logits = model(strong)
        return cross_entropy(logits.float(), target)


# -- the run --------------------------------------------------------------------------------------------
def _round_entry(r: int, run_dir: Path) -> dict[str, Any]:
    best = best_row(read_metrics(run_dir / "metrics.csv"))
    return {"round": r, "run_dir": str(run_dir), "best_checkpoint": str(run_dir / "best.pt"),
            "best_epoch": int(best["epoch"]) if best else None,
            "val_water_iou": float(best["water_iou"]) if best else None}


def _student_spec(spec: Spec, semi: SemiSupervisedConfig) -> Spec:
    s = copy.deepcopy(spec)
    if semi.epochs_per_round is not None:
        s.training_config.epochs = semi.epochs_per_round
    if semi.student_learning_rate is not None:
        # students start from a trained model: a fine-tuning rate keeps them from drifting away from it
        s.training_config.learning_rate = semi.student_learning_rate
    return s


def train_semi_supervised(spec_or_path: Spec | str | Path, results_dir: str | Path, *, name: str = "model",
                          pretrained: str | Path | None = None, resume: bool = False,
                          progress: bool = True, replaces: Path | None = None) -> SemiSupervisedResult:
    """Pseudo-labelling rounds (and optional consistency training) as the spec's `semi_supervised` says;
    outputs in `<results_dir>/<name>/` (see the module docstring). `pretrained`: a floodwatch checkpoint is
    round 0 itself; torchvision encoder weights initialise the supervised round 0. `replaces`: see Trainer
    (the first round trained drops it)."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path)
    semi = spec.semi_supervised
    if semi is None:
        raise SpecError("semi_supervised: the spec has no semi_supervised section")
    out = Path(results_dir) / name
    if resume:  # each round's run folder holds the spec it trained with: resume only with the same
        for r in range(semi.rounds + 1):
            check_resume_spec(spec if r == 0 else _student_spec(spec, semi), out / f"round_{r}", pretrained)
    sources = open_unlabelled(semi)  # before any training: a wrong folder fails in a second, not after round 0
    tc, mc = spec.training_config, spec.model
    ctx = dist_util.init(0, 1, 0)
    splits = load_samples(spec, progress=None if progress else False)
    console = _console(progress)

    summary_path = out / SUMMARY
    done: dict[int, dict[str, Any]] = {}
    if resume and summary_path.is_file():
        try:
            done = {int(e["round"]): e for e in json.loads(summary_path.read_text()).get("rounds", [])
                    if e.get("finished")}
        except (ValueError, KeyError, TypeError):
            done = {}
    # the unlabelled chips with the model's bands, read before any training so that bad data fails at once
    # (and kept in memory, like the labelled chips)
    from ..models.checkpoint import checkpoint_or_none

    meta0 = checkpoint_or_none(pretrained)  # a floodwatch checkpoint is round 0 itself
    if meta0 is not None:
        bands = list(meta0["preprocessing"]["bands"])
        temporal = (meta0.get("model_config") or {}).get("temporal") or mc.temporal
    else:
        bands, temporal = list(splits["train"][0].bands), mc.temporal  # what fit_preprocessing will take
    for source in sources:
        source.check_bands(bands)
    unlabelled = [x for source in sources for x in source.read(bands, temporal, None if progress else False)]
    agreement = _otsu_agreement(semi, bands, unlabelled)

    rounds: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"confidence": semi.confidence, "teacher": semi.teacher,
                               "teacher_tta": semi.teacher_tta, "unlabelled_weight": semi.unlabelled_weight,
                               "consistency": semi.consistency.model_dump() if semi.consistency else None,
                               "unlabelled": [{"path": str(s.path), "format": s.format, "chips": len(s)}
                                              for s in sources],
                               "otsu_agreement": _agreement_entry(agreement),
                               "rounds": rounds}

    def save_summary() -> None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(summary_path, summary)

    # round 0: the supervised model
    if meta0 is not None:
        checkpoints = [Path(pretrained)]
        iou = (meta0.get("metrics") or {}).get("water_iou")
        rounds.append({"round": 0, "supervised": True, "source": "pretrained", "best_checkpoint": str(pretrained),
                       "val_water_iou": iou, "finished": True})
    else:
        run_dir = out / "round_0"
        if 0 in done and (run_dir / "best.pt").is_file():
            rounds.append(done[0])
        else:
            if console:
                console.print("[bold]round 0[/]: supervised training")
            Trainer(spec, run_dir, ctx, pretrained=str(pretrained) if pretrained else None, progress=progress,
                    splits=splits, replaces=replaces).fit(resume)
            rounds.append({**_round_entry(0, run_dir), "supervised": True, "finished": True})
        checkpoints = [run_dir / "best.pt"]
    save_summary()

    student_aug = spec.dataset_config.augmentation()
    if student_aug is None and semi.augment_students:
        student_aug = TAO_DEFAULT_AUGMENTATION
    student_spec = _student_spec(spec, semi)
    size = (mc.model_input_height, mc.model_input_width)
    for r in range(1, semi.rounds + 1):
        run_dir = out / f"round_{r}"
        teacher_ckpts = checkpoints if semi.teacher == "ensemble" else checkpoints[-1:]
        if r in done and (run_dir / "best.pt").is_file():
            rounds.append(done[r])
            checkpoints.append(run_dir / "best.pt")
            continue
        if console:
            console.print(f"[bold]round {r}[/]: pseudo-labelling {len(unlabelled)} chips with "
                          f"{'an ensemble of ' + str(len(teacher_ckpts)) if len(teacher_ckpts) > 1 else 'the'} "
                          f"teacher model{'s' if len(teacher_ckpts) > 1 else ''}")
        teacher = load_teacher(teacher_ckpts, semi.teacher_tta)
        pseudo, stats = pseudo_label_samples(teacher, unlabelled, semi.confidence,
                                             min_confident_fraction=semi.min_confident_fraction,
                                             batch_size=tc.batch_size, progress=bool(console),
                                             agreement=agreement)
        del teacher
        if console:
            d = stats.as_dict()
            console.print(f"  {stats.pseudo_labelled}/{stats.chips} chips pseudo-labelled; confident pixels "
                          f"{d['confident_pixel_share']:.1%}, of which water {d['pseudo_water_share']:.1%}"
                          + (f"; {d['vetoed_water_share']:.1%} of the teacher's water ignored by the "
                             f"{agreement[0]} check" if agreement else ""))
        trainer = Trainer(student_spec, run_dir, ctx, pretrained=str(checkpoints[-1]), progress=progress,
                          splits=splits, extra_train=pseudo, extra_weight=semi.unlabelled_weight,
                          augmentation=student_aug, replaces=replaces)
        cons = semi.consistency
        use_consistency = cons is not None and cons.enabled and cons.weight > 0
        if use_consistency:
            trainer.extra_loss = ConsistencyLoss(unlabelled, trainer.prep, size, cons, confidence=semi.confidence,
                                                 batch_size=cons.batch_size or tc.batch_size, temporal=temporal,
                                                 seed=tc.random_seed + r, device=ctx.device,
                                                 autocast_dtype=trainer.autocast_dtype)
        trainer.fit(resume)
        del trainer
        rounds.append({**_round_entry(r, run_dir), "teacher_checkpoints": [str(c) for c in teacher_ckpts],
                       **stats.as_dict(), "consistency": use_consistency,
                       "finished": True})
        checkpoints.append(run_dir / "best.pt")
        save_summary()

    final = checkpoints[-1]
    with atomic_path(out / "best.pt") as tmp:
        shutil.copyfile(final, tmp)
    summary["final_checkpoint"] = str(out / "best.pt")
    summary["final_round"] = semi.rounds
    save_summary()
    last_dir = final.parent
    history = read_metrics(last_dir / "metrics.csv")
    last = last_dir / "last.pt"
    return SemiSupervisedResult(best_checkpoint=out / "best.pt", last_checkpoint=last if last.is_file() else None,
                                history=history, results_dir=out, rounds=rounds, summary=summary_path)


def _agreement_entry(agreement: tuple[str, float] | None) -> dict[str, Any] | None:
    """How `semi_supervised.json` records the Otsu check (band, dB threshold); None when it is off."""
    return {"band": agreement[0], "threshold_db": agreement[1]} if agreement else None


def _otsu_agreement(semi: SemiSupervisedConfig, bands: Sequence[str],
                    unlabelled: Sequence[Sample]) -> tuple[str, float] | None:
    """(band, pooled Otsu threshold in dB) for `semi_supervised.otsu_agreement`, or None when it is off."""
    band = semi.otsu_agreement
    if band is None:
        return None
    check_otsu_band(semi, bands)
    threshold = pooled_threshold(unlabelled, band)
    if not np.isfinite(threshold):
        raise DataError(f"semi_supervised.otsu_agreement: the unlabelled chips have no valid {band} pixel")
    return band, threshold


def check_otsu_band(semi: SemiSupervisedConfig, bands: Sequence[str]) -> None:
    band = semi.otsu_agreement
    if band is not None and band not in [b.upper() for b in bands]:
        raise SpecError(f"semi_supervised.otsu_agreement: band '{band}' is not one of the model's bands "
                        f"({', '.join(bands)})")


def unlabelled_problems(semi: SemiSupervisedConfig, bands: Sequence[str]) -> list[str]:
    """What training checks of the unlabelled folders before it reads a chip, one line per problem: each
    folder opens and holds the model's `bands`, and otsu_agreement names one of them (`spec validate` and
    `training.api.spec_data_problems` list them before training)."""
    problems = []
    try:
        sources = open_unlabelled(semi)
    except DataError as exc:
        problems, sources = [str(exc)], []
    for source in sources:
        try:
            source.check_bands(bands)
        except DataError as exc:
            problems.append(str(exc))
    try:
        check_otsu_band(semi, bands)
    except SpecError as exc:
        problems.append(str(exc))
    return problems


def _console(progress: bool):
    if not progress:
        return None
    from rich.console import Console

    return Console(stderr=True)


__all__ = ["ConsistencyLoss", "PseudoLabelStats", "SemiSupervisedResult", "UnlabelledSet", "check_otsu_band",
           "load_teacher", "open_unlabelled", "pseudo_label", "pseudo_label_samples", "teacher_probabilities",
           "train_semi_supervised", "unlabelled_problems"]
