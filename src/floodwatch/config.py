"""The experiment spec: TAO UNet's sections and field names, validated with pydantic.

A spec is YAML (ours) or protobuf text (TAO's `.txt`, read by `floodwatch.tao`). Both end up here, so a
typo is rejected with the field's path (`training_config.learnig_rate: unknown field; did you mean learning_rate?`)
before any data is read. Paths in a spec are relative to the spec file; `load_spec` makes them absolute.

Sections: `dataset_config`, `model_config`, `training_config` (TAO's), and floodwatch's optional
`semi_supervised`: pseudo-labelling rounds (Noisy Student style) on unlabelled chips, plus optional
FixMatch-style consistency training (`floodwatch.training.semi`):

    semi_supervised:
      unlabelled:                       # any folders of SAR chips; labels there, if any, are not used
        - {path: ../data/sen1floods11, format: sen1floods11}
        - {path: ../data/more_chips, format: chips}   # a bare folder of GeoTIFF/PNG chip files
      rounds: 2                         # students trained after the supervised round 0
      confidence: 0.9                   # water prob >= 0.9 -> water, <= 0.1 -> not water, else ignored
      teacher: last                     # or ensemble: mean of the best models of all previous rounds
      teacher_tta: false                # true / transform names: the teacher predicts with TTA
      epochs_per_round: 5               # default: training_config.epochs
      student_learning_rate: 3.0e-4     # default: training_config.learning_rate
      unlabelled_weight: 0.5            # loss weight of pseudo-labelled chips relative to labelled ones
      min_confident_fraction: 0.2       # skip chips with fewer confident (valid) pixels than this
      augment_students: true            # students always train with augmentation (TAO defaults if none)
      consistency: {enabled: true, weight: 1.0}   # + weak/strong augmentation configs, confidence, batch_size
      otsu_agreement: VH                # pseudo-water only where VH is below the chips' pooled Otsu threshold
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from .augment.config import AugmentationConfig, SpecSection
from .errors import SpecError
from .io import check_not_input, read_text


def _check_format(v: Optional[str], extra: tuple[str, ...] = ()) -> Optional[str]:
    """A format name `open_dataset` (or `extra`) takes, aliases included: a typo fails here, not in training."""
    if v is None:
        return v
    # imported on use, as semi_supervised's check always was: data must never be needed to import config
    from difflib import get_close_matches

    from .data.formats import _ALIASES, FORMATS

    if _ALIASES.get(v.lower(), v.lower()) not in (*FORMATS, *extra):
        close = get_close_matches(v.lower(), [*FORMATS, *_ALIASES, *extra], n=1)
        raise ValueError(f"'{v}' is not a known format ({f'did you mean {close[0]}? ' if close else ''}"
                         f"known: {', '.join([*FORMATS, *extra])})")
    return v


def _reader_bands(format: Optional[str]) -> Optional[tuple[str, ...]]:
    """The bands a format's reader always gives (its module's BANDS), or None where they depend on the data."""
    if format is None:
        return None
    from .data.formats import _ALIASES, FORMATS

    opener = FORMATS[_ALIASES.get(format.lower(), format.lower())][1]
    return getattr(sys.modules[opener.__module__], "BANDS", None)


class _Section(SpecSection):
    # protected_namespaces=(): TAO's field names start with "model_" (model_input_height, ...).
    # NaN and infinity pass every ge/gt bound (comparisons with NaN are False): refused as values
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True, allow_inf_nan=False)


# -- dataset_config -----------------------------------------------------------------------------------
#: the split's seed when none is given (the spec's `split.seed`, `data split --seed`): one default, so that a CSV
#: written by `data split` holds out the chips that a spec with the same method and fractions holds out
SPLIT_SEED = 42


class SplitConfig(_Section):
    """Either a CSV (id,split) or a method with train/val/test fractions.

    `seed` draws the split and is its own field, not training_config.random_seed: runs that differ only in
    their training seed (a seed ensemble) must hold out the same chips, or one run's test chips are another's
    training chips."""

    csv: Optional[str] = None
    method: Literal["random", "region", "blocked"] = "random"
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = Field(SPLIT_SEED, ge=0, le=2**32 - 1)  # numpy's generators take no negative seed

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"train/val/test fractions must be >= 0 and sum to 1, got {list(v)}")
        if v[0] <= 0:
            raise ValueError("the train fraction must be > 0")  # an empty val split is refused when read
        return v


class TargetClass(_Section):
    name: str
    mapping_class: str
    label_id: int


def is_ignore_class(mapping_class: str) -> bool:
    """A target class whose pixels are not scored (no data, unlabelled): mapping_class `ignore` (or nodata,
    no_data, void), as `data convert` writes them (label_id 127) and the folders reader reads them."""
    # imported on use: data must never be needed to import config
    from .data.sources.folders import _IGNORE_NAMES

    return mapping_class.strip().lower() in _IGNORE_NAMES


class DataClassConfig(_Section):
    target_classes: list[TargetClass] = Field(default_factory=lambda: [
        TargetClass(name="notflood", mapping_class="notflood", label_id=0),
        TargetClass(name="flood", mapping_class="flood", label_id=1)])

    @field_validator("target_classes")
    @classmethod
    def _two_classes(cls, v: list[TargetClass]) -> list[TargetClass]:
        scored = {t.mapping_class for t in v if not is_ignore_class(t.mapping_class)}
        if len(scored) != 2:
            raise ValueError("floodwatch maps water/not-water: the target classes must map to exactly 2 "
                             f"mapping_class values besides 'ignore' (pixels not scored), got {sorted(scored)}")
        # one pixel value read as two classes: the first listed would silently win
        to_class: dict[int, str] = {}
        for t in v:
            if to_class.setdefault(t.label_id, t.mapping_class) != t.mapping_class:
                raise ValueError(f"label_id {t.label_id} is given to both '{to_class[t.label_id]}' and "
                                 f"'{t.mapping_class}'")
        return v


#: TAO's defaults when `augment: true` comes without an augmentation_config (TAO's UNet data loader).
TAO_DEFAULT_AUGMENTATION: dict[str, Any] = {
    "spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5, "crop_and_resize_prob": 0.5,
                             "crop_and_resize_ratio": 0.1},
    "brightness_augmentation": {"delta": 0.2},
}


class AnchorConfig(_Section):
    """Inputs relative to each chip's own land (`Preprocessing.anchored`): each band's `percentile`-th percentile
    of the chip's valid pixels is moved to `db` (one level per band) before clipping."""

    percentile: float = Field(ge=0.0, le=100.0)
    db: list[float] = Field(min_length=1)


