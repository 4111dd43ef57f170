"""Teacher logits for knowledge distillation, computed once per (teacher, training set) and cached on disk.

A student's training view is a crop of the same face, possibly flipped; the cache holds the teacher's logits for
each face's centre view and its mirror image, and the student's batch picks the one matching its flip. A teacher
ensemble's logits are the mean of its members' (each cached beside its own checkpoint, so adding a member to an
ensemble reuses the others' caches).

A teacher is a run's ``best.pt`` or a published model's folder in the store (``models/<name>/<version>``), whose
graph is unfolded into torch (``trainer.warm_start``) and whose logits are cached in the student's run folder, not
in the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from model_store.metadata import ModelMetadata
from trainer.checkpoint import ModelCheckpoint
from trainer.data import FaceDataset
from trainer.ensemble import load_members
from trainer.evaluate import predict_logits, prepare_grids
from trainer.warm_start import CALIBRATION_FACES, published_checkpoint


def _weights_file(path: Path) -> Path:
    return path / "model.onnx" if path.is_dir() else path


def _fingerprint(checkpoint_path: Path, dataset: FaceDataset) -> str:
    digest = hashlib.sha256(_weights_file(checkpoint_path).read_bytes())
    digest.update(dataset.images.tobytes())
    digest.update(dataset.labels.tobytes())
    return digest.hexdigest()[:16]


def load_teacher(path: Path, dataset: FaceDataset) -> ModelCheckpoint:
    """A run's checkpoint, or a published model's folder calibrated on ``dataset``'s first faces."""
    if not path.is_dir():
        return ModelCheckpoint.load(path)
    spec = ModelMetadata.model_validate_json((path / "metadata.json").read_text()).preprocess
    return published_checkpoint(path, prepare_grids(dataset.subset(range(min(len(dataset), CALIBRATION_FACES))), spec))


def teacher_logits(checkpoint_path: Path, dataset: FaceDataset, cache_dir: Path | None = None) -> torch.Tensor:
    """[N, 2, C] logits (centre view, mirrored centre view) of the teacher on every face of ``dataset``, cached in
    ``cache_dir`` (default: beside a checkpoint; a published teacher needs one)."""
    return _logits(checkpoint_path, load_teacher(checkpoint_path, dataset), cache_dir, dataset)


def ensemble_logits(
    checkpoint_paths: Sequence[Path], dataset: FaceDataset, published_cache: Path | None = None
) -> torch.Tensor:
    """[N, 2, C] mean logits of one or several teachers (see ``trainer.ensemble``); published teachers' logits are
    cached in ``published_cache``."""
    # Refuses members that disagree on labels or preprocessing.
    members = load_members(checkpoint_paths, lambda path: load_teacher(path, dataset))
    caches = [published_cache if path.is_dir() else None for path in checkpoint_paths]
    return torch.stack(
        [_logits(*member, dataset) for member in zip(checkpoint_paths, members, caches, strict=True)]
    ).mean(0)


def _logits(
    checkpoint_path: Path, checkpoint: ModelCheckpoint, cache_dir: Path | None, dataset: FaceDataset
) -> torch.Tensor:
    if tuple(checkpoint.labels) != tuple(dataset.classes):
        raise ValueError(f"teacher predicts {checkpoint.labels}, the dataset has {list(dataset.classes)}")
    if cache_dir is None and checkpoint_path.is_dir():  # never write into the store
        raise ValueError(f"{checkpoint_path}: a published teacher's logits need a cache folder outside the store")
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
