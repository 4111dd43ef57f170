"""Building blocks shared by the architectures: conv-BN-ReLU, depthwise-separable convolutions, and the VGG-style
stack of stages (two blocks each, max-pool between) with global average pooling that the teacher and the
depthwise-separable VGG student both are."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Block = Callable[[int, int], nn.Module]


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
    )


def separable(in_ch: int, out_ch: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each without bias (batch norm follows)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
        nn.Conv2d(in_ch, out_ch, 1, bias=False),
        nn.BatchNorm2d(out_ch),
    )


def separable_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(*separable(in_ch, out_ch), nn.ReLU(inplace=True))


def kaiming_init(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


class VGGStages(nn.Module):
    """Stages of two ``block``s of one width each, 2x2 max-pool between stages, global average pooling, dropout
    and one linear layer. With ``stem`` a plain 3x3 convolution first lifts the gray input to the first width
    (separable blocks need more than one input channel)."""

    def __init__(
        self, block: Block, widths: tuple[int, ...], num_classes: int, dropout: float, stem: bool = False
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(1, widths[0])] if stem else []
        in_ch = widths[0] if stem else 1
        for i, width in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [block(in_ch, width), block(width, width)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_ch, num_classes)
        )
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
