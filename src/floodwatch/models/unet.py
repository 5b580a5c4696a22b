"""U-Net decoder over a ResNet encoder (the layout of TAO's UNet and segmentation_models_pytorch's Unet)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FloodwatchError
from .resnet import ResNetEncoder

DECODER_CHANNELS = (256, 128, 64, 32, 16)


def _conv_bn_relu(cin: int, cout: int, use_bn: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=not use_bn),
                         nn.BatchNorm2d(cout) if use_bn else nn.Identity(), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, use_bn: bool, mid: int | None = None):
        super().__init__()
        mid = mid or cout  # a pruned block's first conv may be narrower than its output
        self.conv1 = _conv_bn_relu(cin + cskip, mid, use_bn)
        self.conv2 = _conv_bn_relu(mid, cout, use_bn)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: torch.Size) -> torch.Tensor:
        # Upsample to the skip's exact size so inputs that are not multiples of 32 still line up.
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNet(nn.Module):
    """U-Net with a ResNet encoder. forward(x: N,C,H,W) -> logits N,num_classes,H,W.

    `widths` maps conv names to output channels for pruned models: "encoder.layer1.0.conv1" (inner block
    convs) and "decoder.0.conv1" / "decoder.0.conv2" (decoder convs). Unknown names are an error, so a
    checkpoint's model_config cannot silently build a different network.
    """

    def __init__(self, num_layers: int = 18, in_channels: int = 2, num_classes: int = 2,
                 all_projections: bool = False, use_batch_norm: bool = True,
                 decoder_channels: tuple[int, ...] = DECODER_CHANNELS, widths: dict[str, int] | None = None):
        super().__init__()
        widths = {str(k): int(v) for k, v in (widths or {}).items()}
        for name, w in widths.items():
            if w < 1:
                raise FloodwatchError(f"model_config.widths.{name}: must be >= 1, got {w}")
        enc_widths = {k[len("encoder."):]: v for k, v in widths.items() if k.startswith("encoder.")}
        self.encoder = ResNetEncoder(num_layers, in_channels, all_projections, use_batch_norm, enc_widths)
        enc = self.encoder.out_channels  # strides 2, 4, 8, 16, 32
        skips = [enc[3], enc[2], enc[1], enc[0], 0]
        blocks, cin = [], enc[4]
        for i, (cskip, cout) in enumerate(zip(skips, decoder_channels)):
            cout = widths.get(f"decoder.{i}.conv2", cout)
            blocks.append(DecoderBlock(cin, cskip, cout, use_batch_norm, widths.get(f"decoder.{i}.conv1")))
            cin = cout
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, num_classes, 3, padding=1)
        self.num_classes, self.in_channels = num_classes, in_channels
        unknown = sorted(set(widths) - set(self.prunable_convs()))
        if unknown:
            raise FloodwatchError(f"model_config.widths: {', '.join(unknown[:3])} is not a prunable conv of this model")

    def prunable_convs(self) -> list[str]:
        """Names whose width `widths` may set: outputs that feed only one conv (no residual add, no skip)."""
        inner = ("conv1",) if self.encoder.layer1[0].__class__.__name__ == "BasicBlock" else ("conv1", "conv2")
        names = [f"encoder.layer{i}.{j}.{c}" for i in range(1, 5)
                 for j in range(len(getattr(self.encoder, f"layer{i}"))) for c in inner]
        return names + [f"decoder.{i}.{c}" for i in range(len(self.decoder)) for c in ("conv1", "conv2")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4, f5 = self.encoder(x)
        y = f5
        for block, skip in zip(self.decoder, (f4, f3, f2, f1, None)):
            y = block(y, skip, skip.shape[-2:] if skip is not None else x.shape[-2:])
        return self.head(y)
