"""Test-time adaptation: re-estimate a model's BatchNorm statistics on the scene being mapped (AdaBN).

A model trained on one scene's rendering normalises every layer with that scene's feature means and
variances. On a scene rendered or backscattering differently (ETCI Bangladesh's flood sits at VV 84 of 255,
North Alabama's at 16), those statistics are off. AdaBN (Li et al., 2016, "Revisiting batch normalization
for practical domain adaptation") replaces them with the target scene's own, measured by one forward pass
over it without labels; the weights stay as trained. It is a step of inference on the scene itself: it costs
one extra forward pass over the chips it adapts on (about as long again as predicting them).

    from floodwatch.inference.adapt import adapt_batchnorm
    predictor = TorchPredictor("best.pt")
    adapt_batchnorm(predictor.model, batches)   # batches: pre-processed (N, C, H, W) arrays of the scene

Measured, and not offered by the commands: in the leave-one-event-out table (docs/benchmarks.md, eighth
session) it took the default recipe's event mean from 0.496 to 0.202 (3 seeds). An event of one or two chips
that are mostly water (India, Sri-Lanka) gets statistics that make its water look average, so the model calls
it land (recall 0.01); even Bangladesh's 799 tiles lost 2 points. `evaluate(adapt=True)` and
`benchmarks/generalisation.py --variants adapt` keep it measurable.

Only chips that are mostly data are used: the no-data fill is a constant, and a scene's wedges of it would
pull every statistic towards the fill's features.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..errors import FloodwatchError

#: the share of valid pixels a chip needs to take part in the statistics
MIN_VALID_SHARE = 0.9


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def mostly_valid(valid: np.ndarray) -> bool:
    """Whether a chip's valid mask has enough data for it to take part in the statistics."""
    return bool(np.mean(valid) >= MIN_VALID_SHARE)


class SceneAdapter:
    """BatchNorm statistics of one torch model, kept per scene (any hashable key, e.g. an event name).

    `observe(key, batch)` adds a batch to that scene's running averages (the first batch of a new key starts
    from nothing, not from the training statistics); `use(key)` puts that scene's statistics into the model
    (the training ones for a scene never observed). Observing leaves the model in eval mode."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = batchnorm_layers(model)
        if not self.layers:
            raise FloodwatchError("adapt: the model has no BatchNorm layer to adapt (trained with "
                                  "use_batch_norm: false)")
        self.device = next(model.parameters()).device
        self.training_stats = self._snapshot()
        self.scenes: dict = {}
        self.chips: dict = {}

    def _snapshot(self) -> list[tuple[torch.Tensor, ...]]:
        return [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in self.layers]

    def _load(self, stats: list[tuple[torch.Tensor, ...]]) -> None:
        for m, (mean, var, tracked) in zip(self.layers, stats):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(tracked)

    @torch.no_grad()
    def observe(self, key, batch: np.ndarray) -> None:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if not len(x):
            return
        if key in self.scenes:
            self._load(self.scenes[key])
        else:
            for m in self.layers:
                m.reset_running_stats()
        momenta = [m.momentum for m in self.layers]
        self.model.eval()
        try:
            for m in self.layers:
                m.momentum = None  # a cumulative average over the scene's batches, not an exponential one
                m.train()  # only BatchNorm sees training mode; dropout and the rest stay in eval
            self.model(x)
        finally:
            for m, momentum in zip(self.layers, momenta):
                m.momentum = momentum
            self.model.eval()
        self.scenes[key] = self._snapshot()
        self.chips[key] = self.chips.get(key, 0) + len(x)

    def use(self, key) -> None:
        self._load(self.scenes.get(key, self.training_stats))

    def restore(self) -> None:
        """Put the training statistics back."""
        self._load(self.training_stats)


def adapt_batchnorm(model: nn.Module, batches: Iterable[np.ndarray]) -> int:
    """Replace every BatchNorm layer's running mean/variance by their averages over `batches` (pre-processed
    (N, C, H, W) arrays); returns the number of chips used. Raises FloodwatchError, leaving the model as it
    was, when `model` has no BatchNorm layer or `batches` holds no chip."""
    adapter = SceneAdapter(model)
    for batch in batches:
        adapter.observe("scene", batch)
    if not adapter.chips:
        raise FloodwatchError("adapt: no chip to adapt on")
    adapter.use("scene")
    return adapter.chips["scene"]


def torch_models(predictor) -> list[nn.Module]:
    """The torch modules behind a predictor (through TTA, temperature, refinement and ensemble wrappers).
    Raises FloodwatchError for other back-ends: ONNX and TensorRT models have BatchNorm folded away."""
    model = getattr(predictor, "model", None)
    if isinstance(model, nn.Module):
        return [model]
    if hasattr(predictor, "members"):
        return [m for member in predictor.members for m in torch_models(member)]
    if hasattr(predictor, "base"):
        return torch_models(predictor.base)
    raise FloodwatchError(f"adapt: needs the torch back-end (a .pt checkpoint); {type(predictor).__name__} has its "
                          f"BatchNorm folded into its convolutions")
