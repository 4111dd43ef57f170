"""Several trained models as one teacher: the mean of their logits.

The ensemble is evaluated and distilled from as a single model. Members must share labels and preprocessing, so
that one input batch means the same thing to each of them (and averaging their cached training-set logits, which is
what distillation uses, equals running the ensemble).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from torch import nn

from model_store.preprocess import PreprocessSpec
from trainer.checkpoint import CheckpointError, ModelCheckpoint


class LogitEnsemble(nn.Module):
    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


class Member(Protocol):
    labels: list[str]
    preprocess: PreprocessSpec

    def build_model(self) -> nn.Module: ...


M = TypeVar("M", bound=Member)


def load_members(paths: Sequence[Path], load: Callable[[Path], M] = ModelCheckpoint.load) -> list[M]:
    """The members (checkpoints, or what ``load`` reads), refused unless they agree on labels and preprocessing."""
    checkpoints = [load(path) for path in paths]
    first = checkpoints[0]
    for path, other in zip(paths[1:], checkpoints[1:], strict=True):
        if other.labels != first.labels:
            raise CheckpointError(f"{path} predicts {other.labels}, {paths[0]} predicts {first.labels}")
        if other.preprocess != first.preprocess:
            raise CheckpointError(f"{path} preprocesses its input differently from {paths[0]}")
    return checkpoints


def build_ensemble(checkpoints: Sequence[ModelCheckpoint]) -> LogitEnsemble:
    return LogitEnsemble([checkpoint.build_model() for checkpoint in checkpoints]).eval()
