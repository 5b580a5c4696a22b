"""The Predictor interface and what every caller of one shares: the model's temporal layout, batching of
equal-shaped inputs and an optional progress bar.

Evaluation, calibration, chip inference, pseudo-labelling and the serving tests all talk to a Predictor, so
the torch, ONNX Runtime and Triton back-ends (and the wrappers around them) are interchangeable.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np
import torch

from ..data.preprocess import Preprocessing, network_input
from ..data.sample import Sample
from ..errors import CheckpointError, DataError, InvalidArgumentError

T = TypeVar("T")


@runtime_checkable
class Predictor(Protocol):
    """A model that turns network inputs into water probabilities: the torch and ONNX Runtime back-ends, the
    Triton client, and the wrappers `load_predictor` puts round them (ensemble, TTA, temperature, ...).

    `predict` takes pre-processed inputs, not dB: a Sample's is
    `floodwatch.data.preprocess.network_input(sample, predictor.preprocessing)` (the model's bands by name,
    clipped, normalised, no data filled), or let `predict_samples(predictor, samples)` build and batch them.
    dB fed in directly reads as values far below the model's normalised range and gives confident nonsense;
    the torch and ONNX back-ends refuse a batch that mostly lies below what its pre-processing can give
    (`checked_batch`).
    """

    preprocessing: Preprocessing

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """batch: (N, C, H, W) float32, already pre-processed -> (N, H, W) float32 water probability."""
        ...


def predict_samples(predictor: Predictor, samples: Iterable[Sample], batch: int = 8) -> list[np.ndarray]:
    """Water probability (H, W) float32 of each Sample, NaN where it has no data (what infer writes as
    <stem>_prob.tif): each one's network input (`network_input`; a bi-temporal model's before and after)
    predicted in batches of up to `batch` equal-sized chips, built batch by batch."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"batch: {batch!r} must be a whole number >= 1")
    pp, temporal = predictor.preprocessing, predictor_temporal(predictor)
    out: list[np.ndarray] = []
    for group in equal_shape_batches(((s, network_input(s, pp, temporal)) for s in samples), batch):
        prob = np.asarray(predictor.predict(np.stack([x for _, x in group])))
        expected = (len(group),) + group[0][0].valid.shape
        if prob.shape != expected:
            raise CheckpointError(f"predictor returned shape {prob.shape}, expected {expected}")
        out += [np.where(s.valid, p, np.nan).astype(np.float32) for (s, _), p in zip(group, prob)]
    return out


def checked_batch(batch: Any, where: Any, preprocessing: Preprocessing, temporal: str = "single",
                  channels: int | None = None) -> np.ndarray:
    """`batch` as a float32 (N, C, H, W) array for a back-end's model (`where`: its file, named in errors), or
    a DataError: another rank or channel count (default `channels`: what the pre-processing gives), or a batch
    whose values mostly lie below the least its pre-processing can give (`input_floor`), as dB given for
    pre-processed input do. Pre-processed inputs never lie below it, so none is refused; the check reads a
    sparse grid of pixels, so it costs next to nothing beside the model."""
    x = np.ascontiguousarray(batch, dtype=np.float32)
    floor, names = input_floor(preprocessing, temporal)
    channels = channels or len(floor)
    if x.ndim != 4 or x.shape[1] != channels:
        raise DataError(f"{where}: takes a batch of pre-processed chips of shape (N, {channels}, H, W), "
                        f"got shape {x.shape}")
    seen = x[:, :, ::8, ::8]
    if len(floor) == channels and seen.size:
        slack = 1e-3 * (1 + np.abs(floor))  # float rounding of the pre-processing's arithmetic
        share = (~(seen >= (floor - slack)[:, None, None])).mean(axis=(0, 2, 3))  # NaN counts as below
        c = int(share.argmax())
        if share[c] > 0.5:
            raise DataError(f"{where}: takes pre-processed inputs, but {share[c]:.0%} of channel {c + 1} "
                            f"({names[c]}) lies below {floor[c]:.3g}, the least its pre-processing gives (dB given "
                            "directly?); make them with floodwatch.data.preprocess.network_input(sample, "
                            "predictor.preprocessing)")
    return x


def input_floor(preprocessing: Preprocessing, temporal: str = "single") -> tuple[np.ndarray, list[str]]:
    """Per network input channel, the least value `preprocessing.apply` gives (clip, derived channel,
    normalisation, fill), and the channel's name; a bi-temporal model's before channels, then its after."""
    pp = preprocessing
    low = [c[0] for c in pp.clip]
    high = [c[1] for c in pp.clip]
    names = list(pp.bands)
    if pp.derived != "none":  # VV - VH in dB, or its linear ratio
        ends = (low[0] - high[1], high[0] - low[1])
        ends = tuple(10 ** (e / 10) for e in ends) if pp.derived == "ratio" else ends
        low, high, names = low + [ends[0]], high + [ends[1]], names + [pp.derived]
    offset, scale = np.asarray(pp.offset, np.float32), np.asarray(pp.scale, np.float32)
    ends = np.stack([(np.asarray(low, np.float32) - offset) * scale, (np.asarray(high, np.float32) - offset) * scale])
    floor = np.minimum(ends.min(axis=0), np.float32(pp.fill))
    if temporal == "bitemporal":
        return np.tile(floor, 2), [f"before {n}" for n in names] + [f"after {n}" for n in names]
    return floor, names


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
    model_file_label records it: an ensemble's as a list; a server's model as its `served` label (Triton's
    'triton URL MODEL version V')."""
    for p in _wrapped(predictor):
        if getattr(p, "path", None) is not None:
            return model_file_label(p.path)
        if isinstance(getattr(p, "served", None), str):
            return p.served
        members = getattr(p, "members", None)
        if members:
            files = [predictor_model_file(m) for m in members]
            return files if all(isinstance(f, str) for f in files) else None
    return None


def predictor_backend(predictor: Any) -> str:
    """What runs `predictor`'s model, through its wrappers (TTA, refinement, ...: `predictor_settings` records
    those): 'torch', 'onnx' or 'triton'; an ensemble's members' joined by '+' ('torch+onnx'). A predictor of
    one's own names itself: its `backend` attribute, else its class name."""
    p = predictor
    for p in _wrapped(predictor):
        name = getattr(p, "backend", None)
        if isinstance(name, str):  # the back-ends' classes say theirs ('torch', 'onnx', 'triton')
            return name
        members = getattr(p, "members", None)
        if members:
            return "+".join(dict.fromkeys(predictor_backend(m) for m in members))
    return type(p).__name__


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


def equal_shape_batches(items: Iterable[tuple[T, np.ndarray]], size: int) -> Iterator[list[tuple[T, np.ndarray]]]:
    """Consecutive runs of (key, input) pairs with equal-shaped inputs, at most `size` long (chips of mixed
    sizes cannot stack into one batch); `items` is read as the runs are taken."""
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
