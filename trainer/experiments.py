"""Runs built from the training loop: one run with its report, the temperature sweep, and cross-validation.

Every piece writes into its own run directory and skips work whose ``result.json`` already exists, so an
interrupted sweep or grid continues where it stopped when the same command is run again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model_store.preprocess import PreprocessSpec
from trainer import plots
from trainer.checkpoint import ModelCheckpoint
from trainer.config import TrainConfig
from trainer.crossval import Fold, SplitMode, make_folds
from trainer.data import FaceDataset
from trainer.ensemble import build_ensemble, load_members
from trainer.evaluate import evaluate
from trainer.models.registry import count_parameters
from trainer.records import (
    METRICS,
    RESULT,
    SWEEP,
    CellResult,
    RunResult,
    SweepResult,
    TrainingLog,
    read,
    write_atomically,
)
from trainer.teacher_logits import teacher_logits
from trainer.train import fit


def train_run(
    config: TrainConfig,
    train: FaceDataset,
    val: FaceDataset,
    run_dir: Path,
    *,
    logits: torch.Tensor | None = None,
    test: FaceDataset | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> RunResult:
    """Train (or resume, or skip when finished) one model on ``device``; then ``conclude_run``."""
    done = read(run_dir / RESULT, RunResult)
    if done is not None and done.finished:
        return done
    fit(config, train, val, run_dir, logits, progress=progress, device=device)
    return conclude_run(run_dir, test, finished=True, device=device)


def conclude_run(run_dir: Path, test: FaceDataset | None, *, finished: bool, device: str = "cpu") -> RunResult:
    """Evaluate a run's best checkpoint on ``test``; write ``result.json``, the learning curves and the confusion
    matrix into ``run_dir``. ``finished=False`` reports a run stopped before its last epoch (e.g. when a GPU lease
    ended) as it stands; training it again with the same command resumes it and replaces the report."""
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    log = TrainingLog.model_validate_json((run_dir / METRICS).read_bytes())
    plots.learning_curves(log.history, run_dir / "learning_curves.png", run_dir.name)
    checkpoint = ModelCheckpoint.load(run_dir / "best.pt")
    model = checkpoint.build_model()
    result = RunResult(
        arch=config.arch,
        parameters=count_parameters(model),
        best_epoch=log.best_epoch,
        epochs_run=len(log.history),
        epochs_planned=config.epochs,
        finished=finished,
        val_accuracy=log.best_val_accuracy,
        seconds=sum(epoch.seconds for epoch in log.history),
        temperature=config.kd.temperature if config.kd else None,
    )
    if test is not None:
        result = result.model_copy(update=_test_scores(model.to(device), checkpoint.preprocess, test, run_dir))
        checkpoint.metrics |= _checkpoint_metrics(result)
        checkpoint.save(run_dir / "best.pt")
    result.write(run_dir / RESULT)
    return result


def _checkpoint_metrics(result: RunResult) -> dict[str, object]:
    """The test scores a checkpoint carries into its published metadata (model_store.metadata.Metrics)."""
    centre = result.test
    assert centre is not None
    return {
        "test_accuracy": result.test_accuracy,
        "test_accuracy_8crop": result.test_accuracy_8crop,
        "per_class": {
            c: {"precision": centre.per_class_precision[c], "recall": centre.per_class_recall[c]}
            for c in centre.classes
        },
        "confusion_matrix": centre.confusion_matrix,
    }


def _test_scores(model: nn.Module, spec: PreprocessSpec, test: FaceDataset, run_dir: Path) -> dict[str, object]:
    """Test accuracy on the centre crop (with its metrics and confusion-matrix plot) and on 8 crops + flips."""
    centre = evaluate(model, test, spec)
    eight = evaluate(model, test, spec, views="eight", flip=True)
    plots.confusion_matrix(centre.confusion_matrix, centre.classes, run_dir / "confusion_matrix.png", run_dir.name)
    return {"test_accuracy": centre.accuracy, "test_accuracy_8crop": eight.accuracy, "test": centre}


def ensemble_run(
    checkpoint_paths: Sequence[Path], val: FaceDataset, test: FaceDataset | None, run_dir: Path, recipe: str = ""
) -> RunResult:
    """Evaluate trained models as one (mean logits) and write ``result.json`` like a training run's."""
    done = read(run_dir / RESULT, RunResult)
    if done is not None:
        return done
    checkpoints = load_members(checkpoint_paths)
    model, spec = build_ensemble(checkpoints), checkpoints[0].preprocess
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(
        arch=" + ".join(checkpoint.arch for checkpoint in checkpoints),
        members=[str(path) for path in checkpoint_paths],
        parameters=count_parameters(model),
        val_accuracy=evaluate(model, val, spec).accuracy,
        recipe=recipe,
    )
    if test is not None:
        result = result.model_copy(update=_test_scores(model, spec, test, run_dir))
    result.write(run_dir / RESULT)
    return result