class PreprocessingOverride(_Section):
    """Overrides the pre-processing fitted on the training chips; offset/scale given -> nothing is fitted."""

    derived: Literal["none", "diff", "ratio"] = "none"
    anchor: Optional[AnchorConfig] = None
    #: dB range of every band, [low, high], or one range per band in the readers' band order ([[VV], [VH]])
    clip: Optional[Union[tuple[float, float], list[tuple[float, float]]]] = None
    offset: Optional[list[float]] = None
    scale: Optional[list[float]] = None

    @field_validator("clip", mode="before")
    @classmethod
    def _clip_shape(cls, value: Any) -> Any:
        def pair(v: Any) -> bool:
            return isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)

        if value is None or pair(value) or (isinstance(value, (list, tuple)) and value and all(map(pair, value))):
            return value
        raise ValueError(f"{value!r}: give [low, high] in dB for every band, or one [low, high] per band")

    @model_validator(mode="after")
    def _offset_with_scale(self) -> "PreprocessingOverride":
        if (self.offset is None) != (self.scale is None):
            raise ValueError("give both offset and scale, or neither (then they are fitted on the training set)")
        if self.offset is not None and len(self.offset) != len(self.scale):
            raise ValueError(f"offset and scale need one value per channel each, got {len(self.offset)} and "
                             f"{len(self.scale)}")
        ranges = self.clip_ranges(1) if self.clip is not None else []
        for i, (low, high) in enumerate(ranges):
            if low >= high:
                where = "clip" if isinstance(self.clip, tuple) else f"clip[{i}]"
                raise ValueError(f"{where}: low {low} must be below high {high}")
        return self

    def clip_ranges(self, bands: int) -> list[tuple[float, float]] | None:
        """One (low, high) per band, or None when no clip is given."""
        if self.clip is None:
            return None
        if isinstance(self.clip, tuple):
            return [tuple(self.clip)] * bands
        return [tuple(c) for c in self.clip]


TAO_PATH_FIELDS = ("train_images_path", "train_masks_path", "val_images_path", "val_masks_path",
                   "test_images_path", "test_masks_path")


class DataSource(_Section):
    """One labelled data set of a multi-source spec (`dataset_config.sources`)."""

    path: str
    format: Optional[str] = None  # None: the reader detects it
    split: Optional[SplitConfig] = None  # default: dataset_config.split
    regions: Optional[list[str]] = None  # keep only these regions (events, scenes)
    exclude_regions: list[str] = Field(default_factory=list)  # e.g. the event a leave-one-out fold holds out
    repeat: int = Field(1, ge=1)  # each training chip is drawn this many times per epoch (small sources)
    options: dict[str, Any] = Field(default_factory=dict)  # the reader's own, e.g. {harmonise: fixed} for ETCI

    _split_shorthand = field_validator("split", mode="before")(lambda cls, v: _split_block(v))
    _known_format = field_validator("format")(lambda cls, v: _check_format(v))


