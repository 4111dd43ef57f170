"""Teacher logits for knowledge distillation, computed once per (teacher, training set) and cached on disk.

A student's training view is a crop of the same face, possibly flipped; the cache holds the teacher's logits for
each face's centre view and its mirror image, and the student's batch picks the one matching its flip. A teacher
ensemble's logits are the mean of its members' (each cached beside its own checkpoint, so adding a member to an
ensemble reuses the others' caches).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from trainer.checkpoint import ModelCheckpoint
from trainer.data import FaceDataset
from trainer.ensemble import load_members
from trainer.evaluate import predict_logits, prepare_grids


def _fingerprint(checkpoint_path: Path, dataset: FaceDataset) -> str:
    digest = hashlib.sha256(checkpoint_path.read_bytes())
    digest.update(dataset.images.tobytes())
    digest.update(dataset.labels.tobytes())
    return digest.hexdigest()[:16]


def teacher_logits(checkpoint_path: Path, dataset: FaceDataset, cache_dir: Path | None = None) -> torch.Tensor:
    """[N, 2, C] logits (centre view, mirrored centre view) of the teacher on every face of ``dataset``."""
    return _logits(checkpoint_path, ModelCheckpoint.load(checkpoint_path), dataset, cache_dir)


def ensemble_logits(checkpoint_paths: Sequence[Path], dataset: FaceDataset) -> torch.Tensor:
    """[N, 2, C] mean logits of one or several teachers (see ``trainer.ensemble``)."""
    members = load_members(checkpoint_paths)  # refuses members that disagree on labels or preprocessing
    return torch.stack([_logits(p, c, dataset) for p, c in zip(checkpoint_paths, members, strict=True)]).mean(0)


def _logits(
    checkpoint_path: Path, checkpoint: ModelCheckpoint, dataset: FaceDataset, cache_dir: Path | None = None
) -> torch.Tensor:
    if tuple(checkpoint.labels) != tuple(dataset.classes):
        raise ValueError(f"teacher predicts {checkpoint.labels}, the dataset has {list(dataset.classes)}")
    cache_dir = cache_dir or checkpoint_path.parent
    cache = cache_dir / f"teacher_logits_{_fingerprint(checkpoint_path, dataset)}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=True)
    model = checkpoint.build_model()
    grids = prepare_grids(dataset, checkpoint.preprocess)
    plain = predict_logits(model, grids, checkpoint.preprocess)
    mirrored = predict_logits(model, grids.flip(-1), checkpoint.preprocess)
    logits = torch.stack([plain, mirrored], dim=1)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save(logits, tmp)
    tmp.replace(cache)
    return logits
