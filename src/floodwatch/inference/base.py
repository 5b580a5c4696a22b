"""The Predictor interface and what every caller of one shares: the model's temporal layout, batching of
equal-shaped inputs and an optional progress bar.

Evaluation, calibration, chip inference, pseudo-labelling and the serving tests all talk to a Predictor, so
the torch, ONNX Runtime and Triton back-ends (and the wrappers around them) are interchangeable.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np
import torch

from ..data.preprocess import Preprocessing

T = TypeVar("T")


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


def predictor_settings(predictor: Any) -> dict[str, Any]:
    """What `predictor` applies besides its model(s), gathered from the `settings()` of the wrappers that
    load_predictor puts round them: {'tta': transform names or None, 'downsample': factor, 'temperature': T or
    None, 'refine': its description or None, 'weights': an ensemble's weights, normalised to sum 1, or None}.
    Every output records it, so that a map, a chip folder and an evaluation say alike what made them."""
    out: dict[str, Any] = {"tta": None, "downsample": 1, "temperature": None, "refine": None, "weights": None}
    for p in _wrapped(predictor):
        if callable(getattr(p, "settings", None)):
            out.update(p.settings())
    return out


def model_file_label(model: str | Path | Sequence[str | Path] | None) -> str | list[str] | None:
    """How an output records a model file: absolute (usable from elsewhere, as the default model's path is); a
    URL as given; None for none; an ensemble's files as a list (as infer's and evaluate's `model` are)."""
    if model is None:
        return None
    if isinstance(model, (list, tuple)):
        return [model_file_label(m) for m in model] if len(model) > 1 else model_file_label(model[0])
    return str(model) if isinstance(model, str) and "://" in model else str(Path(model).absolute())


def predictor_model_file(predictor: Any) -> str | list[str] | None:
    """The model file a predictor runs (a checkpoint or an ONNX file), through its wrappers, as
    model_file_label records it: an ensemble's as a list; None for a server's model."""
    for p in _wrapped(predictor):
        if getattr(p, "path", None) is not None:
            return model_file_label(p.path)
        members = getattr(p, "members", None)
        if members:
            files = [predictor_model_file(m) for m in members]
            return files if all(isinstance(f, str) for f in files) else None
    return None


def _wrapped(predictor: Any) -> Iterator[Any]:
    """`predictor`, then the predictors it wraps (TTA, refinement, ... around a model's), outermost first."""
    while predictor is not None:
        yield predictor
        predictor = getattr(predictor, "base", None)


def predictor_temporal(predictor: Any) -> str:
    """'bitemporal' when the model was trained on before+after stacks (checkpoint model_config), else 'single'."""
    meta = getattr(predictor, "meta", None) or {}
    temporal = (meta.get("model_config") or {}).get("temporal") or getattr(predictor, "temporal", None)
    return "bitemporal" if temporal == "bitemporal" else "single"


def equal_shape_batches(items: Sequence[tuple[T, np.ndarray]], size: int) -> Iterator[list[tuple[T, np.ndarray]]]:
    """Consecutive runs of (key, input) pairs with equal-shaped inputs, at most `size` long (chips of mixed
    sizes cannot stack into one batch)."""
    batch: list[tuple[T, np.ndarray]] = []
    for item in items:
        if batch and (len(batch) == size or batch[0][1].shape != item[1].shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def progress_bar(enabled: bool, total: int, description: str):
    """A rich progress bar context (yields the Progress, one task) or, when disabled, a context yielding None."""
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        transient=True)
    progress.add_task(description, total=total)
    return progress
