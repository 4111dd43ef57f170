"""Teacher logits for knowledge distillation, computed once per (teacher, training set) and cached on disk.

A student's training view is a crop of the same face, possibly flipped; the cache holds the teacher's logits for
each face's centre view and its mirror image, and the student's batch picks the one matching its flip. A teacher
ensemble's logits are the mean of its members' (each cached beside its own checkpoint, so adding a member to an
ensemble reuses the others' caches).

A teacher is a run's ``best.pt`` or a published model's folder in the store (``models/<name>/<version>``), whose
graph runs on onnxruntime (``trainer.published``) and whose logits are cached outside the store, in the user's
cache folder (``$XDG_CACHE_HOME/microexp/teacher-logits``, by default under ``~/.cache``), shared by every run that
distils from it on the same faces.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from trainer.checkpoint import ModelCheckpoint
from trainer.data import FaceDataset
from trainer.ensemble import load_members
from trainer.evaluate import predict_logits, prepare_grids
from trainer.published import PublishedTeacher

Teacher = ModelCheckpoint | PublishedTeacher


def _weights_file(path: Path) -> Path:
    return path / "model.onnx" if path.is_dir() else path


def _fingerprint(checkpoint_path: Path, dataset: FaceDataset) -> str:
    digest = hashlib.sha256(_weights_file(checkpoint_path).read_bytes())
    digest.update(dataset.images.tobytes())
    digest.update(dataset.labels.tobytes())
    return digest.hexdigest()[:16]


def load_teacher(path: Path) -> Teacher:
    """A run's checkpoint, or a published model's folder."""
    return PublishedTeacher.load(path) if path.is_dir() else ModelCheckpoint.load(path)


def teacher_logits(checkpoint_path: Path, dataset: FaceDataset, cache_dir: Path | None = None) -> torch.Tensor:
    """[N, 2, C] logits (centre view, mirrored centre view) of the teacher on every face of ``dataset``, cached in
    ``cache_dir`` (default: beside a checkpoint, or in ``user_cache`` for a published model)."""
    return _logits(checkpoint_path, load_teacher(checkpoint_path), cache_dir, dataset)


def ensemble_logits(checkpoint_paths: Sequence[Path], dataset: FaceDataset) -> torch.Tensor:
    """[N, 2, C] mean logits of one or several teachers (see ``trainer.ensemble``)."""
    members = load_members(checkpoint_paths, load_teacher)  # refuses members that disagree on labels or preprocessing
    return torch.stack([_logits(p, m, None, dataset) for p, m in zip(checkpoint_paths, members, strict=True)]).mean(0)


def user_cache() -> Path:
    """Where published teachers' logits are cached: never in the store, which holds only what is served."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microexp" / "teacher-logits"


def _logits(checkpoint_path: Path, checkpoint: Teacher, cache_dir: Path | None, dataset: FaceDataset) -> torch.Tensor:
    if tuple(checkpoint.labels) != tuple(dataset.classes):
        raise ValueError(f"teacher predicts {checkpoint.labels}, the dataset has {list(dataset.classes)}")
    cache_dir = cache_dir or (user_cache() if checkpoint_path.is_dir() else checkpoint_path.parent)
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
