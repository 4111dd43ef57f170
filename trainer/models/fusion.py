"""Batch norm folded into the convolution before it, for export: the served graph then has one convolution where
training had a convolution and a normalisation, and computes the same function in eval mode."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import pairwise

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


@dataclass(frozen=True)
class FoldablePair:
    """A Conv2d directly followed by a BatchNorm2d inside an ``nn.Sequential``: what ``fold_batchnorm`` folds."""

    parent: nn.Sequential
    conv_name: str  # the children's names in `parent`
    bn_name: str
    prefix: str  # `parent`'s qualified name in the model, "" at the top

    def qualified(self, child: str) -> str:
        return f"{self.prefix}.{child}" if self.prefix else child


def foldable_pairs(model: nn.Module) -> list[FoldablePair]:
    pairs = []
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            for (conv_name, conv), (bn_name, bn) in pairwise(module.named_children()):
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    pairs.append(FoldablePair(module, conv_name, bn_name, prefix))
    return pairs


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every BatchNorm2d that directly follows a Conv2d inside an
    ``nn.Sequential`` is folded into that convolution (and replaced by an identity). Other modules are untouched."""
    folded = copy.deepcopy(model).eval()
    for pair in foldable_pairs(folded):
        conv, bn = getattr(pair.parent, pair.conv_name), getattr(pair.parent, pair.bn_name)
        setattr(pair.parent, pair.conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(pair.parent, pair.bn_name, nn.Identity())
    return folded
