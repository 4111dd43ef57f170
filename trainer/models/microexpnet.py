"""MicroExpNet students (Cugu, Sener, Akbas, IPTA 2019), as the authors' TensorFlow implementation computes them.

conv1 16@8x8/2 → max-pool 2x2 → conv2 32@4x4/2 → max-pool 2x2 → fc1 → dropout 0.5 → fc2, ReLU after each conv
and fc1, TensorFlow "SAME" padding everywhere. SAME is asymmetric for stride 2 on odd sizes (the extra row/column
goes bottom/right), which PyTorch's ``padding="same"`` does not reproduce, so the pads are computed explicitly.
The flatten before fc1 is in NHWC order so the authors' released weights load unchanged.

Pooling variants of the paper's Table II: ``p12`` (both pools, the default), ``p1`` (first only), ``p2`` (second
only), ``v`` (none). Where a pool is removed, the convolution before it takes stride 4 instead of 2, so the feature
map reaching fc1 has the same size and every variant has exactly the same parameter count: the comparison isolates
the pooling itself.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_store.vocabulary import SIZES, Size, parse_size
from trainer.models.registry import register_model

FC1_UNITS: dict[Size, int] = {"M": 768, "S": 192, "XS": 96, "XXS": 48}  # the paper's Table I
Pooling = Literal["v", "p1", "p2", "p12"]
POOLINGS: tuple[str, ...] = ("v", "p1", "p2", "p12")


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow SAME: (output size, pad before, pad after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding for a fixed input size."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, in_size: int) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0)
        self.out_size, before, after = same_pads(in_size, kernel, stride)
        self.pads = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


class SameMaxPool2d(nn.MaxPool2d):
    """2x2/2 max-pool with TensorFlow SAME padding. For a 2x2 window SAME pads at most one row/column, always at the
    bottom/right, which is exactly ``ceil_mode``; it exports as one MaxPool node (no Pad), which int8 tools handle."""

    def __init__(self, in_size: int) -> None:
        super().__init__(2, 2, ceil_mode=True)
        self.out_size, before, _ = same_pads(in_size, 2, 2)
        assert before == 0  # holds for every size with a 2x2/2 window


class MicroExpNet(nn.Module):
    def __init__(
        self,
        fc_units: int,
        num_classes: int = 8,
        input_size: int = 84,
        pooling: Pooling = "p12",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        pool1, pool2 = pooling in ("p1", "p12"), pooling in ("p2", "p12")
        self.input_size = input_size
        self.conv1 = SameConv2d(1, 16, 8, 2 if pool1 else 4, input_size)
        size = self.conv1.out_size
        self.pool1 = SameMaxPool2d(size) if pool1 else nn.Identity()
        size = self.pool1.out_size if pool1 else size
        self.conv2 = SameConv2d(16, 32, 4, 2 if pool2 else 4, size)
        size = self.conv2.out_size
        self.pool2 = SameMaxPool2d(size) if pool2 else nn.Identity()
        size = self.pool2.out_size if pool2 else size
        self.fc1 = nn.Linear(32 * size * size, fc_units)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(fc_units, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(F.relu(self.conv1(x)))
        h = self.pool2(F.relu(self.conv2(h)))
        h = h.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as TensorFlow flattens
        h = self.dropout(F.relu(self.fc1(h)))
        return self.fc2(h)


def microexpnet(size: str, **kwargs: object) -> MicroExpNet:
    return MicroExpNet(FC1_UNITS[parse_size(size)], **kwargs)  # type: ignore[arg-type]


def _register(size: str) -> None:
    @register_model(f"microexpnet_{size.lower()}")
    def factory(**kwargs: object) -> MicroExpNet:
        return microexpnet(size, **kwargs)


for _size in SIZES:
    _register(_size)


def load_tf_weights(model: MicroExpNet, weights: dict[str, np.ndarray]) -> MicroExpNet:
    """Load the authors' released TensorFlow tensors (``wc1, bc1, wc2, bc2, wfc, bfc, wo, bo``; kernels HWIO,
    dense [in, out]). Our flatten is NHWC like theirs, so ``wfc`` needs only a transpose."""
    conv = {"wc1": model.conv1, "wc2": model.conv2}
    dense = {"wfc": model.fc1, "wo": model.fc2}
    biases = {"wc1": "bc1", "wc2": "bc2", "wfc": "bfc", "wo": "bo"}
    with torch.no_grad():
        for key, layer in {**conv, **dense}.items():
            tensor = torch.from_numpy(np.asarray(weights[key], dtype=np.float32))
            tensor = tensor.permute(3, 2, 0, 1) if key in conv else tensor.T
            if tensor.shape != layer.weight.shape:
                raise ValueError(f"{key}: shape {tuple(tensor.shape)} does not fit {tuple(layer.weight.shape)}")
            layer.weight.copy_(tensor)
            layer.bias.copy_(torch.from_numpy(np.asarray(weights[biases[key]], dtype=np.float32)))
    return model
