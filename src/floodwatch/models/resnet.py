"""ResNet encoders in plain torch, with torchvision's state-dict keys (conv1, bn1, layer1.0.conv1, ...).

So an ImageNet checkpoint saved from torchvision (`resnet18-f37072fd.pth` etc.) loads as is. Depth 10 is
TAO's ResNet-10 (one basic block per stage). `all_projections` is TAO's option: every block's shortcut
is a 1x1 projection, not only the down-sampling ones.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InvalidArgumentError

STAGES = {10: ("basic", [1, 1, 1, 1]), 18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]),
          50: ("bottleneck", [3, 4, 6, 3])}


def _norm(ch: int, use_bn: bool) -> nn.Module:
    return nn.BatchNorm2d(ch) if use_bn else nn.Identity()


def _shortcut(cin: int, cout: int, stride: int, project: bool, use_bn: bool) -> nn.Module | None:
    """1x1 projection where the shape changes (or always, with all_projections); None = identity."""
    if project or stride != 1 or cin != cout:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not use_bn), _norm(cout, use_bn))
    return None


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, project: bool, use_bn: bool,
                 inner: dict[str, int] | None = None):
        super().__init__()
        cout = width * self.expansion
        mid = (inner or {}).get("conv1", width)  # a pruned block keeps fewer inner channels
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=not use_bn)
        self.bn1 = _norm(mid, use_bn)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=not use_bn)
        self.bn2 = _norm(cout, use_bn)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride, project, use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, project: bool, use_bn: bool,
                 inner: dict[str, int] | None = None):
        super().__init__()
        cout = width * self.expansion
        w1, w2 = (inner or {}).get("conv1", width), (inner or {}).get("conv2", width)  # pruned inner widths
        self.conv1 = nn.Conv2d(cin, w1, 1, bias=not use_bn)
        self.bn1 = _norm(w1, use_bn)
        self.conv2 = nn.Conv2d(w1, w2, 3, stride, 1, bias=not use_bn)  # stride on 3x3, as torchvision v1.5
        self.bn2 = _norm(w2, use_bn)
        self.conv3 = nn.Conv2d(w2, cout, 1, bias=not use_bn)
        self.bn3 = _norm(cout, use_bn)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride, project, use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


class ResNetEncoder(nn.Module):
    """Returns the five feature maps at strides 2, 4, 8, 16, 32.

    `widths` ({"layer1.0.conv1": 32, ...}) narrows the inner convs of blocks (what structured pruning
    removes); block outputs stay full width because residual adds and U-Net skips join them.
    """

    def __init__(self, depth: int = 18, in_channels: int = 3, all_projections: bool = False,
                 use_batch_norm: bool = True, widths: dict[str, int] | None = None):
        super().__init__()
        if depth not in STAGES:
            raise InvalidArgumentError(f"num_layers must be one of {sorted(STAGES)}, got {depth}")
        kind, blocks = STAGES[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.in_channels = depth, in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=not use_batch_norm)
        self.bn1 = _norm(64, use_batch_norm)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
            layers = []
            for j in range(n):
                stride = 2 if (i > 1 and j == 0) else 1
                prefix = f"layer{i}.{j}."
                inner = {k[len(prefix):]: int(v) for k, v in (widths or {}).items() if k.startswith(prefix)}
                layers.append(block(cin, width, stride, all_projections, use_batch_norm, inner))
                cin = width * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.out_channels = [64] + [w * block.expansion for w in (64, 128, 256, 512)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f1, f2, f3, f4, f5]
