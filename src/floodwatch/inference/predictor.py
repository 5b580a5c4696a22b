"""The torch back-end and `load_predictor`, which picks a back-end and wraps it (ensemble, TTA, temperature,
refinement). The Predictor interface itself lives in `base.py`.
"""
from __future__ import annotations

import os
import reprlib
import urllib.parse
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..errors import InvalidArgumentError
from ..models.checkpoint import harmonise_mode, load_model
from ..models.download import is_url
from ..models.fold import fold_batch_norm as fold_bn
from ..models.precision import autocast
from ..models.zoo import kind_for_backend, resolve_model
from .base import Predictor, checked_batch, predict_samples, predictor_temporal, water_probability

__all__ = ["Predictor", "TorchPredictor", "backend_for", "cpu_has_native_bf16", "fixed_map_warning", "harmonise_mode",
           "load_predictor", "predict_samples", "trained_on_scene_maps", "water_probability"]


#: what load_predictor's `backend` takes
BACKENDS = ("auto", "torch", "onnx", "triton")


class TorchPredictor:
    """A floodwatch checkpoint run by torch (CPU or CUDA; fp16 autocast on CUDA when `amp`).

    `channels_last` runs the convolutions on NHWC tensors, which oneDNN and cuDNN prefer: on the 2-core CPU
    here a batch of four 512² tiles went 1.54x faster, one tile 1.37x (docs/benchmarks.md, ninth session).
    `fold_batch_norm` folds each BatchNorm into its convolution (`floodwatch.models.fold_batch_norm`): one pass
    over each activation map less, 1.16-1.18x per tile on that CPU. Test-time adaptation needs the BatchNorm layers:
    pass False for it. The probabilities are the same to float rounding either way.
    `bf16_cpu` runs the model under bfloat16 autocast on a CPU that computes in bfloat16 natively (AVX512-BF16
    or AMX; elsewhere it is ignored): 1.8-1.9x per tile on that CPU, 99.99 % of the mask unchanged
    (docs/benchmarks.md, tenth session). Off by default, so that scores stay fp32; `map` turns it on.
    """

    backend = "torch"  # what stats.json records as having run the model (inference.base.predictor_backend)

    def __init__(self, checkpoint: str | Path, device: str | None = None, amp: bool = True,
                 channels_last: bool = True, fold_batch_norm: bool = True, bf16_cpu: bool = False):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.path = Path(checkpoint)  # what outputs record as the model (inference.base.predictor_model_file)
        self.model, self.meta = load_model(checkpoint, self.device)
        self.in_channels: int | None = getattr(self.model, "in_channels", None)
        if fold_batch_norm:
            self.model = fold_bn(self.model)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.preprocessing: Preprocessing = self.meta["preprocessing_obj"]
        self.amp = amp and self.device.type == "cuda"
        self.autocast_dtype = torch.float16 if self.amp else None
        if bf16_cpu and self.device.type == "cpu" and cpu_has_native_bf16():
            self.autocast_dtype = torch.bfloat16

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) pre-processed inputs (see `Predictor`) -> (N, H, W) water probability."""
        batch = checked_batch(batch, self.path, self.preprocessing, predictor_temporal(self), self.in_channels)
        x = torch.from_numpy(batch).to(self.device)
        x = x.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.autocast_dtype):
            logits = self.model(x)
        return water_probability(logits)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 in hardware (x86 AVX512-BF16 or AMX, read from /proc/cpuinfo).
    Elsewhere bfloat16 would be emulated and slower than float32, so callers keep float32."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def load_predictor(model: str | os.PathLike | Sequence[str | os.PathLike] | None = None, backend: str = "auto", *,
                   tta: bool | str | Sequence[str] | None = None,
                   temperature: float | str | os.PathLike | None = None, weights: Sequence[float] | None = None,
                   refine: str | dict | None = None, downsample: int = 1, **kwargs: Any) -> Predictor:
    """The model a reference names, ready to predict: what every command's -m means (docs/models.md).

    For a chip in a numpy array use `predict_array(image, predictor)`; for chip files `infer_chips`; for a scene
    `floodwatch.mapping.map_scene`. `predict` itself takes pre-processed input, not dB (see `Predictor`).

    Args:
        model: a model file (.pt/.pth checkpoint, .onnx), a registered name ('floodwatch-s1', `floodwatch models
            list`), 'https://.../FILE#sha256=HEX' (downloaded once, verified), None for the default model; a list
            of them is an ensemble (`floodwatch.models.zoo.resolve_model` reads each).
        backend: 'auto' (by the file's suffix: torch for a checkpoint, ONNX Runtime for .onnx; a registered
            model's INT8 ONNX file), 'onnx', 'torch' (a registered model's fp32 checkpoint) or 'triton'.
        tta: test-time augmentation: True (4 views), 'd4' (8) or transform names ('hflip', ...).
        temperature: T, or a temperature file (`evaluate --calibrate`'s), rescaling the probabilities.
        weights: an ensemble's weights, one number per model.
        refine: edge-aware filtering of the probabilities: 'guided', 'guided:r=4,eps=0.1', 'clean:min=16', a
            dict of RefinePredictor keywords, or None/'none'.
        downsample: > 1 runs the model(s) on a that-many-times coarser grid, returning probabilities on the
            input's grid (about half the time at 2; costs accuracy, docs/benchmarks.md).
        **kwargs: for the back-end's class (TorchPredictor: device, bf16_cpu, ...; OnnxPredictor).

    Returns:
        A Predictor: the plain back-end's with one model and no option, else wrapped in that order: ensemble,
        downsampling, TTA, temperature, refinement. Its `preprocessing` says the bands and dB ranges it takes.

    Raises:
        InvalidArgumentError: an option of the wrong type or value, named by its parameter.
        ModelError: an unknown registered name, a damaged registered model, a failed or unverified download
            (NoDefaultModelError: `model` None and no default model installed).
        CheckpointError, ExportError: a model file that is missing, truncated or not floodwatch's.
    """
    from .ensemble import ensemble_weights
    from .tta import parse_transforms

    refs = _model_refs(model)
    # the options are checked before any model loads (seconds each) or downloads
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend: unknown back-end {backend!r} ({', '.join(BACKENDS)})")
    if len(refs) == 1 and weights is not None:
        raise InvalidArgumentError("weights: ensemble weights need more than one model")
    if weights is not None:
        ensemble_weights(weights, len(refs))
    transforms = parse_transforms(tta) if tta else ()
    if isinstance(temperature, (str, os.PathLike)):
        from .temperature import load_temperature

        temperature = load_temperature(temperature)
    # Triton names its model itself (None); everything else means what the commands' -m means
    models = refs if backend == "triton" else [resolve_model(r, kind_for_backend(backend)) for r in refs]
    if len(models) == 1:
        predictor = _load_one(models[0], backend, **kwargs)
    else:
        from .ensemble import EnsemblePredictor

        predictor = EnsemblePredictor([_load_one(m, backend, **kwargs) for m in models], weights,
                                      names=[str(m) for m in models])
    if downsample != 1:
        from .downsample import DownsampledPredictor

        predictor = DownsampledPredictor(predictor, downsample)
    if transforms:
        from .tta import TTAPredictor

        predictor = TTAPredictor(predictor, transforms)
    if temperature is not None:
        from .temperature import TemperaturePredictor

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


def _model_refs(model: Any) -> list[Any]:
    """load_predictor's `model` as a list of references: one (None: the default model), or an ensemble's."""
    if model is None or isinstance(model, (str, os.PathLike)):
        return [model]
    refs = list(model) if isinstance(model, (list, tuple)) else None
    if refs is None or not all(isinstance(r, (str, os.PathLike)) for r in refs):
        raise InvalidArgumentError(f"model: expected a model file, a registered model name or a list of them, "
                                   f"got {type(model).__name__} {reprlib.repr(model)}")
    if not refs:
        raise InvalidArgumentError("model: no model given")
    return refs


def backend_for(model: str | os.PathLike | None, backend: str = "auto") -> str:
    """The back-end that runs `model` (a model reference, as load_predictor takes it): 'auto' is ONNX Runtime for
    an .onnx file and torch for anything else, the file being the one the reference names: a registered model's
    or the default's (None) ONNX file where it ships one, a URL's by its path."""
    if backend != "auto":
        return backend
    ref = None if model is None else os.fspath(model)
    # by the name alone, a registered model or the default read as a checkpoint, and callers passing torch's
    # options for it (map_scene's predictor_options) had the ONNX back-end refuse them with a TypeError
    if ref is not None and is_url(ref):
        name = urllib.parse.urlsplit(ref).path
    else:
        name = str(resolve_model(ref, kind_for_backend(backend)))
    return "onnx" if Path(name).suffix.lower() == ".onnx" else "torch"


#: a model's metadata key (a checkpoint's, or the `floodwatch` JSON of an ONNX file) saying how its 8-bit training
#: data were put into dB: 'scene' for per-scene maps. Where absent, a checkpoint's training spec says it (its
#: sources' reader option `harmonise`); absent from both (ONNX files as `export` writes them today, checkpoints
#: of single-source specs, which have no reader options): nothing is known, and nothing is said.
def trained_on_scene_maps(predictor: Any) -> list[str]:
    """The model files behind `predictor` (through its wrappers and ensembles) that were trained on 8-bit data
    put into dB by maps fitted per scene (the ETCI reader's `harmonise="scene"`). infer's and evaluate's 8-bit
    inputs go through the one fixed map instead, which the model did not see in training."""
    members = getattr(predictor, "members", None)
    if members:
        return [f for m in members for f in trained_on_scene_maps(m)]
    if getattr(predictor, "base", None) is not None and getattr(predictor, "path", None) is None:
        return trained_on_scene_maps(predictor.base)
    scene = harmonise_mode(getattr(predictor, "meta", None) or {}) == "scene"
    return [str(getattr(predictor, "path", "the model"))] if scene else []


def fixed_map_warning(predictor: Any, eight_bit: Sequence[str | os.PathLike]) -> str | None:
    """One line for a model trained on per-scene 8-bit maps (`trained_on_scene_maps`) given 8-bit inputs
    (`eight_bit`: their files or data folders), which its caller reads through the fixed map; None when there is
    nothing to say. A warning, not an error: the fixed map is approximate for any scene, and the per-scene fit
    needs the whole scene, which a chip or two is not."""
    models = trained_on_scene_maps(predictor)
    if not models or not eight_bit:
        return None
    more = f" and {len(eight_bit) - 1} more" if len(eight_bit) > 1 else ""
    return (f"{eight_bit[0]}{more}: 8-bit input read through the fixed 8-bit -> dB map, but {', '.join(models)} was "
            "trained on maps fitted per scene (reader option harmonise: scene); its predictions on it may differ "
            "from those on the same chips read as in training")


def _load_one(model: str | Path, backend: str = "auto", **kwargs: Any) -> Predictor:
    backend = backend_for(model, backend)
    if backend == "torch":
        return TorchPredictor(model, **kwargs)
    if backend == "onnx":
        from .onnx import OnnxPredictor

        return OnnxPredictor(model, **kwargs)
    if backend == "triton":
        from ..serving.client import TritonPredictor

        return TritonPredictor(**kwargs)
    raise InvalidArgumentError(f"backend: unknown back-end {backend!r} ({', '.join(BACKENDS)})")
