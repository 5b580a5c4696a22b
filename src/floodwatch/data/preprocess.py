"""Pre-processing in one place, recorded with every model.

Training, evaluation, inference, export metadata, the Triton client and scene mapping all call
`Preprocessing.apply`, and a checkpoint / ONNX file / Triton repository carries `to_dict()`, so none of
them can drift apart. The normalisation is the course's (DeepStream nvinfer) form:

    y = net_scale_factor * (x - offset)        per channel, after dB clipping

with an optional derived third channel (VV-VH difference or ratio) for 3-channel models.

An optional anchor makes the input relative to each chip's own land: each band's `anchor_percentile`-th
percentile of the chip's valid pixels (a tile's, when mapping a scene) is moved to `anchor_db` before clipping.
Why: sources put the same land at different absolute levels (ETCI's 8-bit renderings, GRD sigma0, RTC gamma0),
and a high percentile sits on land unless most of the chip is water.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import DataError, FloodwatchError
from .sample import Sample, band_order

Derived = Literal["none", "diff", "ratio"]

#: dB range kept before normalising: below -50 dB is sensor noise floor, above +5 dB is rare bright targets.
DEFAULT_CLIP = (-50.0, 5.0)


@dataclass
class Preprocessing:
    bands: list[str] = field(default_factory=lambda: ["VV", "VH"])
    #: per band dB range; None = DEFAULT_CLIP for every band
    clip: list[tuple[float, float]] | None = None
    derived: Derived = "none"
    #: per output channel (len = channels)
    offset: list[float] = field(default_factory=lambda: [-12.0, -19.0])
    scale: list[float] = field(default_factory=lambda: [1 / 5.0, 1 / 5.0])
    #: value the normalised image takes where there is no data (0 = the mean after normalising)
    fill: float = 0.0
    #: what the raw input is in: 'db' (all sources are harmonised to dB by their readers)
    units: str = "db"
    #: per chip, each band's percentile of its valid pixels that is moved to `anchor_db`; None = absolute levels
    anchor_percentile: float | None = None
    #: per band dB level the anchor percentile is moved to
    anchor_db: list[float] | None = None

    def __post_init__(self) -> None:
        if self.clip is None:
            self.clip = [DEFAULT_CLIP] * len(self.bands)
        self.clip = [tuple(map(float, c)) for c in self.clip]
        self.offset = [float(v) for v in self.offset]
        self.scale = [float(v) for v in self.scale]
        if len(self.clip) != len(self.bands):
            raise FloodwatchError(f"preprocessing.clip: {len(self.clip)} ranges for {len(self.bands)} bands")
        if self.derived not in ("none", "diff", "ratio"):
            raise FloodwatchError(f"preprocessing.derived: '{self.derived}' is not one of none, diff, ratio")
        if len(self.offset) != self.channels or len(self.scale) != self.channels:
            raise FloodwatchError(
                f"preprocessing: offset/scale need {self.channels} values (got {len(self.offset)}/{len(self.scale)})")
        if (self.anchor_percentile is None) != (self.anchor_db is None):
            raise FloodwatchError("preprocessing: anchor_percentile and anchor_db go together")
        if self.anchor_db is not None:
            self.anchor_percentile = float(self.anchor_percentile)
            self.anchor_db = [float(v) for v in self.anchor_db]
            if not 0.0 <= self.anchor_percentile <= 100.0:
                raise FloodwatchError(f"preprocessing.anchor_percentile: {self.anchor_percentile:g} is not in 0-100")
            if len(self.anchor_db) != len(self.bands):
                raise FloodwatchError(f"preprocessing.anchor_db: {len(self.anchor_db)} levels for "
                                      f"{len(self.bands)} bands")

    @property
    def channels(self) -> int:
        return len(self.bands) + (0 if self.derived == "none" else 1)

    # -- the transform ------------------------------------------------------------------------------
    def derive(self, image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Anchor (when set), clip per band and append the derived channel; still in dB. image: (..., C, H, W),
        valid: (..., H, W), the pixels the anchor is taken from (besides finite ones)."""
        x = np.asarray(image, dtype=np.float32)
        if x.shape[-3] != len(self.bands):
            raise FloodwatchError(
                f"input has {x.shape[-3]} bands but the model expects {len(self.bands)} ({', '.join(self.bands)})")
        if self.anchor_db is not None:
            x = self.anchored(x, valid)
        lo = np.array([c[0] for c in self.clip], np.float32).reshape(-1, 1, 1)
        hi = np.array([c[1] for c in self.clip], np.float32).reshape(-1, 1, 1)
        x = np.clip(x, lo, hi)
        if self.derived != "none":
            # diff and ratio: VV-VH in dB *is* the log of the linear ratio; 'ratio' is the linear one.
            d = x[..., 0:1, :, :] - x[..., 1:2, :, :]
            if self.derived == "ratio":
                d = np.power(10.0, d / 10.0, dtype=np.float32)
            x = np.concatenate([x, d], axis=-3)
        return x

    def anchored(self, image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Each chip's bands shifted so that their anchor percentile (over finite, valid pixels) lands on
        anchor_db; a band without such pixels is left as it is. image: (..., C, H, W) in dB."""
        x = np.array(image, dtype=np.float32)
        c, h, w = x.shape[-3:]
        flat = x.reshape(-1, c, h * w)
        ok_all = np.isfinite(flat)
        if valid is not None:
            ok_all &= np.broadcast_to(np.asarray(valid, bool), x.shape[:-3] + (h, w)).reshape(-1, 1, h * w)
        for n in range(flat.shape[0]):
            for b in range(c):
                values = flat[n, b][ok_all[n, b]]
                if values.size:
                    flat[n, b] += np.float32(self.anchor_db[b] - np.percentile(values, self.anchor_percentile))
        return flat.reshape(x.shape)

    def apply(self, image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """dB image (C,H,W) or batch (N,C,H,W) -> normalised float32 network input; nodata -> `fill`."""
        x = self.derive(image, valid)
        off = np.array(self.offset, np.float32).reshape(-1, 1, 1)
        sc = np.array(self.scale, np.float32).reshape(-1, 1, 1)
        y = (x - off) * sc
        bad = ~np.isfinite(y)
        if valid is not None:
            bad |= ~np.expand_dims(np.asarray(valid, bool), -3)
        if bad.any():
            y = np.where(bad, np.float32(self.fill), y)
        return y.astype(np.float32, copy=False)

    # -- fitting and serialisation --------------------------------------------------------------------
    @classmethod
    def from_stats(cls, mean: Sequence[float], std: Sequence[float], *, bands: Sequence[str] = ("VV", "VH"),
                   derived: Derived = "none", clip: Sequence[tuple[float, float]] | None = None) -> "Preprocessing":
        """Per-channel standardisation: offset = mean, scale = 1/std (mean/std over the derived channels)."""
        std = [max(float(s), 1e-6) for s in std]
        return cls(bands=list(bands), clip=list(clip) if clip else [DEFAULT_CLIP] * len(bands), derived=derived,
                   offset=[float(m) for m in mean], scale=[1.0 / s for s in std])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clip"] = [list(c) for c in self.clip]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def nvinfer_lines(self) -> list[str]:
        """The course's nvinfer_config.txt keys; nvinfer takes one scale factor, so it needs equal scales."""
        lines = [f"offsets={';'.join(f'{o:.6g}' for o in self.offset)}"]
        if len(set(round(s, 9) for s in self.scale)) == 1:
            lines.append(f"net-scale-factor={self.scale[0]:.9g}")
        else:
            lines.append("# per-channel scales differ; nvinfer needs one net-scale-factor")
            lines.append(f"# floodwatch-scales={';'.join(f'{s:.9g}' for s in self.scale)}")
        lines.append(f"# floodwatch-preprocessing: bands={','.join(self.bands)} derived={self.derived} "
                     f"clip={';'.join(f'{a:g}:{b:g}' for a, b in self.clip)} units={self.units}")
        if self.anchor_db is not None:
            lines.append(f"# floodwatch-anchor: each chip's p{self.anchor_percentile:g} per band moved to "
                         f"{';'.join(f'{v:g}' for v in self.anchor_db)} dB before clipping; nvinfer cannot do "
                         f"this, so feed it anchored chips")
        return lines


def network_input(sample: Sample, preprocessing: Preprocessing, temporal: str = "single") -> np.ndarray:
    """The one place a Sample becomes a model input (C, H, W): band selection, pre-processing and, for
    bi-temporal models, before and after each pre-processed alike and stacked before-first. Training,
    evaluation, inference, calibration and INT8 calibration all call it, so none can drift from the others.
    Data whose bands do not fit the model -> DataError naming the chip."""
    order = model_band_order(sample, preprocessing.bands)

    def pick(image: np.ndarray) -> np.ndarray:
        return image if order == list(range(image.shape[0])) else image[order]

    after = preprocessing.apply(pick(sample.image), sample.valid)
    if temporal != "bitemporal":
        return after
    if sample.before is None:
        raise DataError(f"{_where(sample)}: the model is bi-temporal but the chip has no 'before' image")
    return np.concatenate([preprocessing.apply(pick(sample.before), sample.valid), after], axis=0)


def _where(sample: Sample) -> str:
    return sample.extra.get("path", sample.id)  # infer's and change's inputs name their file


def model_band_order(sample: Sample, bands: Sequence[str]) -> list[int]:
    """Index of each of the model's `bands` in the sample, by name (a VH-only model on VV+VH data, a file stored
    VH, VV; `band_order`); names that do not fit the image count as none. Too few bands, or bands that cannot be
    told apart: a DataError naming the sample's file (else its id)."""
    n = sample.image.shape[0]
    if n < len(bands):
        raise DataError(f"{_where(sample)}: data has {n} band(s) ({', '.join(sample.bands)}) but the model expects "
                        f"{len(bands)} ({', '.join(bands)})")
    return band_order(list(sample.bands) if len(sample.bands) == n else [None] * n, list(bands), _where(sample))
