"""Test-time self-training: fine-tune a model on its own confident predictions over the scene being mapped.

A model trained on other floods meets a new scene's rendering, soil and vegetation for the first time. Where it
is sure (water it calls with p >= `confidence`, land with p <= 1 - `confidence`) its answers are mostly right;
self-training (Paul & Ganju 2021 did it on the ETCI 2021 test scenes) fine-tunes the network on those pixels of
the scene itself, so that what it learns there carries to the pixels it was unsure of. The pixels in between,
and nodata, take no part in the loss. It is a step of inference that a user runs on their own scene: no label
is read.

    predictor = load_predictor("best.pt")            # a torch checkpoint: an ONNX or TensorRT file cannot learn
    with self_trained(predictor, inputs, valid) as info:   # inputs: pre-processed (C, H, W) arrays of the scene
        prob = predictor.predict(batch)               # the scene mapped by the fine-tuned model
    # leaving the block puts the trained weights back, so the next scene starts from the same model

The BatchNorm layers keep their training statistics (the model stays in eval mode while it learns): re-estimating
them on one scene (`inference/adapt.py`) made mostly-water events look average and lost them. A predictor loaded
with its BatchNorm folded into the convolutions (TorchPredictor's default, what `map`, `evaluate` and the measured
runs use) has no BatchNorm layer left: the folded convolutions are what learns.
Cost: one prediction pass over the sampled chips plus `steps` optimiser steps of `batch` crops of `crop` px.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import DataError, InvalidArgumentError
from .base import equal_shape_batches, progress_bar

#: the pseudo-label of a pixel left out of the loss
IGNORE = -1


@dataclass(frozen=True)
class SelfTraining:
    """The settings of one self-training step (declared in docs/benchmarks.md before they were scored)."""
    steps: int = 50
    batch: int = 8
    crop: int = 256
    learning_rate: float = 3e-4
    confidence: float = 0.9
    max_chips: int = 64
    seed: int = 0

    def validate(self) -> "SelfTraining":
        for name in ("steps", "batch", "crop", "max_chips", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgumentError(f"self_train: {name} {value!r} must be an integer")
            if value < (0 if name == "seed" else 1):
                raise InvalidArgumentError(f"self_train: {name} {value} must be at least {0 if name == 'seed' else 1}")
        if not isinstance(self.confidence, (int, float)) or not 0.5 < self.confidence < 1.0:
            raise InvalidArgumentError(f"self_train: confidence {self.confidence} must lie in (0.5, 1)")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise InvalidArgumentError(f"self_train: learning_rate {self.learning_rate} must be above 0")
        return self


def pseudo_labels(prob: np.ndarray, valid: np.ndarray, confidence: float) -> np.ndarray:
    """int64 labels of the shape of `prob`: 1 water where prob >= confidence, 0 land where prob <= 1 - confidence,
    IGNORE elsewhere and wherever `valid` is False."""
    labels = np.full(prob.shape, IGNORE, np.int64)
    labels[prob >= confidence] = 1
    labels[prob <= 1.0 - confidence] = 0
    labels[~valid] = IGNORE
    return labels


def torch_model(predictor: Any) -> nn.Module:
    """The torch network under a predictor's wrappers (TTA, temperature, refinement). A model run on a coarser
    grid (downsampling) is refused: self-training would tune it at a resolution it does not map at."""
    found = predictor
    while not hasattr(found, "model") and getattr(found, "base", None) is not None:
        if type(found).__name__ == "DownsampledPredictor":
            raise InvalidArgumentError("self_train: fine-tunes the model at full resolution; not with `downsample`, "
                                       "which runs it on a coarser grid")
        found = found.base
    model = getattr(found, "model", None)
    if not isinstance(model, nn.Module):
        what = "an ensemble" if getattr(found, "members", None) else type(found).__name__
        raise InvalidArgumentError(f"self_train: needs one torch checkpoint (.pt) to fine-tune, got {what}; "
                                   "an ONNX, TensorRT or Triton model cannot learn")
    return model


def self_train(predictor: Any, inputs: Sequence[np.ndarray], valid: Sequence[np.ndarray],
               options: SelfTraining | None = None, progress: bool = False) -> dict[str, Any]:
    """Fine-tune the torch model inside `predictor` in place on its own confident predictions over `inputs`
    (pre-processed (C, H, W) arrays of one scene; chips smaller than `crop` sit out, unless every chip is, when
    the crops are as small as the smallest) with `valid` their (H, W) masks. The pseudo-labels come from `predictor` itself, wrappers included (TTA then
    gives steadier labels). Returns what it did, for stats.json. See `self_trained` to undo it afterwards.
    `progress` shows a bar over the optimiser steps."""
    options = (options or SelfTraining()).validate()
    if len(inputs) != len(valid):
        raise InvalidArgumentError(f"self_train: {len(inputs)} inputs but {len(valid)} valid masks")
    if not inputs:
        raise DataError("self_train: no chip of the scene holds data to learn from")
    t0 = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    # only the drawn chips are read: `inputs` may be a lazy sequence that builds each one when indexed
    keep = (np.sort(rng.choice(len(inputs), options.max_chips, replace=False)) if len(inputs) > options.max_chips
            else range(len(inputs)))
    inputs, valid = [inputs[i] for i in keep], [valid[i] for i in keep]
    labels: list[np.ndarray] = [None] * len(inputs)
    for batch in equal_shape_batches(list(enumerate(inputs)), options.batch):
        probs = np.asarray(predictor.predict(np.stack([np.asarray(x, np.float32) for _, x in batch])), np.float32)
        for (i, _), prob in zip(batch, probs):
            labels[i] = pseudo_labels(prob, np.asarray(valid[i], bool), options.confidence)
    # crops of one size stack into a batch: chips smaller than `crop` (a scene's edge) are left out of training
    # unless every chip is, and then the crops are as small as the smallest
    whole = [i for i, lab in enumerate(labels) if min(lab.shape) >= options.crop]
    crop = options.crop if whole else min(d for lab in labels for d in lab.shape)
    usable = [i for i in (whole or range(len(labels))) if (labels[i] != IGNORE).any()]
    labelled = sum(int((lab != IGNORE).sum()) for lab in labels)
    water = sum(int((lab == 1).sum()) for lab in labels)
    info = {**asdict(options), "chips": len(inputs), "labelled_pixels": labelled, "pseudo_water_pixels": water,
            "pixels": sum(int(lab.size) for lab in labels)}
    if labelled == 0 or not usable:  # nothing confident: the model stays as it is
        info.update(steps_run=0, seconds=round(time.perf_counter() - t0, 2))
        return info
    model = torch_model(predictor)
    device = next(model.parameters()).device
    model.eval()  # BatchNorm statistics and dropout stay as trained; the weights still take gradients
    optimiser = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    steps_run = 0
    with torch.enable_grad(), progress_bar(progress, options.steps, "self-training") as bar:
        for _ in range(options.steps):
            if bar is not None:
                bar.advance(bar.task_ids[0])
            xs, ys = zip(*(_crop(inputs[i], labels[i], crop, rng) for i in rng.choice(usable, options.batch)))
            x = torch.from_numpy(np.stack(xs)).to(device)
            y = torch.from_numpy(np.stack(ys)).to(device)
            loss = loss_fn(model(x).float(), y)
            if not torch.isfinite(loss):  # every crop fell on ignored pixels: nothing to learn from this batch
                continue
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            steps_run += 1
    model.eval()
    info.update(steps_run=steps_run, seconds=round(time.perf_counter() - t0, 2))
    return info


@contextlib.contextmanager
def self_trained(predictor: Any, inputs: Sequence[np.ndarray], valid: Sequence[np.ndarray],
                 options: SelfTraining | None = None, progress: bool = False) -> Iterator[dict[str, Any]]:
    """`self_train` for the length of a `with` block; the model's trained weights are put back on leaving it."""
    model = torch_model(predictor)
    saved = copy.deepcopy(model.state_dict())
    try:
        yield self_train(predictor, inputs, valid, options, progress)
    finally:
        model.load_state_dict(saved)
        model.eval()


def _crop(x: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random size² crop of one chip (the whole chip when it is smaller), flipped and turned at random."""
    h, w = labels.shape
    r = int(rng.integers(0, h - size + 1)) if h > size else 0
    c = int(rng.integers(0, w - size + 1)) if w > size else 0
    x, labels = x[:, r:r + size, c:c + size], labels[r:r + size, c:c + size]
    k = int(rng.integers(0, 4))
    x, labels = np.rot90(x, k, axes=(1, 2)), np.rot90(labels, k)
    if rng.random() < 0.5:
        x, labels = x[:, :, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(labels)
