"""Batched, seeded augmentation in torch: what DALI does in the course, on whatever device the batch is on.

Where it sits: the trainer calls it on batches *after* `Preprocessing.apply` (normalised tensors, nodata
already set to `Preprocessing.fill`). Geometric operators touch image, mask and valid identically; the
photometric ones, channel dropout included, touch only valid image pixels, so nodata keeps its fill value.

Order per chip: flip -> crop-and-resize -> rotation, done as one grid_sample over the batch (flips alone
stay exact index shuffles) -> contrast -> brightness -> speckle -> channel dropout. All random numbers are drawn
with one `torch.Generator`, a fixed number per chip per call (two more with channel dropout on), so a seed gives
the same augmentation on CPU and GPU and whichever operators are on.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..data.preprocess import Preprocessing
from ..data.sample import IGNORE_INDEX
from ..errors import FloodwatchError
from . import ops
from .config import AugmentationConfig, band_delta_problem, parse_config

#: uniform numbers drawn per chip per call (columns of `_draw`'s table)
_HFLIP, _VFLIP, _CROP, _CROP_H, _CROP_W, _CROP_Y, _CROP_X, _ROT, _ANGLE, _BRIGHT, _BRIGHT_V, _CONTR, \
    _CONTR_V, _SPECKLE = range(14)


class BatchAugmenter:
    """Random paired augmentation of (image (N,C,H,W) float, mask (N,H,W) long, valid (N,H,W) bool).

    db_scale: per-channel factors from dB to normalised units (`Preprocessing.scale`), or a Preprocessing
    (derived channels then get 0: a common dB shift leaves VV-VH unchanged). None: amounts are taken as
    normalised units.
    """

    def __init__(self, config: AugmentationConfig | Mapping[str, Any] | None = None, seed: int = 0, *,
                 db_scale: Sequence[float] | Preprocessing | None = None) -> None:
        self.config = parse_config(config)
        if isinstance(db_scale, Preprocessing):  # the trainer checks its own (it passes a list)
            check_band_delta(self.config, db_scale.derived, "single")
        self.db_scale = _db_scale(db_scale)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._device_generators: dict[str, torch.Generator] = {}
        #: the parameters drawn for the last batch (CPU tensors), for inspection and tests
        self.last_params: dict[str, torch.Tensor] = {}

    @classmethod
    def from_config(cls, augmentation_config: AugmentationConfig | Mapping[str, Any] | Any, seed: int = 0, *,
                    db_scale: Sequence[float] | Preprocessing | None = None) -> "BatchAugmenter":
        return cls(augmentation_config, seed, db_scale=db_scale)

    def manual_seed(self, seed: int) -> "BatchAugmenter":
        """Restart the random stream (the loader calls this with seed + epoch so a resumed run matches)."""
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)
        self._device_generators.clear()
        return self

    # -- the call ------------------------------------------------------------------------------------------
    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None, valid: torch.Tensor | None):
        n, c, h, w = _check(image, mask, valid)
        if valid is None:
            valid = torch.ones((n, h, w), dtype=torch.bool, device=image.device)
        u = torch.rand((n, 14), generator=self.generator, dtype=torch.float64)
        sp = self.config.spatial_augmentation
        hf, vf = u[:, _HFLIP] < sp.hflip_probability, u[:, _VFLIP] < sp.vflip_probability
        crop = (u[:, _CROP] < sp.crop_and_resize_prob) & (sp.crop_and_resize_ratio > 0)
        rot = (u[:, _ROT] < sp.rotate_probability) & (sp.rotate_max_degrees > 0)
        angle = torch.where(rot, (2 * u[:, _ANGLE] - 1) * sp.rotate_max_degrees, 0.0)
        roi = self._rois(u, crop, h, w)
        self.last_params = {"hflip": hf, "vflip": vf, "crop": crop, "roi": roi, "rotate": rot, "angle": angle}
        photo = self._photo_draws(u, c)
        self.last_params.update(photo)
        if self.config.is_identity:
            return image, mask, valid

        moved = crop | rot
        if moved.any():
            # flips, ROI crop-and-resize and rotation folded into one sampling grid for the whole batch: one
            # pass over memory beats gathering and scattering the chips that moved (chips that drew nothing
            # get the identity, which samples pixel centres exactly up to float rounding)
            theta = ops.compose(_flip_thetas(hf, vf), ops.compose(_crop_thetas(roi, h, w),
                                                                  ops.rotation_theta(angle, h, w)))
            grid = ops.make_grid(theta, (h, w), image.device)
            image = ops.sample_affine(image, theta, fill=sp.fill_value, grid=grid)
            mask, valid = _resample_labels(mask, valid, grid)
        elif (hf | vf).any():  # flips alone stay exact index shuffles of the chips that drew them
            image, valid = image.clone(), valid.clone()
            mask = mask.clone() if mask is not None else None
            for sel, dim in ((hf, -1), (vf, -2)):
                if sel.any():
                    idx = sel.nonzero().flatten().to(image.device)
                    for t in (image, mask, valid):
                        if t is not None:
                            t[idx] = t[idx].flip(dim)
        else:
            image = image.clone()
        return self._photometric(image, valid, photo), mask, valid

    # -- pieces --------------------------------------------------------------------------------------------
    def _rois(self, u: torch.Tensor, crop: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(N, 4) ROIs (y0, x0, y1, x1) in pixels; the whole chip where no crop is drawn."""
        r = self.config.spatial_augmentation.crop_and_resize_ratio
        ch = h * (1 - r * u[:, _CROP_H])
        cw = w * (1 - r * u[:, _CROP_W])
        y0 = (h - ch) * u[:, _CROP_Y]
        x0 = (w - cw) * u[:, _CROP_X]
        roi = torch.stack([y0, x0, y0 + ch, x0 + cw], dim=1)
        full = torch.tensor([0.0, 0.0, h, w], dtype=roi.dtype)
        return torch.where(crop[:, None], roi, full)

    def _photo_draws(self, u: torch.Tensor, c: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        drop = torch.full((u.shape[0],), -1, dtype=torch.long)  # the channel zeroed per chip, -1: none
        if cfg.channel_dropout.probability and c > 1:  # one channel dropped would blank the whole input
            # drawn apart from the table so that configs without it keep their random stream
            d = torch.rand((u.shape[0], 2), generator=self.generator, dtype=torch.float64)
            drop = torch.where(d[:, 0] < cfg.channel_dropout.probability, (d[:, 1] * c).long().clamp_max(c - 1), -1)
        con = (u[:, _CONTR] < cfg.contrast.probability) & (cfg.contrast.delta > 0)
        factor = torch.where(con, 1 + (2 * u[:, _CONTR_V] - 1) * cfg.contrast.delta, 1.0)
        b = cfg.brightness_augmentation
        bri = (u[:, _BRIGHT] < b.probability) & ((b.delta > 0) | (b.band_delta > 0))
        shift = torch.where(bri, (2 * u[:, _BRIGHT_V] - 1) * b.delta, 0.0)[:, None].expand(-1, c)
        if b.band_delta:  # drawn apart from the table too: configs without it keep their random stream
            own = (2 * torch.rand((u.shape[0], c), generator=self.generator, dtype=torch.float64) - 1) * b.band_delta
            shift = shift + torch.where(bri[:, None], own, 0.0)
        spk = (u[:, _SPECKLE] < cfg.speckle.probability) & (cfg.speckle.std_db > 0)
        return {"contrast": con, "contrast_factor": factor, "brightness": bri, "brightness_db": shift,
                "speckle": spk, "dropped_channel": drop}

    def _photometric(self, image: torch.Tensor, valid: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Contrast, brightness and speckle on valid pixels of the chips that drew them, then channel dropout,
        which zeroes the drawn channel's valid pixels as the DALI graph does (image is ours to edit)."""
        c, dev, dt = image.shape[1], image.device, image.dtype
        scale = self._channel_scale(c).to(dev, dt).view(1, c, 1, 1)
        v = valid[:, None].to(dt)
        if p["contrast"].any():  # factor 1 where not drawn: one pass over the batch
            f = p["contrast_factor"].to(dev, dt).view(-1, 1, 1, 1)
            mean = (image * v).sum((-2, -1), keepdim=True) / v.sum((-2, -1), keepdim=True).clamp_min(1)
            image += (f - 1) * (image - mean) * v
        if p["brightness"].any():
            image += p["brightness_db"].to(dev, dt).view(-1, c, 1, 1) * scale * v
        if p["speckle"].any():
            idx = p["speckle"].nonzero().flatten().to(dev)
            noise = torch.randn((len(idx), *image.shape[1:]), generator=self._generator_for(dev), device=dev,
                                dtype=dt)
            image[idx] += noise * (self.config.speckle.std_db * scale) * v[idx]
        if (p["dropped_channel"] >= 0).any():
            hit = p["dropped_channel"].to(dev)[:, None] == torch.arange(c, device=dev)[None]
            image *= 1 - hit[:, :, None, None].to(dt) * v
        return image

    def _channel_scale(self, c: int) -> torch.Tensor:
        if self.db_scale is None:
            return torch.ones(c)
        if len(self.db_scale) != c:
            raise FloodwatchError(f"augmentation db_scale has {len(self.db_scale)} values but the batch has "
                                  f"{c} channels")
        return torch.tensor(self.db_scale)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        if device.type == "cpu":
            return self.generator
        key = str(device)
        if key not in self._device_generators:
            # noise is drawn where the batch lives (no host->device copy); seeded from the host stream
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            self._device_generators[key] = torch.Generator(device=device).manual_seed(seed)
        return self._device_generators[key]


def _flip_thetas(hf: torch.Tensor, vf: torch.Tensor) -> torch.Tensor:
    theta = torch.zeros(len(hf), 2, 3)
    theta[:, 0, 0] = 1.0 - 2.0 * hf.float()
    theta[:, 1, 1] = 1.0 - 2.0 * vf.float()
    return theta


def _resample_labels(mask: torch.Tensor | None, valid: torch.Tensor, grid: torch.Tensor):
    """Nearest-neighbour mask and valid in one grid_sample; outside the chip: IGNORE_INDEX and False."""
    planes = [valid.float()]
    if mask is not None:
        planes.append(mask.float() - IGNORE_INDEX)  # zero padding then comes back as IGNORE_INDEX
    out = F.grid_sample(torch.stack(planes, 1), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    new_mask = (out[:, 1] + IGNORE_INDEX).round().to(mask.dtype) if mask is not None else None
    return new_mask, out[:, 0] > 0.5


def _crop_thetas(roi: torch.Tensor, h: int, w: int) -> torch.Tensor:
    y0, x0, y1, x1 = roi.unbind(1)
    theta = torch.zeros(len(roi), 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = (x1 - x0) / w
    theta[:, 0, 2] = (x0 + x1) / w - 1
    theta[:, 1, 1] = (y1 - y0) / h
    theta[:, 1, 2] = (y0 + y1) / h - 1
    return theta.float()


def check_band_delta(config: AugmentationConfig, derived: str, temporal: str) -> None:
    """`band_delta_problem` as an error naming the field."""
    problem = band_delta_problem(config, derived, temporal)
    if problem:
        raise FloodwatchError(f"augmentation brightness_augmentation.band_delta: {problem}")


def _db_scale(db_scale: Sequence[float] | Preprocessing | None) -> list[float] | None:
    if db_scale is None:
        return None
    if isinstance(db_scale, Preprocessing):
        derived = [0.0] * (db_scale.channels - len(db_scale.bands))
        return [float(s) for s in db_scale.scale[:len(db_scale.bands)]] + derived
    return [float(s) for s in db_scale]


def _check(image: torch.Tensor, mask: torch.Tensor | None, valid: torch.Tensor | None) -> tuple[int, ...]:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or not torch.is_floating_point(image):
        raise FloodwatchError(f"augment: image must be a float (N, C, H, W) tensor, got "
                              f"{getattr(image, 'dtype', type(image).__name__)} {tuple(getattr(image, 'shape', ()))}")
    n, c, h, w = image.shape
    for name, t in (("mask", mask), ("valid", valid)):
        if t is not None and tuple(t.shape) != (n, h, w):
            raise FloodwatchError(f"augment: {name} has shape {tuple(t.shape)}, expected {(n, h, w)}")
    return n, c, h, w
