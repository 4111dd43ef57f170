"""Batch augmentation on uint8 face grids, driven by one ``torch.Generator`` so a resumed run replays exactly.

Faces are stored once at ``resize_size`` (see ``model_store.preprocess``); a training view is one crop of
``input_size`` from that grid: one of the paper's eight crops (four corners, four side middles), or any position
(``random``). Optional extras for stronger training: horizontal flip, small affine jitter, brightness/contrast and
random erasing. Evaluation uses the centre crop (or the eight crops, averaged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from model_store.preprocess import PreprocessSpec, centre_crop, crop_offsets


@dataclass(frozen=True)
class AugmentConfig:
    crops: Literal["eight", "random", "centre"] = "eight"
    flip: bool = True
    rotate_degrees: float = 0.0
    scale_jitter: float = 0.0  # e.g. 0.1: zoom in [0.9, 1.1]
    brightness: float = 0.0  # e.g. 0.2: additive shift of up to ±20% of the range
    contrast: float = 0.0  # e.g. 0.2: factor in [0.8, 1.2]
    erase_prob: float = 0.0  # random erasing of one rectangle

    @classmethod
    def paper(cls) -> AugmentConfig:
        return cls()

    @classmethod
    def strong(cls) -> AugmentConfig:
        return cls(
            crops="random",
            rotate_degrees=10.0,
            scale_jitter=0.1,
            brightness=0.2,
            contrast=0.2,
            erase_prob=0.25,
        )

    def describe(self) -> str:
        """In words, named after its preset (the CLI's ``--augment``) when it is one."""
        parts = [f"{self.crops} crops"]
        parts += ["flips"] if self.flip else []
        parts += [f"rotation ±{self.rotate_degrees:g}°"] if self.rotate_degrees else []
        parts += [f"zoom ±{self.scale_jitter:.0%}"] if self.scale_jitter else []
        parts += [f"brightness ±{self.brightness:.0%}"] if self.brightness else []
        parts += [f"contrast ±{self.contrast:.0%}"] if self.contrast else []
        parts += [f"erasing p={self.erase_prob:g}"] if self.erase_prob else []
        preset = next((name for name, cfg in (("paper", self.paper()), ("strong", self.strong())) if cfg == self), None)
        return f"{preset + ' ' if preset else ''}augmentation ({', '.join(parts)})"


def _crop(grids: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, size: int) -> torch.Tensor:
    rows = tops[:, None] + torch.arange(size)[None]  # [N, size]
    cols = lefts[:, None] + torch.arange(size)[None]
    batch = torch.arange(len(grids))[:, None, None]
    return grids[batch, rows[:, :, None], cols[:, None, :]]


def scale(views: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 [N, H, W] → model input float32 [N, 1, H, W], as ``model_store.preprocess.to_tensor``."""
    return ((views.float() * spec.scale - spec.mean) / spec.std).unsqueeze(1)


def augment_batch(
    grids: torch.Tensor, spec: PreprocessSpec, config: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training views of a batch of uint8 grids [N, R, R]; returns (float input [N,1,S,S], flipped mask [N])."""
    n, size, far = len(grids), spec.input_size, spec.resize_size - spec.input_size
    if config.crops == "eight":
        offsets = torch.tensor(crop_offsets(spec))
        pick = offsets[torch.randint(len(offsets), (n,), generator=generator)]
        views = _crop(grids, pick[:, 0], pick[:, 1], size)
    elif config.crops == "random":
        tops = torch.randint(far + 1, (n,), generator=generator)
        lefts = torch.randint(far + 1, (n,), generator=generator)
        views = _crop(grids, tops, lefts, size)
    else:
        views = centre_crop(grids, spec)
    flipped = torch.rand(n, generator=generator) < 0.5 if config.flip else torch.zeros(n, dtype=torch.bool)
    views = torch.where(flipped[:, None, None], views.flip(-1), views)
    x = views.float().unsqueeze(1) / 255.0
    if config.rotate_degrees or config.scale_jitter:
        x = _affine(x, config, generator)
    if config.brightness or config.contrast:
        shift = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * config.brightness
        factor = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * config.contrast
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = ((x - mean) * factor + mean + shift).clamp(0, 1)
    if config.erase_prob:
        x = _erase(x, config.erase_prob, generator)
    x = (x * (255.0 * spec.scale) - spec.mean) / spec.std
    return x, flipped


def _affine(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    n = len(x)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(config.rotate_degrees)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * config.scale_jitter
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _erase(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    apply = torch.rand(n, generator=generator) < prob
    eh = (torch.rand(n, generator=generator) * 0.3 + 0.1) * h
    ew = (torch.rand(n, generator=generator) * 0.3 + 0.1) * w
    top = torch.rand(n, generator=generator) * (h - eh)
    left = torch.rand(n, generator=generator) * (w - ew)
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    mask = (
        (rows >= top[:, None, None])
        & (rows < (top + eh)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + ew)[:, None, None])
        & apply[:, None, None]
    )
    return x.masked_fill(mask[:, None], 0.5)
