"""Test-time adaptation: re-estimate a model's BatchNorm statistics on the scene being mapped (AdaBN).

A model trained on one scene's rendering normalises every layer with that scene's feature means and
variances. On a scene rendered or backscattering differently (ETCI Bangladesh's flood sits at VV 84 of 255,
North Alabama's at 16), those statistics are off. AdaBN (Li et al., 2016, "Revisiting batch normalization
for practical domain adaptation") replaces them with the target scene's own, measured by one forward pass
over it without labels; the weights stay as trained. It costs one extra forward pass over the chips it adapts
on (about as long again as predicting them).

    predictor = TorchPredictor("best.pt", fold_batch_norm=False)   # keep the BatchNorm layers
    adapt_batchnorm(predictor.model, batches)   # batches: pre-processed (N, C, H, W) arrays of one scene

Measured, and not offered by the commands: in the leave-one-event-out table (docs/benchmarks.md, eighth
session) it took the default recipe's event mean from 0.496 to 0.202 (3 seeds). An event of one or two chips
that are mostly water (India, Sri-Lanka) gets statistics that make its water look average, so the model calls
it land (recall 0.01-0.04); even Bangladesh's 799 tiles lost 2 points. `benchmarks/generalisation.py
--variants adapt` keeps it measurable.

Feed it chips that are mostly data (`mostly_valid`): the no-data fill is a constant, and a scene's wedges of
it would pull every statistic towards the fill's features.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..errors import FloodwatchError

#: the share of valid pixels a chip needs to take part in the statistics
MIN_VALID_SHARE = 0.9


def mostly_valid(valid: np.ndarray) -> bool:
    """Whether a chip's valid mask has enough data for it to take part in the statistics."""
    return bool(np.mean(valid) >= MIN_VALID_SHARE)


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, batches: Iterable[np.ndarray]) -> int:
    """Replace every BatchNorm layer's running mean/variance by their averages over `batches` (pre-processed
    (N, C, H, W) arrays; each batch normalises with its own statistics on the way, as in training). Returns
    the number of chips used and leaves the model in eval mode. Raises FloodwatchError, leaving the model as
    it was, when it has no BatchNorm layer or `batches` holds no chip."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise FloodwatchError("adapt: the model has no BatchNorm layer to adapt (trained with use_batch_norm: false, "
                              "or folded: load it with TorchPredictor(..., fold_batch_norm=False))")
    device = next(model.parameters()).device
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in layers]
    chips = 0
    model.eval()
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the scene's batches, not an exponential one
            m.train()  # only BatchNorm sees training mode; dropout and the rest stay in eval
        for batch in batches:
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
            if len(x):
                model(x)
                chips += len(x)
    finally:
        for m, (momentum, *_stats) in zip(layers, saved):
            m.momentum = momentum
        model.eval()
    if chips == 0:
        for m, (_momentum, mean, var, tracked) in zip(layers, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(tracked)
        raise FloodwatchError("adapt: no chip to adapt on")
    return chips