def _split_block(v: Any) -> Any:
    # `split: splits.csv` or `split: blocked` as shorthands for the full block.
    if isinstance(v, str):
        return {"csv": v} if v.lower().endswith(".csv") else {"method": v}
    return v


class DatasetConfig(_Section):
    dataset: str = "custom"  # TAO's; kept so TAO specs convert unchanged
    input_image_type: Literal["grayscale", "color"] = "grayscale"
    data_root: Optional[str] = None
    #: several labelled data sets trained together (instead of data_root), each split on its own
    sources: Optional[list[DataSource]] = Field(None, min_length=1)
    format: Optional[str] = None  # None: the reader detects it
    split: Optional[SplitConfig] = None
    train_images_path: Optional[str] = None
    train_masks_path: Optional[str] = None
    val_images_path: Optional[str] = None
    val_masks_path: Optional[str] = None
    test_images_path: Optional[str] = None
    test_masks_path: Optional[str] = None
    data_class_config: DataClassConfig = Field(default_factory=DataClassConfig)
    augment: bool = False
    augmentation_config: Optional[AugmentationConfig] = None
    preprocessing: Optional[PreprocessingOverride] = None

    _split_shorthand = field_validator("split", mode="before")(lambda cls, v: _split_block(v))
    _known_format = field_validator("format")(lambda cls, v: _check_format(v))

    @model_validator(mode="after")
    def _one_data_source(self) -> "DatasetConfig":
        tao = [f for f in TAO_PATH_FIELDS if getattr(self, f)]
        if self.data_root and tao:
            raise ValueError(f"give either data_root or TAO's *_path fields, not both (found {', '.join(tao)})")
        if self.sources and (self.data_root or tao):
            raise ValueError("give either sources or data_root / TAO's *_path fields, not both")
        if not self.data_root and not self.sources:
            missing = [f for f in ("train_images_path", "train_masks_path", "val_images_path", "val_masks_path")
                       if not getattr(self, f)]
            if missing:
                raise ValueError("no data: give data_root (+ format, split) or TAO's train/val image and mask "
                                 f"paths (missing {', '.join(missing)})")
            if self.split is not None:
                raise ValueError("split applies to data_root; TAO's *_path fields are already split")
        return self

    def augmentation(self) -> dict[str, Any] | None:
        """The augmentation config in effect (None: no augmentation)."""
        if not self.augment:
            return None
        if self.augmentation_config is None:
            return TAO_DEFAULT_AUGMENTATION
        return self.augmentation_config.model_dump()

    def class_map(self, scored_only: bool = False) -> list[dict[str, Any]]:
        """The target classes; `scored_only`: without the ignore classes (the model's output classes, what
        checkpoints record)."""
        return [t.model_dump() for t in self.data_class_config.target_classes
                if not (scored_only and is_ignore_class(t.mapping_class))]


# -- model_config -------------------------------------------------------------------------------------
class TrainingPrecision(_Section):
    """TAO's training arithmetic. It decides training_config.precision only where a spec leaves that unset:
    FLOAT32 -> 'float32', FLOAT16 -> 'auto' (float16 mixed precision on CUDA, as TAO; float32 on a CPU)."""

    backend_floatx: Literal["FLOAT32", "FLOAT16", "INVALID"] = "FLOAT32"

    @field_validator("backend_floatx")
    @classmethod
    def _not_invalid(cls, v: str) -> str:
        if v == "INVALID":
            raise ValueError("INVALID is TAO's unset value; give FLOAT32 or FLOAT16")
        return v


