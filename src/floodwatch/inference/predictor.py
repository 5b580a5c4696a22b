"""The Predictor interface: whatever runs underneath, `predict(batch) -> water probability`.

Evaluation, chip inference, scene mapping and the serving tests all talk to this, so the torch, ONNX
Runtime and Triton back-ends are interchangeable.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..errors import FloodwatchError
from ..models.checkpoint import load_model


@runtime_checkable
class Predictor(Protocol):
    preprocessing: Preprocessing

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """batch: (N, C, H, W) float32, already pre-processed -> (N, H, W) float32 water probability."""
        ...


def water_probability(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, K, H, W) logits -> (N, H, W) softmax probability of class 1 (water/flood).

    With two classes that is sigmoid(l1 - l0): one exp per pixel instead of a K-way softmax (0.7 against
    4.9 ms of CPU per four 512² tiles, measured here; small next to the model, but free)."""
    t = torch.as_tensor(logits).float()
    if t.shape[1] == 2:
        return torch.sigmoid(t[:, 1] - t[:, 0]).cpu().numpy()
    return torch.softmax(t, dim=1)[:, 1].cpu().numpy()


class TorchPredictor:
    """A floodwatch checkpoint run by torch (CPU or CUDA; fp16 autocast on CUDA when `amp`)."""

    def __init__(self, checkpoint: str | Path, device: str | None = None, amp: bool = True):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.meta = load_model(checkpoint, self.device)
        self.preprocessing: Preprocessing = self.meta["preprocessing_obj"]
        self.amp = amp and self.device.type == "cuda"

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.autocast(self.device.type, enabled=self.amp):
            logits = self.model(x)
        return water_probability(logits)


def load_predictor(model: str | Path | Sequence[str | Path], backend: str = "auto", *,
                   tta: bool | str | Sequence[str] | None = None, temperature: float | None = None,
                   weights: Sequence[float] | None = None, refine: str | dict | None = None,
                   **kwargs: Any) -> Predictor:
    """'torch' for .pt/.pth checkpoints, 'onnx' for .onnx files; 'auto' picks by the file's suffix.

    Several models (a list) make an EnsemblePredictor (`weights` optional); `tta` (True, 'd4' or transform
    names) wraps it in a TTAPredictor; `temperature` then rescales the averaged probabilities; `refine`
    ('guided', 'guided:r=4,eps=0.1', 'clean:min=16', a dict of RefinePredictor keywords, or None/'none')
    last filters them edge-aware. With one model and no option this is the plain back-end predictor.
    """
    # a single path (or None: Triton names its model itself) vs a list of models for an ensemble
    models = [model] if model is None or isinstance(model, (str, os.PathLike)) else list(model)
    if not models:
        raise FloodwatchError("--model: no model given")
    if len(models) == 1:
        if weights is not None:
            raise FloodwatchError("--weights: ensemble weights need more than one model")
        predictor = _load_one(models[0], backend, **kwargs)
    else:
        from .ensemble import EnsemblePredictor

        predictor = EnsemblePredictor([_load_one(m, backend, **kwargs) for m in models], weights,
                                      names=[str(m) for m in models])
    if tta:
        from .tta import TTAPredictor

        predictor = TTAPredictor(predictor, tta)
    if temperature is not None:
        from ..evaluation.calibration import TemperaturePredictor

        predictor = TemperaturePredictor(predictor, temperature)
    if refine is not None:
        # Refinement goes last, after temperature: a temperature is fitted (`evaluate --calibrate`, which
        # fits on the unrefined predictor) on unrefined probabilities, so it must act on those, and the
        # filter then takes local, nearly convex averages of calibrated probabilities, which keeps them
        # about as calibrated. The other order would apply T to smoothed probabilities it was never fitted
        # on. The price: with refinement the 0.5 mask depends slightly on T (averaging after a non-linear
        # map), where temperature alone never changes the mask.
        from .refine import refine_predictor

        predictor = refine_predictor(predictor, refine)
    return predictor


def _load_one(model: str | Path, backend: str = "auto", **kwargs: Any) -> Predictor:
    suffix = Path(str(model)).suffix.lower()
    if backend == "auto":
        backend = "onnx" if suffix == ".onnx" else "torch"
    if backend == "torch":
        return TorchPredictor(model, **kwargs)
    if backend == "onnx":
        from .onnx import OnnxPredictor

        return OnnxPredictor(model, **kwargs)
    if backend == "triton":
        from ..serving.client import TritonPredictor

        return TritonPredictor(**kwargs)
    raise FloodwatchError(f"--backend: unknown back-end '{backend}' (torch, onnx, triton)")
