"""Fold BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm layer is an affine map per channel, so conv -> BN equals one convolution with
rescaled weights and a bias. Folding saves a full pass over every activation map, which is what a 512²
tile costs on a CPU (docs/benchmarks.md, tenth session). torch's `fuse_conv_bn_eval` does the arithmetic;
this module only knows which pairs of this package's models feed one another.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import FloodwatchError
from .resnet import BasicBlock, Bottleneck, ResNetEncoder

#: (conv, norm) attribute pairs where the norm takes the conv's output directly
_PAIRS = {BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
          Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
          ResNetEncoder: (("conv1", "bn1"),)}


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm of a floodwatch model into its convolution, in place; returns the model.

    The model must be in eval mode: folding fixes the running statistics, so it is for inference only
    (test-time adaptation, which re-estimates them, needs the unfolded model)."""
    if model.training:
        raise FloodwatchError("fold_batch_norm: the model is in training mode; call model.eval() first")
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):  # a Sequential feeds each layer's output to the next
                _fold(module, a, b)
        for a, b in _PAIRS.get(type(module), ()):
            _fold(module, a, b)
    return model


def _fold(parent: nn.Module, conv_name: str, norm_name: str) -> None:
    conv, norm = getattr(parent, conv_name), getattr(parent, norm_name)
    if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, norm))
        setattr(parent, norm_name, nn.Identity())