class ModelConfig(_Section):
    arch: Literal["resnet"] = "resnet"
    num_layers: Literal[10, 18, 34, 50] = 18
    all_projections: bool = False
    use_batch_norm: bool = True
    freeze_blocks: list[int] = Field(default_factory=list)
    initializer: Literal["HE_UNIFORM", "HE_NORMAL", "GLOROT_UNIFORM"] = "HE_NORMAL"
    training_precision: TrainingPrecision = Field(default_factory=TrainingPrecision)
    model_input_height: int = Field(256, gt=0)
    model_input_width: int = Field(256, gt=0)
    model_input_channels: int = Field(2, gt=0)
    temporal: Literal["single", "bitemporal"] = "single"
    #: output channels of prunable convs ({conv name: channels}, as a pruned checkpoint records them): a
    #: slimmer net from the start, e.g. narrowing encoder.layer4.0.conv1 and decoder.0 (6 of ResNet-10's 8 M
    #: parameters, at 1/32 and 1/16 resolution, so they cost little time)
    widths: Optional[dict[str, int]] = None

    @field_validator("model_input_height", "model_input_width")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be a multiple of 16, got {v}")
        return v

    @field_validator("freeze_blocks")
    @classmethod
    def _blocks_exist(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if b not in range(5)]
        if bad:
            raise ValueError(f"blocks are 0 (stem) to 4 (layer4), got {bad}")
        return v

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `floodwatch.models.build_model`, and nothing else (checkpoints record
        `temporal` beside them: see `Trainer._model`)."""
        return {"arch": self.arch, "num_layers": self.num_layers, "in_channels": self.model_input_channels,
                "num_classes": 2, "all_projections": self.all_projections,
                "use_batch_norm": self.use_batch_norm,
                **({"widths": dict(self.widths)} if self.widths else {})}


# -- training_config ----------------------------------------------------------------------------------
#: the largest random_seed (and `train --seed`)
MAX_SEED = 2**32 - 1
#: Adam moves every weight by about learning_rate per step, whatever the gradients' scale, and a U-Net's
#: weights are mostly well below 1: a larger rate cannot train, it only diverges (typical: 1e-4 to 1e-2).
MAX_LEARNING_RATE = 1.0


def _check_learning_rate(v: Optional[float]) -> Optional[float]:
    if v is not None and v > MAX_LEARNING_RATE:
        raise ValueError(f"{v:g} is far too large for Adam, which moves each weight by about this much per step "
                         f"(at most {MAX_LEARNING_RATE:g}; typical: 1e-4 to 1e-2)")
    return v


class Regularizer(_Section):
    type: Literal["L1", "L2", "NO_REG"] = "NO_REG"
    weight: float = Field(0.0, ge=0)


class MixStyleConfig(_Section):
    probability: float = Field(0.5, ge=0, le=1)  # per batch
    alpha: float = Field(0.1, gt=0)  # lam ~ Beta(alpha, alpha): mostly near 0 or 1
    layers: list[Literal["layer1", "layer2", "layer3", "layer4"]] = Field(
        default_factory=lambda: ["layer1", "layer2"], min_length=1)


class Adam(_Section):
    epsilon: float = Field(1e-8, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)


class Optimizer(_Section):
    adam: Adam = Field(default_factory=Adam)


class LRScheduler(_Section):
    type: Literal["none", "cosine", "step"] = "none"
    step_size: int = Field(10, gt=0)  # epochs, for 'step'
    gamma: float = Field(0.1, gt=0)  # factor, for 'step'
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # final lr / learning_rate, for 'cosine'


class TrainingConfig(_Section):
    batch_size: int = Field(4, gt=0)  # per GPU, as in TAO
    epochs: int = Field(10, gt=0)
    log_summary_steps: int = Field(10, gt=0)
    # Which checkpoints a run keeps: 'best' (best.pt only; last.pt exists while training, for --resume after
    # a kill, and goes when the run ends), 'last' (best.pt and last.pt) or 'all' (also epoch_NNN.pt every
    # checkpoint_interval epochs). Each full checkpoint is ~3x best.pt's size (optimizer state).
    checkpoints: Literal["best", "last", "all"] = "best"
    checkpoint_interval: int = Field(1, gt=0)  # epochs between epoch_NNN.pt, with checkpoints: all
    loss: Literal["cross_entropy", "dice", "cross_dice_sum", "focal", "lovasz", "cross_lovasz_sum"] = "cross_entropy"
    weight: Optional[list[float]] = None  # class weights, [not water, water]
    focal_gamma: float = Field(2.0, ge=0)
    learning_rate: float = Field(1e-3, gt=0)
    regularizer: Regularizer = Field(default_factory=Regularizer)
    optimizer: Optimizer = Field(default_factory=Optimizer)
    lr_scheduler: LRScheduler = Field(default_factory=LRScheduler)
    activation: Literal["softmax"] = "softmax"
    # numpy's and torch's generators take no negative seed; derived seeds (seed * 1_000_003 + epoch ...) must
    # stay within torch's 64 bits
    random_seed: int = Field(42, ge=0, le=MAX_SEED)
    num_workers: int = Field(0, ge=0)
    # The training step's arithmetic. 'auto': float16 mixed precision on CUDA, float32 on a CPU. 'bfloat16':
    # mixed precision in bfloat16 on either (no loss scaling needed; about 2x a CPU step where the CPU has it
    # in hardware, AVX512-BF16 or AMX; elsewhere emulated and slower than float32, docs/benchmarks.md).
    # Weights, optimiser state and checkpoints stay float32 in every mode.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # Validate and save an exponential moving average of the weights (training/averaging.py) instead of the last
    # step's: about the last 1 / (1 - ema_decay) steps. None: off.
    ema_decay: Optional[float] = Field(None, gt=0, lt=1)
    # Labelled pixels within this many pixels of both water and land are not learned (losses.ignore_boundaries):
    # the shore band, where sources' hand labels disagree most. 0: off. Validation scores every pixel.
    ignore_boundary_px: int = Field(0, ge=0, le=16)
    # Re-style the encoder's early features with other chips' statistics while training (training/mixstyle.py,
    # Zhou et al. 2021, for domain generalisation). None: off.
    mixstyle: Optional[MixStyleConfig] = None

    @field_validator("lr_scheduler", mode="before")
    @classmethod
    def _scheduler_shorthand(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v

    _learning_rate = field_validator("learning_rate")(lambda cls, v: _check_learning_rate(v))

    @field_validator("weight")
    @classmethod
    def _two_weights(cls, v: Optional[list[float]]) -> Optional[list[float]]:
        if v is not None and (len(v) != 2 or any(w < 0 for w in v) or not any(v)):
            raise ValueError(f"class weights are [not water, water], >= 0 and not all 0; got {v}")
        return v


# -- semi_supervised (floodwatch's) -------------------------------------------------------------------
class UnlabelledSource(_Section):
    """A folder of unlabelled chips: `format` is one of open_dataset's (None: detected), or 'chips' for a bare
    folder of chip files (GeoTIFF in dB, 8-bit PNG/JPG). Labels found there are not used."""

    path: str
    format: Optional[str] = None
    split: Optional[str] = None  # a source's own split (e.g. OMBRIA's train/test folders)
    exclude_regions: list[str] = Field(default_factory=list)  # events left out, e.g. a leave-one-out fold's

    @field_validator("path")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not str(v).strip():
            raise ValueError("empty path")
        return v

    _known_format = field_validator("format")(lambda cls, v: _check_format(v, extra=("chips",)))


#: FixMatch's weak view: flips only.
WEAK_AUGMENTATION: dict[str, Any] = {"spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5}}
#: the strong view: its own flips (applied to the target too) plus radiometric noise in dB.
STRONG_AUGMENTATION: dict[str, Any] = {
    "spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5},
    "brightness_augmentation": {"delta": 2.0},
    "contrast": {"probability": 0.5, "delta": 0.2},
    "speckle": {"probability": 1.0, "std_db": 1.0},
}


class ConsistencyConfig(_Section):
    """FixMatch-style consistency on unlabelled chips during the student rounds."""

    enabled: bool = True
    weight: float = Field(1.0, ge=0)
    confidence: Optional[float] = Field(None, gt=0.5, lt=1)  # default: semi_supervised.confidence
    batch_size: Optional[int] = Field(None, gt=0)  # default: training_config.batch_size
    weak: AugmentationConfig = Field(default_factory=lambda: AugmentationConfig.model_validate(WEAK_AUGMENTATION))
    strong: AugmentationConfig = Field(default_factory=lambda: AugmentationConfig.model_validate(STRONG_AUGMENTATION))


class SemiSupervisedConfig(_Section):
    unlabelled: list[UnlabelledSource] = Field(min_length=1)
    rounds: int = Field(1, ge=1)
    confidence: float = Field(0.9, gt=0.5, lt=1)
    teacher: Literal["last", "ensemble"] = "last"
    teacher_tta: bool | list[str] = False
    epochs_per_round: Optional[int] = Field(None, gt=0)
    student_learning_rate: Optional[float] = Field(None, gt=0)
    _student_learning_rate = field_validator("student_learning_rate")(lambda cls, v: _check_learning_rate(v))
    unlabelled_weight: float = Field(1.0, gt=0)
    min_confident_fraction: float = Field(0.0, ge=0, le=1)
    augment_students: bool = True
    consistency: Optional[ConsistencyConfig] = None
    # a band name (e.g. VH): pseudo-water is kept only where that band is darker than the Otsu threshold of
    # its values pooled over all unlabelled chips; the teacher's other water pixels are ignored. It filters
    # the pseudo-labels only, not the targets of the consistency loss.
    otsu_agreement: Optional[str] = None

    @field_validator("otsu_agreement")
    @classmethod
    def _band_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.strip():
            raise ValueError("expected a band name such as VH")
        return v.strip().upper() if v is not None else None

    @field_validator("unlabelled", mode="before")
    @classmethod
    def _unlabelled_shorthand(cls, v: Any) -> Any:
        # `unlabelled: some/folder` or a list of bare paths
        if isinstance(v, (str, dict)):
            v = [v]
        if isinstance(v, list):
            return [{"path": e} if isinstance(e, str) else e for e in v]
        return v

    @field_validator("teacher_tta")
    @classmethod
    def _tta_names(cls, v: bool | list[str]) -> bool | list[str]:
        if isinstance(v, list):
            from .inference.tta import TRANSFORMS

            unknown = [n for n in v if str(n).lower() not in TRANSFORMS]
            if unknown or not v:
                raise ValueError(f"unknown transform(s) {', '.join(map(str, unknown)) or '(none given)'} "
                                 f"(known: {', '.join(TRANSFORMS)})")
        return v


class Spec(_Section):
    dataset_config: DatasetConfig
    model: ModelConfig = Field(default_factory=ModelConfig, alias="model_config")
    training_config: TrainingConfig = Field(default_factory=TrainingConfig)
    semi_supervised: Optional[SemiSupervisedConfig] = None

    @model_validator(mode="after")
    def _band_delta_fits(self) -> "Spec":
        from .augment.config import band_delta_problem

        ds = self.dataset_config
        derived = ds.preprocessing.derived if ds.preprocessing else "none"  # a checkpoint's: training checks
        if ds.augment and ds.augmentation_config is not None:
            problem = band_delta_problem(ds.augmentation_config, derived, self.model.temporal)
            if problem:
                raise ValueError(f"dataset_config.augmentation_config.brightness_augmentation.band_delta: {problem}")
        return self

    @model_validator(mode="after")
    def _tao_precision(self) -> "Spec":
        # floodwatch's own field wins where both are given: every saved spec carries both, and checkpoints
        # written before backend_floatx counted say FLOAT32 beside the precision they trained in
        tao = self.model.training_precision
        if "backend_floatx" in tao.model_fields_set and "precision" not in self.training_config.model_fields_set:
            self.training_config.precision = "float32" if tao.backend_floatx == "FLOAT32" else "auto"
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain types with TAO's section names (what a checkpoint carries and `save_spec` writes)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


# -- reading and writing ------------------------------------------------------------------------------
class SpecProblems(SpecError):
    """Every problem found in one spec: `lines` lists them all (what `spec validate` prints); the message is
    the first plus a count, and `hint` says where to see the rest."""

    def __init__(self, lines: list[str], hint: str = ""):
        more = f" (and {len(lines) - 1} more{f': {hint}' if hint else ''})" if len(lines) > 1 else ""
        super().__init__(lines[0] + more)
        self.lines = lines


def _error_lines(source: str, exc: ValidationError, lines: dict[tuple[str, ...], int] | None = None) -> list[str]:
    """One line per error: source, field path, message; `lines` (a TAO spec's) adds the line it was given on."""
    from .tao import Repeated

    def loc(parts: tuple) -> str:
        # dataset_config.sources[1].format: list positions as a reader of the YAML counts them
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or "(top level)"

    # unknown fields (typos) first: a misspelt section also makes the real one "Field required"
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")

    def line(e: dict) -> str:
        msg = e["msg"].removeprefix("Value error, ")
        given = e.get("input")
        if isinstance(given, Repeated) and not e["type"].startswith("too_"):
            # protobuf text repeats a field by giving it again: for a setting of one value that is a mistake
            return f"{source}: {loc(e['loc'])}: given {len(given)} times (lines {', '.join(map(str, given.lines))}); " \
                   f"it takes one value"
        if e["type"] == "extra_forbidden":
            msg = f"unknown field{_did_you_mean(e['loc'])}"
        at = (lines or {}).get(tuple(p for p in e["loc"] if isinstance(p, str)))
        msg += f" (line {at})" if at else ""
        # a check across sections names its own field (dataset_config.x: ...) in place of "(top level)"
        named = not e["loc"] and re.match(r"^[a-z_]+(\.[a-z_0-9\[\]]+)+: ", msg)
        return f"{source}: {msg}" if named else f"{source}: {loc(e['loc'])}: {msg}"

    return list(dict.fromkeys(line(e) for e in errors))  # a repeated field fails once per union member


def _did_you_mean(loc: tuple) -> str:
    """ "; did you mean X?" for a misspelt field: the closest name its section takes, if one is close."""
    from difflib import get_close_matches
    from typing import get_args

    from pydantic import BaseModel

    cls: Any = Spec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) or next(
            (f for f in cls.model_fields.values() if f.alias == part), None)
        if field is None:
            return ""
        todo, cls = [field.annotation], None
        while todo and cls is None:  # Optional[list[X]] -> X
            t = todo.pop(0)
            if isinstance(t, type) and issubclass(t, BaseModel):
                cls = t
            else:
                todo += list(get_args(t))
        if cls is None:
            return ""
    names = [f.alias or n for n, f in cls.model_fields.items()]
    close = get_close_matches(str(loc[-1]), names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def spec_channel_problems(spec: Spec) -> list[str]:
    """What training would reject about the channels, from the spec alone (each line starts with its field).

    Only where the spec states the pre-processing (a dataset_config.preprocessing block, even an empty one:
    training then fits it from the spec whether or not it starts from a checkpoint): its clip list and
    offset/scale against the bands (those every named format's reader gives, or the clip list's), and
    model_input_channels against bands + derived channel (doubled for bi-temporal models). Without the
    block nothing is checked here: fine-tuning (`train -m checkpoint`) then takes the checkpoint's
    pre-processing (derived channel included) and model_config, so the data's channels are unknown until
    then, and training checks them against the model it builds or loads."""
    ds, m, pre = spec.dataset_config, spec.model, spec.dataset_config.preprocessing
    if pre is None:
        return []
    plus = "" if pre.derived == "none" else f" + {pre.derived}"
    problems, bands, why = [], None, ""
    formats = [src.format for src in ds.sources] if ds.sources else [ds.format]
    fixed = {_reader_bands(f) for f in formats}
    if len(fixed) == 1 and None not in fixed:
        names = next(iter(fixed))
        bands, why = len(names), f"{'+'.join(names)} from format {'/'.join(sorted(set(formats)))}"
    if isinstance(pre.clip, list):
        if bands is None:
            bands, why = len(pre.clip), f"{len(pre.clip)} bands per dataset_config.preprocessing.clip"
        elif len(pre.clip) != bands:
            problems.append(f"dataset_config.preprocessing.clip: {len(pre.clip)} ranges, but the data have "
                            f"{bands} band(s) ({why})")
    if pre.anchor is not None and bands is not None and len(pre.anchor.db) != bands:
        problems.append(f"dataset_config.preprocessing.anchor.db: {len(pre.anchor.db)} levels, but the data have "
                        f"{bands} band(s) ({why})")
    known = None if bands is None else (bands + (pre.derived != "none"), why + plus)
    if pre.offset is not None:
        if known is None:
            known = (len(pre.offset), "one per dataset_config.preprocessing.offset value")
        elif len(pre.offset) != known[0]:
            problems.append(f"dataset_config.preprocessing.offset: {len(pre.offset)} values, but the data give "
                            f"{known[0]} channels ({known[1]})")
    times = 2 if m.temporal == "bitemporal" else 1
    if known is not None and known[0] * times != m.model_input_channels:
        problems.append(f"model_config.model_input_channels: the model takes {m.model_input_channels} input channels "
                        f"but the data give {known[0] * times} ({known[1]}{', x2 before+after' if times == 2 else ''})")
    return problems


def spec_from_dict(data: Any, source: str = "spec", base_dir: str | Path | None = None, *,
                   check_channels: bool = True) -> Spec:
    """Validate a dict; relative paths are resolved against `base_dir` (the spec file's folder).
    Field errors: SpecProblems listing them all. Then, with `check_channels`, SpecProblems listing
    `spec_channel_problems` (False: the caller checks them itself, as `spec validate` does beside the paths)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping of sections (dataset_config, model_config, "
                        f"training_config), got {type(data).__name__}")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecProblems(_error_lines(source, exc, getattr(data, "lines", None))) from None
    problems = spec_channel_problems(spec) if check_channels else []
    if problems:
        raise SpecProblems([f"{source}: {p}" for p in problems])
    if base_dir is not None:
        resolve_paths(spec, Path(base_dir))
    return spec


def resolve_paths(spec: Spec, base_dir: Path) -> Spec:
    ds = spec.dataset_config
    absolute = lambda p: str((base_dir / os.path.expanduser(p)).resolve())  # noqa: E731
    for f in ("data_root", *TAO_PATH_FIELDS):
        if getattr(ds, f):
            setattr(ds, f, absolute(getattr(ds, f)))
    for split in [ds.split, *(src.split for src in ds.sources or [])]:
        if split is not None and split.csv:
            split.csv = absolute(split.csv)
    for src in ds.sources or []:
        src.path = absolute(src.path)
    if spec.semi_supervised is not None:
        for source in spec.semi_supervised.unlabelled:
            source.path = absolute(source.path)
    return spec


def _read_spec_file(path: Path) -> str:
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, not a spec file")
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    return read_text(path, error=SpecError, what="spec file")


def load_spec(path: str | Path, *, check_channels: bool = True, ignored: list[str] | None = None) -> Spec:
    """A YAML spec, or TAO's protobuf-text spec (detected by content), validated; paths made absolute.
    Several problems: SpecProblems, whose message points to `floodwatch spec validate` for the full list.
    `check_channels`: as spec_from_dict's (paths are never checked here: see spec_path_problems).
    `ignored` collects the TAO-only fields a TAO spec gave that were dropped (as `convert_tao_spec` returns)."""
    path = Path(path)
    text = _read_spec_file(path)
    if looks_like_tao(text):
        from .tao import tao_to_dict

        data = tao_to_dict(text, source=str(path), ignored=ignored)
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise SpecError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', exc)})") from None
    try:
        return spec_from_dict(data, source=path.name, base_dir=path.resolve().parent,
                              check_channels=check_channels)
    except SpecProblems as exc:
        raise SpecProblems(exc.lines, hint=f"run floodwatch spec validate {path}") from None


def spec_path_problems(spec: Spec) -> list[str]:
    """Every field whose path does not exist or is of the wrong kind, one line each starting with the field
    (a spec can parse and still point nowhere). Paths are absolute after load_spec."""
    ds = spec.dataset_config
    fields: list[tuple[str, str | None, bool]] = [(f"dataset_config.{f}", getattr(ds, f), True)
                                                  for f in ("data_root", *TAO_PATH_FIELDS)]
    if ds.split is not None:
        fields.append(("dataset_config.split.csv", ds.split.csv, False))
    for i, src in enumerate(ds.sources or []):
        # a synthetic source given its generator's options writes its folder on first use, as train does
        written = (src.format or "").lower() == "synthetic" and {"chips", "size", "seed", "phenomena"} & set(src.options)
        fields.append((f"dataset_config.sources[{i}].path", None if written else src.path, True))
        if src.split is not None:
            fields.append((f"dataset_config.sources[{i}].split.csv", src.split.csv, False))
    if spec.semi_supervised is not None:
        fields += [(f"semi_supervised.unlabelled[{i}].path", s.path, True)
                   for i, s in enumerate(spec.semi_supervised.unlabelled)]
    problems = []
    for field, value, folder in fields:
        if not value:
            continue
        path = Path(value)
        if not path.exists():
            problems.append(f"{field}: {path} does not exist")
        elif folder and not path.is_dir():
            problems.append(f"{field}: {path} is a file, not a folder")
        elif not folder and not path.is_file():
            problems.append(f"{field}: {path} is a folder, not a file")
    return problems


def looks_like_tao(text: str) -> bool:
    """TAO's protobuf text opens its sections with `name {`; YAML never has a bare `{` after a key."""
    import re

    return re.search(r"^\s*(dataset_config|model_config|training_config)\s*\{", text, re.M) is not None


def save_spec(spec: Spec, path: str | Path, relative_to: str | Path | None = None) -> Path:
    """Write YAML atomically; paths are made relative to the output's folder so the pair can be moved."""
    from .io import atomic_path

    path = Path(path)
    data = spec_file_dict(spec, relative_to or path.resolve().parent)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def spec_file_dict(spec: Spec, base: str | Path) -> dict[str, Any]:
    """What `save_spec` writes into a file in the folder `base`: `to_dict` with absolute paths made relative."""
    data = spec.to_dict()
    base = Path(base).resolve()
    ds = data["dataset_config"]
    for f in ("data_root", *TAO_PATH_FIELDS):
        if ds.get(f):
            ds[f] = os.path.relpath(ds[f], base) if os.path.isabs(ds[f]) else ds[f]
    for block in [ds, *ds.get("sources", [])]:
        if block.get("split", {}).get("csv") and os.path.isabs(block["split"]["csv"]):
            block["split"]["csv"] = os.path.relpath(block["split"]["csv"], base)
    for src in ds.get("sources", []):
        src["path"] = os.path.relpath(src["path"], base) if os.path.isabs(src["path"]) else src["path"]
    for source in (data.get("semi_supervised") or {}).get("unlabelled", []):
        if os.path.isabs(source["path"]):
            source["path"] = os.path.relpath(source["path"], base)
    return data


def convert_tao_spec(tao_path: str | Path, output: str | Path) -> list[str]:
    """TAO protobuf-text spec -> validated YAML spec; returns the TAO-only fields that were dropped."""
    from .tao import tao_to_dict

    tao_path, output = Path(tao_path), check_not_input(output, tao_path, name="output", error=SpecError)
    text = _read_spec_file(tao_path)
    if not looks_like_tao(text) and (tao_path.suffix.lower() in (".yaml", ".yml", ".json") or _has_sections(text)):
        raise SpecError(f"{tao_path}: already a floodwatch spec (YAML/JSON); spec convert takes TAO's protobuf "
                        f"text spec. Use this file as it is (check it: floodwatch spec validate {tao_path})")
    ignored: list[str] = []
    data = tao_to_dict(text, source=str(tao_path), ignored=ignored)
    try:
        spec = spec_from_dict(data, source=tao_path.name, base_dir=tao_path.resolve().parent)
    except SpecProblems as exc:
        raise SpecProblems(exc.lines, hint=f"run floodwatch spec validate {tao_path}") from None
    save_spec(spec, output)
    return ignored


def _has_sections(text: str) -> bool:
    """A YAML/JSON mapping with a spec section: what a floodwatch spec is and a TAO file never parses as."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and bool({"dataset_config", "model_config", "training_config"} & set(data))
