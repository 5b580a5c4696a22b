"""MixStyle (`training_config.mixstyle`): mix the feature statistics of chips in a batch while training.

Zhou et al. 2021 ("Domain generalization with MixStyle", ICLR): the per-channel mean and standard deviation of
an early CNN layer's feature maps carry a source's "style" (here: a rendering's levels, contrast and speckle),
the normalised maps its content. Re-styling each chip with a random mix of its own statistics and another
chip's teaches a model that does not hang on the styles of its few training events; the chips of one batch
come from different events. Training only: the hooks do nothing in eval mode, so checkpoints, inference and
exports are the plain network.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InvalidArgumentError

#: encoder stages whose outputs may be re-styled (the paper's choice: the first two or three)
LAYERS = ("layer1", "layer2", "layer3", "layer4")
EPS = 1e-6


def mix_styles(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """x (N,C,H,W) normalised per chip and channel, then scaled and shifted by lam * own statistics +
    (1 - lam) * chip perm[i]'s. lam: (N,) in [0, 1]; perm: (N,) indices. Statistics are in float32 and carry no
    gradient (the paper's choice: the network learns from the content, not from moving the statistics)."""
    xf = x.float()
    mu = xf.mean(dim=(2, 3), keepdim=True).detach()
    # the population variance: a 1x1 map (a deep layer of a small crop) has no unbiased one (NaN)
    sig = (xf.var(dim=(2, 3), keepdim=True, correction=0) + EPS).sqrt().detach()
    lam = lam.to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)
    perm = perm.to(x.device)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    return ((xf - mu) / sig * sig_mix + mu_mix).to(x.dtype)


class MixStyle:
    """Forward hooks on a U-Net's encoder stages. Each training batch is re-styled with `probability`, per
    batch as in the paper; lam ~ Beta(alpha, alpha) per chip; the partner is a random permutation of the
    batch. Its own seeded stream (`manual_seed`, per epoch as the augmenter's) keeps resume == uninterrupted."""

    def __init__(self, probability: float = 0.5, alpha: float = 0.1, layers: Sequence[str] = ("layer1", "layer2"),
                 seed: int = 0):
        if not 0.0 <= probability <= 1.0:
            raise InvalidArgumentError(f"mixstyle.probability: {probability} is not between 0 and 1")
        if not alpha > 0:
            raise InvalidArgumentError(f"mixstyle.alpha: must be > 0, got {alpha}")
        bad = [name for name in layers if name not in LAYERS]
        if bad or not layers:
            raise InvalidArgumentError(f"mixstyle.layers: {bad[0] if bad else 'empty'} is not one of {', '.join(LAYERS)}")
        self.probability, self.alpha, self.layers = float(probability), float(alpha), tuple(layers)
        self.rng = np.random.default_rng(seed)
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        #: batches re-styled so far (each hook call that mixed counts once), for tests and logs
        self.mixed = 0
        self._paused = False

    def manual_seed(self, seed: int) -> "MixStyle":
        self.rng = np.random.default_rng(seed)
        return self

    def attach(self, model: nn.Module) -> "MixStyle":
        encoder = getattr(model, "encoder", None)
        if encoder is None:
            raise InvalidArgumentError("mixstyle: the model has no encoder to hook")
        for name in self.layers:
            self.handles.append(getattr(encoder, name).register_forward_hook(self._hook))
        return self

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No re-styling (nor draws) inside: forward passes in train mode that are not training steps, such as
        the re-estimation of BatchNorm's statistics, which must describe the features inference sees."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training or self._paused:
            return None
        n = output.shape[0]
        if self.rng.random() >= self.probability or n < 2:  # drawn first: the stream does not hang on batch sizes
            return None
        lam = torch.from_numpy(self.rng.beta(self.alpha, self.alpha, size=n))
        perm = torch.from_numpy(self.rng.permutation(n))
        self.mixed += 1
        return mix_styles(output, lam, perm)
