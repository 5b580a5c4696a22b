"""The one model factory: model_config fields -> nn.Module."""
from __future__ import annotations

import inspect
from typing import Any, Mapping

from torch import nn

from ..errors import InvalidArgumentError
from .unet import UNet

#: Keys a checkpoint's model_config records beside build_model's parameters: how inputs are stacked
#: ('temporal', read by inference), not how the network is built.
MODEL_METADATA = ("temporal",)


def build_model(num_layers: int = 18, in_channels: int = 2, num_classes: int = 2, all_projections: bool = False,
                use_batch_norm: bool = True, pretrained: str | None = None, arch: str = "resnet",
                widths: dict[str, int] | None = None) -> nn.Module:
    """U-Net with a ResNet-`num_layers` encoder; `pretrained` is a torchvision ImageNet weights file or URL.

    `widths` ({conv name: out channels}) rebuilds a structurally pruned model (see floodwatch.export.prune).
    """
    if arch != "resnet":
        raise InvalidArgumentError(f"arch: only 'resnet' is supported, got '{arch}'")
    model = UNet(num_layers=num_layers, in_channels=in_channels, num_classes=num_classes,
                 all_projections=all_projections, use_batch_norm=use_batch_norm, widths=widths)
    if pretrained:
        from .weights import load_encoder_weights

        load_encoder_weights(model.encoder, pretrained)
    return model


def build_parameters() -> tuple[str, ...]:
    """The names build_model takes."""
    return tuple(inspect.signature(build_model).parameters)


def model_from_config(model_config: Mapping[str, Any]) -> nn.Module:
    """build_model from a checkpoint's model_config: its build parameters, less the MODEL_METADATA keys and
    'pretrained' (the checkpoint's weights replace the ImageNet ones). Any other key is an
    InvalidArgumentError naming it: a misspelt parameter must not build a default-sized model."""
    params = build_parameters()
    unknown = sorted(k for k in model_config if k not in params and k not in MODEL_METADATA)
    if unknown:
        raise InvalidArgumentError(f"{unknown[0]}: not a model_config parameter (known: "
                                   f"{', '.join(params + MODEL_METADATA)})")
    return build_model(**{k: v for k, v in model_config.items() if k in params and k != "pretrained"})
