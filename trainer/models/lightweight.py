"""More accurate students at MicroExpNet's parameter budgets (issue: "Beyond MicroExpNet").

``dsresnet``: a residual depthwise-separable CNN with batch norm and global average pooling and no fully connected
layer, in the spirit of mini-Xception (Arriaga et al.) and the ~58K-parameter network of Yadagiri Rao et al.
``dsvgg``: a VGG-style network whose 3x3 convolutions are depthwise-separable (Wang, Wu, Hoashi, "Lightweight Deep
CNNs for Facial Expression Recognition"), with global average pooling and one fully connected layer; usable as a
student at M and as a fast teacher.
``dsvgg5``: the same network with a fifth stage at 3x3 after narrower early stages. A separable layer's arithmetic
grows with its spatial area and its parameters with its width, so moving width from the 48x48 and 24x24 stages to a
3x3 one keeps the parameter budget while cutting the multiply-adds: at M, 35 instead of 98 million per face, which
is what lets the M tier run under 1 ms on one core.

Each size tier's widths are chosen so that the network lands on, not over, the MicroExpNet budget of the same tier
(900,920 / 232,184 / 120,728 / 65,000 parameters with 8 classes); a test checks every tier at 7 and 8 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from model_store.vocabulary import SIZES, Size
from trainer.models.blocks import VGGStages, conv_bn_relu, kaiming_init, separable, separable_relu
from trainer.models.registry import register_model


class ResidualSeparableBlock(nn.Module):
    """Two separable convolutions and a stride-2 max-pool, beside a strided 1x1 shortcut (mini-Xception's block)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False), nn.BatchNorm2d(out_ch))
        self.main = nn.Sequential(
            separable(in_ch, out_ch),
            nn.ReLU(inplace=True),
            separable(out_ch, out_ch),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class DSResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...], stem: int, num_classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(1, stem), conv_bn_relu(stem, stem))
        blocks, in_ch = [], stem
        for width in widths:
            blocks.append(ResidualSeparableBlock(in_ch, width))
            in_ch = width
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Conv2d(in_ch, num_classes, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.classifier(self.blocks(self.stem(x)))).flatten(1)


class DSVGG(VGGStages):
    def __init__(self, widths: tuple[int, ...], num_classes: int = 7, dropout: float = 0.3) -> None:
        super().__init__(separable_relu, widths, num_classes, dropout, stem=True)


DSRESNET_WIDTHS: dict[Size, tuple[tuple[int, ...], int]] = {  # (block widths, stem width)
    "XXS": ((16, 32, 64, 136), 8),
    "XS": ((24, 48, 96, 192), 12),
    "S": ((32, 64, 128, 272), 16),
    "M": ((64, 128, 256, 576), 32),
}
DSVGG_WIDTHS: dict[Size, tuple[int, ...]] = {
    "XXS": (16, 32, 64, 192),
    "XS": (28, 56, 112, 240),
    "S": (40, 80, 160, 336),
    "M": (76, 152, 304, 688),
}
DSVGG5_WIDTHS: dict[Size, tuple[int, ...]] = {
    "XXS": (16, 32, 64, 104, 128),
    "XS": (20, 40, 80, 144, 192),
    "S": (24, 56, 112, 208, 256),
    "M": (32, 80, 192, 416, 560),
}


def _register_dsresnet(name: str, widths: tuple[int, ...], stem: int) -> None:
    @register_model(name)
    def dsresnet(num_classes: int = 7) -> DSResNet:
        return DSResNet(widths, stem, num_classes)


def _register_dsvgg(name: str, widths: tuple[int, ...]) -> None:
    @register_model(name)
    def dsvgg(num_classes: int = 7, dropout: float = 0.3) -> DSVGG:
        return DSVGG(widths, num_classes, dropout)


for _size in SIZES:
    _register_dsresnet(f"dsresnet_{_size.lower()}", *DSRESNET_WIDTHS[_size])
    _register_dsvgg(f"dsvgg_{_size.lower()}", DSVGG_WIDTHS[_size])
    _register_dsvgg(f"dsvgg5_{_size.lower()}", DSVGG5_WIDTHS[_size])
