"""Teacher networks for knowledge distillation.

``inception_v3`` is the paper's teacher (torchvision; too slow to train on a small CPU box, and ImageNet weights
must be supplied as a local file since none can be downloaded here). ``fer_vgg`` is a VGG-style network with batch
norm sized for a 2-core CPU at 48x48: four stages of two 3x3 convolutions, global average pooling, ~1.2M parameters.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trainer.models.blocks import VGGStages, conv_bn_relu
from trainer.models.registry import register_model


class FerVGG(VGGStages):
    def __init__(
        self, num_classes: int = 7, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3
    ) -> None:
        super().__init__(conv_bn_relu, widths, num_classes, dropout)


@register_model("fer_vgg")
def fer_vgg(num_classes: int = 7, **kwargs: object) -> FerVGG:
    return FerVGG(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]


@register_model("fer_vgg_wide")
def fer_vgg_wide(num_classes: int = 7, **kwargs: object) -> FerVGG:
    return FerVGG(num_classes=num_classes, widths=(48, 96, 192, 384), **kwargs)  # type: ignore[arg-type]


@register_model("inception_v3")
def inception_v3(num_classes: int = 7, weights_file: str | None = None, **_: object) -> nn.Module:
    """torchvision's Inception-v3 on 1-channel input (expects 299x299; 75x75 is its minimum)."""
    try:
        from torchvision.models import inception_v3 as tv_inception_v3
    except ImportError as exc:  # torchvision is not part of the training extra: it needs a large torch build
        raise RuntimeError(
            "the inception_v3 teacher needs torchvision: pip install torch==2.14.1 torchvision==0.29.1"
        ) from exc
    model = tv_inception_v3(weights=None, aux_logits=False, init_weights=True, num_classes=1000)
    if weights_file is not None:
        model.load_state_dict(torch.load(Path(weights_file), map_location="cpu"), strict=False)
    first = model.Conv2d_1a_3x3.conv
    gray = nn.Conv2d(1, first.out_channels, first.kernel_size, first.stride, bias=False)
    gray.weight.data = first.weight.data.sum(dim=1, keepdim=True)  # grayscale = sum over RGB filters
    model.Conv2d_1a_3x3.conv = gray
    model.transform_input = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
