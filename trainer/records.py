"""The files a run folder holds besides its checkpoints, as typed records written and read through these classes:
``metrics.json`` (``TrainingLog``), ``result.json`` of a training run or an ensemble (``RunResult``) or of a
cross-validation cell (``CellResult``), and a temperature sweep's ``sweep.json`` (``SweepResult``).

Files written before a field existed still load: every field added since has a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

METRICS = "metrics.json"
RESULT = "result.json"
SWEEP = "sweep.json"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)

    def write(self, path: Path) -> None:
        write_atomically(path, self.model_dump_json(indent=2, exclude_none=True))


R = TypeVar("R", bound=Record)


def read(path: Path, record: type[R]) -> R | None:
    """The record in ``path``; None when there is none, or what is there is another kind of record."""
    try:
        return record.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValidationError):
        return None


class EpochRecord(Record):
    epoch: int
    train_loss: float
    train_accuracy: float = Field(description="on the augmented training views")
    val_accuracy: float = Field(description="of the model kept: the weight average when there is one")
    trained_val_accuracy: float | None = Field(None, description="with a weight average: the trained weights'")
    lr: float
    seconds: float


class TrainingLog(Record):
    """``metrics.json``: every epoch so far, and the best on validation."""

    history: list[EpochRecord]
    best_epoch: int
    best_val_accuracy: float


class TestMetrics(Record):
    """A model's scores on a labelled split."""

    accuracy: float
    per_class_precision: dict[str, float]
    per_class_recall: dict[str, float]
    confusion_matrix: list[list[int]] = Field(description="rows: true class, columns: predicted, in `classes` order")
    classes: list[str]
    count: int


class RunResult(Record):
    """``result.json`` of a training run (its best checkpoint) or of an ensemble's evaluation."""

    arch: str
    parameters: int
    val_accuracy: float
    temperature: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    epochs_planned: int | None = None
    finished: bool = Field(True, description="False: reported before its last epoch (`trainer conclude`)")
    seconds: float | None = None
    members: list[str] | None = Field(None, description="an ensemble's checkpoints")
    recipe: str = Field("", description="an ensemble's recipe (a training run's is in its config.json)")
    test_accuracy: float | None = Field(None, description="single centre crop")
    test_accuracy_8crop: float | None = Field(None, description="the mean of eight crops and their mirrors")
    test: TestMetrics | None = Field(None, description="centre crop")


class CellResult(Record):
    """``result.json`` of one cross-validation cell: a student configuration over every fold."""

    mode: Literal["subject", "random"]
    folds: int
    fold_accuracies: list[float]
    arch: str
    kd: bool

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_accuracies))

    def write(self, path: Path) -> None:
        # The summary is written too, for people reading the file; reading it back recomputes it.
        write_atomically(path, json.dumps(self.model_dump() | {"mean": self.mean, "std": self.std}, indent=2))


class SweepResult(Record):
    """``sweep.json``: one run per temperature; validation accuracy picks T."""

    best_temperature: float
    results: dict[float, RunResult]
