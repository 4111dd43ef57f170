"""Predictions and metrics: accuracy, per-class precision/recall, confusion matrix; single or eight-crop views."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from model_store.preprocess import PreprocessSpec, centre_crop, eight_crops, to_grid
from trainer.augment import scale
from trainer.data import FaceDataset
from trainer.records import TestMetrics

Views = Literal["centre", "eight"]


def prepare_grids(dataset: FaceDataset, spec: PreprocessSpec) -> torch.Tensor:
    """Every face at the spec's grid size, uint8 [N, R, R], computed once per run."""
    if len(dataset) == 0:
        return torch.empty((0, spec.resize_size, spec.resize_size), dtype=torch.uint8)
    return torch.from_numpy(np.stack([to_grid(face, spec) for face in dataset.images]))


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    grids: torch.Tensor,
    spec: PreprocessSpec,
    views: Views = "centre",
    flip: bool = False,
    batch_size: int = 512,
) -> torch.Tensor:
    """Logits [N, C] on the CPU, wherever the model is; with ``views="eight"`` the mean of the paper's eight crops
    (and their flips if ``flip``)."""
    model.eval()
    # A module without parameters (a published model on onnxruntime, trainer.published) takes CPU tensors.
    device = next(model.parameters(), torch.empty(0)).device
    out = []
    for start in range(0, len(grids), batch_size):
        chunk = grids[start : start + batch_size]
        crops = [centre_crop(chunk, spec)] if views == "centre" else eight_crops(chunk, spec)
        if flip:
            crops = crops + [c.flip(-1) for c in crops]
        out.append(torch.stack([model(scale(c.contiguous(), spec).to(device)) for c in crops]).mean(0).cpu())
    return torch.cat(out) if out else torch.empty(0)


def compute_metrics(predicted: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] | list[str]) -> TestMetrics:
    k = len(classes)
    matrix = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    tp = np.diag(matrix).astype(float)
    precision = np.divide(tp, matrix.sum(0), out=np.zeros(k), where=matrix.sum(0) > 0)
    recall = np.divide(tp, matrix.sum(1), out=np.zeros(k), where=matrix.sum(1) > 0)
    return TestMetrics(
        accuracy=float(tp.sum() / max(1, matrix.sum())),
        per_class_precision={c: round(float(p), 4) for c, p in zip(classes, precision, strict=True)},
        per_class_recall={c: round(float(r), 4) for c, r in zip(classes, recall, strict=True)},
        confusion_matrix=matrix.tolist(),
        classes=list(classes),
        count=int(matrix.sum()),
    )


def evaluate(
    model: nn.Module, dataset: FaceDataset, spec: PreprocessSpec, views: Views = "centre", flip: bool = False
) -> TestMetrics:
    logits = predict_logits(model, prepare_grids(dataset, spec), spec, views, flip)
    return compute_metrics(logits.argmax(1).numpy(), dataset.labels, dataset.classes)