def sweep_temperatures(
    base: TrainConfig,
    temperatures: Sequence[float],
    train: FaceDataset,
    val: FaceDataset,
    logits: torch.Tensor,
    run_dir: Path,
    *,
    test: FaceDataset | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> SweepResult:
    """Train one student per temperature; the best validation accuracy picks T (test is only reported)."""
    if base.kd is None:
        raise ValueError("a temperature sweep needs a KD configuration")
    results = {}
    for t in temperatures:
        config = replace(base, kd=replace(base.kd, temperature=float(t)))
        results[float(t)] = train_run(config, train, val, run_dir / f"T{t:g}", logits=logits, test=test,
                                      progress=progress, device=device)  # fmt: skip
    sweep = SweepResult(best_temperature=max(results, key=lambda t: results[t].val_accuracy), results=results)
    sweep.write(run_dir / SWEEP)
    plots.accuracy_vs_temperature(
        {base.arch: {t: r.val_accuracy for t, r in results.items()}}, run_dir / "accuracy_vs_temperature.png",
        "validation accuracy vs temperature",
    )  # fmt: skip
    return sweep


def selection_split(dataset: FaceDataset, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ~``fraction`` of a training part for model selection, by subject when subjects are known."""
    rng = np.random.default_rng(seed)
    if dataset.subjects is not None:
        subjects = rng.permutation(np.unique(dataset.subjects))
        held = set(subjects[: max(1, round(len(subjects) * fraction))])
        mask = np.array([s in held for s in dataset.subjects])
    else:
        mask = np.zeros(len(dataset), dtype=bool)
        mask[rng.permutation(len(dataset))[: max(1, round(len(dataset) * fraction))]] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def cross_validate(
    dataset: FaceDataset,
    student: TrainConfig,
    run_dir: Path,
    *,
    folds: int,
    mode: SplitMode,
    teacher: TrainConfig | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> CellResult:
    """k-fold CV of one student configuration. With ``teacher`` (and ``student.kd``), a teacher is trained on each
    fold's training part (cached in ``run_dir/../teachers``, shared by every student of the same folds) and the
    student distils from it. Each fold selects its best epoch on a held-out 10% of its training subjects."""
    accuracies = []
    fold_root = run_dir.parent / "folds.json"
    split_list: list[Fold] = make_folds(dataset, folds, mode, seed=student.seed)
    if not fold_root.exists():
        fold_root.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(fold_root, json.dumps([{"fold": f.index, "test": f.test.tolist()} for f in split_list]))
    for fold in split_list:
        train_part, test_part = dataset.subset(fold.train), dataset.subset(fold.test)
        fit_idx, sel_idx = selection_split(train_part, 0.1, seed=student.seed + fold.index)
        fit_part, sel_part = train_part.subset(fit_idx), train_part.subset(sel_idx)
        logits = None
        if student.kd is not None:
            if teacher is None:
                raise ValueError("KD cross-validation needs a teacher configuration")
            teacher_dir = run_dir.parent / "teachers" / f"fold{fold.index}"
            train_run(teacher, fit_part, sel_part, teacher_dir, progress=progress, device=device)
            logits = teacher_logits(teacher_dir / "best.pt", fit_part)
        result = train_run(student, fit_part, sel_part, run_dir / f"fold{fold.index}", logits=logits,
                           test=test_part, progress=progress, device=device)  # fmt: skip
        assert result.test_accuracy is not None  # the fold's test part was given
        accuracies.append(result.test_accuracy)
    cell = CellResult(mode=mode, folds=folds, fold_accuracies=accuracies, arch=student.arch, kd=student.kd is not None)
    cell.write(run_dir / RESULT)
    return cell
