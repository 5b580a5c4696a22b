"""Predict at a coarser pixel: average `factor` x `factor` blocks of the input, run the model, and bring the
water probability back to the input's grid by bilinear interpolation.

Sentinel-1 IW GRD is sampled at 10 m but resolves about 20 x 22 m, so halving the grid removes little detail
the radar had, and the model's arithmetic falls by factor² (the cost of a whole scene is the model's).
Averaging dB (the pre-processed input is affine in dB) is a geometric mean of backscatter: like multi-looking,
it also lowers speckle. What it costs in accuracy is measured, not assumed (docs/benchmarks.md).

    predictor = DownsampledPredictor(load_predictor("model.onnx"), factor=2)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FloodwatchError, InvalidArgumentError

#: Fewest coarse pixels across the shorter side of an input (a chip, a map tile). The probability comes back to
#: the input's grid by bilinear interpolation from the coarse one, so an input seen as a handful of coarse pixels
#: gets a handful of values smeared over it (at one pixel, one probability everywhere, whatever it holds), and the
#: model, whose encoder downsamples by 32, sees no spatial context at all. 8 is a floor against that, not a
#: measured optimum: the factor docs/benchmarks.md measured (2 on 512 px tiles) leaves 256.
MIN_COARSE_PX = 8


class DownsampledPredictor:
    """A Predictor running `base` on `factor`-times coarser input; returns probabilities on the input's grid."""

    def __init__(self, base: Any, factor: int = 2):
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise FloodwatchError(f"downsample: the factor must be a whole number >= 1, got {factor!r}")
        self.base, self.factor = base, factor
        self.preprocessing = base.preprocessing

    @property
    def meta(self) -> dict:
        return getattr(self.base, "meta", None) or {}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return self.base.predict(batch)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        h, w = x.shape[-2:]
        side = min(h, w)
        coarse_px = -(-side // self.factor)  # ceil: a partial last block is a pixel too
        if coarse_px < MIN_COARSE_PX:
            most = max(1, (side - 1) // (MIN_COARSE_PX - 1))  # the largest factor leaving MIN_COARSE_PX
            raise InvalidArgumentError(f"downsample: a factor of {self.factor} leaves {coarse_px} px across the "
                                       f"shorter side of a {h}x{w} input; a prediction needs at least "
                                       f"{MIN_COARSE_PX} (a factor of at most {most} here)")
        # ceil_mode: a last partial block is averaged over the pixels it has (no padding counted)
        coarse = F.avg_pool2d(x, self.factor, ceil_mode=True)
        prob = torch.as_tensor(np.asarray(self.base.predict(coarse.numpy()), np.float32))
        if prob.shape != coarse.shape[:1] + coarse.shape[2:]:
            raise FloodwatchError(f"downsample: predictor returned shape {tuple(prob.shape)} for input "
                                  f"{tuple(coarse.shape)}")
        # align_corners=False maps each coarse pixel's centre onto its block's centre; within one coarse pixel
        # of the border values are approximate (interpolation clamps there, and a partial last block of an odd
        # size is placed as if it were whole)
        fine = F.interpolate(prob[:, None], scale_factor=self.factor, mode="bilinear", align_corners=False)
        return fine[:, 0, :h, :w].numpy()

    def __repr__(self) -> str:
        return f"DownsampledPredictor({self.base!r}, factor={self.factor})"

    def settings(self) -> dict[str, Any]:  # base.predictor_settings
        return {"downsample": int(self.factor)}
