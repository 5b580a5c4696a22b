"""The spec's `augmentation_config`, validated. Section and key names follow TAO's U-Net spec where TAO has
them (`spatial_augmentation`, `brightness_augmentation.delta`); `contrast` and `speckle` are floodwatch's.

Every operator is off unless its probability is above 0, so an empty config means "no augmentation".

Units: augmentation runs on batches *after* `Preprocessing.apply`, i.e. on normalised tensors. Photometric
amounts (`brightness_augmentation.delta`, `speckle.std_db`) are in dB and are converted to normalised units
with the per-channel `Preprocessing.scale` (pass `db_scale` to the augmenter); without it they are taken
to be in normalised units already.
"""
from __future__ import annotations

import types
from typing import Any, Literal, Mapping, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ..errors import SpecError

Probability = Field(0.0, ge=0.0, le=1.0)


def _is_number(annotation: Any) -> bool:
    """An int or float field (Optional, or a Literal of numbers, too): one a YAML boolean must not fill."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if origin in (Union, types.UnionType):
        return bool not in args and any(_is_number(a) for a in args if a is not type(None))
    return annotation in (int, float)


class SpecSection(BaseModel):
    """A spec section: unknown keys, NaN/infinity (they pass every ge/gt bound) and booleans in number fields
    (YAML reads true/yes/on as booleans, which pydantic took as 1: `epochs: yes` trained one epoch) refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool) and _is_number(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"{str(v).lower()} is a boolean, not a number")
        return v


class SpatialAugmentation(SpecSection):
    hflip_probability: float = Probability
    vflip_probability: float = Probability
    #: chance of cutting a random region of interest and resizing it back to the chip size (the course's ROI resize)
    crop_and_resize_prob: float = Probability
    #: at most this fraction of each side is cut away (0.1: the ROI keeps 90-100 % of height and width)
    crop_and_resize_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    rotate_probability: float = Probability
    #: angle drawn uniformly in [-rotate_max_degrees, +rotate_max_degrees]
    rotate_max_degrees: float = Field(10.0, ge=0.0, le=180.0)
    #: value (normalised units) for image pixels rotated in from outside; masks get IGNORE_INDEX, valid False
    fill_value: float = 0.0


class BrightnessAugmentation(SpecSection):
    probability: float = Field(1.0, ge=0.0, le=1.0)
    #: dB added to every band, drawn uniformly in [-delta, +delta] per chip (0 = off)
    delta: float = Field(0.0, ge=0.0)
    #: dB added to each band on its own, drawn uniformly in [-band_delta, +band_delta] per chip and band, on top
    #: of the common shift (0 = off): the bands' balance (VV against VH) differs between sensors' processing
    band_delta: float = Field(0.0, ge=0.0)


class ContrastAugmentation(SpecSection):
    probability: float = Probability
    #: each channel is stretched about its mean by a factor drawn in [1 - delta, 1 + delta]
    delta: float = Field(0.2, ge=0.0, lt=1.0)


class SpeckleAugmentation(SpecSection):
    probability: float = Probability
    #: standard deviation (dB) of the additive noise; multiplicative SAR speckle is additive in dB
    std_db: float = Field(0.5, ge=0.0)


class ChannelDropout(SpecSection):
    """Per chip, with this probability one input channel (drawn uniformly) is set to 0, the normalised mean, on
    its valid pixels: the model cannot lean on one band alone (e.g. ETCI's clean VV, where other sensors' VV is
    ambiguous). A 1-channel input (VV only, OMBRIA) is left alone: dropping its one channel would blank it."""

    probability: float = Probability


class AugmentationConfig(SpecSection):
    spatial_augmentation: SpatialAugmentation = Field(default_factory=SpatialAugmentation)
    brightness_augmentation: BrightnessAugmentation = Field(default_factory=BrightnessAugmentation)
    contrast: ContrastAugmentation = Field(default_factory=ContrastAugmentation)
    speckle: SpeckleAugmentation = Field(default_factory=SpeckleAugmentation)
    channel_dropout: ChannelDropout = Field(default_factory=ChannelDropout)

    @property
    def is_identity(self) -> bool:
        s = self.spatial_augmentation
        b = self.brightness_augmentation
        return not any((s.hflip_probability, s.vflip_probability, s.crop_and_resize_prob and s.crop_and_resize_ratio,
                        s.rotate_probability and s.rotate_max_degrees, b.probability and (b.delta or b.band_delta),
                        self.contrast.probability and self.contrast.delta,
                        self.speckle.probability and self.speckle.std_db, self.channel_dropout.probability))


def band_delta_problem(config: AugmentationConfig, derived: str, temporal: str) -> str | None:
    """Why `brightness_augmentation.band_delta` cannot apply to a model's inputs, or None: a derived channel
    (VV-VH, VV/VH) is computed before augmentation and would not follow the bands' own shifts, and a
    before+after stack would get unrelated shifts for the two dates of one band, a change that is not there."""
    if not config.brightness_augmentation.band_delta:
        return None
    if derived != "none":
        return f"not with the derived channel '{derived}', which is computed before augmentation and would not " \
               "follow the bands' own shifts"
    if temporal == "bitemporal":
        return "not with a bi-temporal model: the two dates of a band would be shifted apart, a change that is " \
               "not in the scene"
    return None


#: what `floodwatch data preview` shows when the spec gives nothing: every operator visibly on.
PREVIEW_CONFIG: dict[str, Any] = {
    "spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5, "crop_and_resize_prob": 0.5,
                             "crop_and_resize_ratio": 0.3, "rotate_probability": 0.5, "rotate_max_degrees": 30},
    "brightness_augmentation": {"delta": 3.0},
    "contrast": {"probability": 0.5, "delta": 0.3},
    "speckle": {"probability": 0.5, "std_db": 1.0},
    "channel_dropout": {"probability": 0.25},
}


def parse_config(config: "AugmentationConfig | Mapping[str, Any] | BaseModel | None") -> AugmentationConfig:
    """Accept a dict (from YAML), any pydantic model with the same fields, or None (no augmentation)."""
    if config is None:
        return AugmentationConfig()
    if isinstance(config, AugmentationConfig):
        return config
    if isinstance(config, BaseModel):
        config = config.model_dump(exclude_none=True)
    if not isinstance(config, Mapping):
        raise SpecError(f"augmentation_config: expected a mapping, got {type(config).__name__}")
    try:
        return AugmentationConfig.model_validate(_drop_none(config))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SpecError(f"augmentation_config.{where}: {err['msg']}") from None


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, Mapping) else v for k, v in d.items() if v is not None}
