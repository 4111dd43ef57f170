"""Checkpoint files.

``last.pt`` in a run directory holds everything needed to resume exactly (model, optimizer, scheduler and RNG
states, history). ``best.pt`` is the portable model checkpoint the exporter and the evaluator read: architecture
name and arguments, weights, labels, preprocessing, provenance and metrics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_store.preprocess import PreprocessSpec
from trainer.models import create_model

CHECKPOINT_KIND = "microexp-model"


class CheckpointError(ValueError):
    """A file that is not a model checkpoint of this project, or one that does not fit its architecture."""


@dataclass
class ModelCheckpoint:
    arch: str
    model_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    labels: list[str]
    preprocess: PreprocessSpec
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(
            {
                "kind": CHECKPOINT_KIND,
                "arch": self.arch,
                "model_kwargs": self.model_kwargs,
                "state_dict": self.state_dict,
                "labels": self.labels,
                "preprocess": self.preprocess.model_dump(),
                "provenance": self.provenance,
                "metrics": self.metrics,
            },
            tmp,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | str) -> ModelCheckpoint:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or corrupt files
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__})") from exc
        if not isinstance(data, dict) or data.get("kind") != CHECKPOINT_KIND:
            raise CheckpointError(f"{path}: not a {CHECKPOINT_KIND} checkpoint (use a run's best.pt)")
        return cls(
            arch=data["arch"],
            model_kwargs=data["model_kwargs"],
            state_dict=data["state_dict"],
            labels=list(data["labels"]),
            preprocess=PreprocessSpec(**data["preprocess"]),
            provenance=data.get("provenance", {}),
            metrics=data.get("metrics", {}),
        )

    def build_model(self) -> nn.Module:
        model = create_model(self.arch, num_classes=len(self.labels), **self.model_kwargs)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit {self.arch}: {str(exc).splitlines()[0]}") from exc
        return model.eval()


def checkpoint_identity(path: Path) -> str:
    """What names a checkpoint on any machine (provenance): its architecture and the start of the file's SHA-256."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"{ModelCheckpoint.load(path).arch} sha256:{digest[:16]}"
