"""The one model factory: model_config fields -> nn.Module."""
from __future__ import annotations

from typing import Any

from torch import nn

from .unet import UNet


def build_model(num_layers: int = 18, in_channels: int = 2, num_classes: int = 2, all_projections: bool = False,
                use_batch_norm: bool = True, pretrained: str | None = None, arch: str = "resnet",
                widths: dict[str, int] | None = None, **_ignored: Any) -> nn.Module:
    """U-Net with a ResNet-`num_layers` encoder; `pretrained` is a torchvision ImageNet weights file or URL.

    `widths` ({conv name: out channels}) rebuilds a structurally pruned model (see floodwatch.export.prune).
    """
    if arch != "resnet":
        raise ValueError(f"model_config.arch: only 'resnet' is supported, got '{arch}'")
    model = UNet(num_layers=num_layers, in_channels=in_channels, num_classes=num_classes,
                 all_projections=all_projections, use_batch_norm=use_batch_norm, widths=widths)
    if pretrained:
        from .weights import load_encoder_weights

        load_encoder_weights(model.encoder, pretrained)
    return model
