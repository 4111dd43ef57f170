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
from trainer.crossval import CVResult, Fold, SplitMode, make_folds
from trainer.data import FaceDataset
from trainer.ensemble import build_ensemble, load_members
from trainer.evaluate import evaluate
from trainer.models.registry import count_parameters
from trainer.teacher_logits import teacher_logits
from trainer.train import fit

RESULT = "result.json"


def _write(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


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
) -> dict:
    """Train (or resume, or skip when finished) one model on ``device``; then ``conclude_run``."""
    done = run_dir / RESULT
    if done.exists() and (result := json.loads(done.read_text())).get("finished", True):
        return result
    fit(config, train, val, run_dir, logits, progress=progress, device=device)
    return conclude_run(run_dir, test, finished=True, device=device)


def conclude_run(run_dir: Path, test: FaceDataset | None, *, finished: bool, device: str = "cpu") -> dict:
    """Evaluate a run's best checkpoint on ``test``; write ``result.json``, the learning curves and the confusion
    matrix into ``run_dir``. ``finished=False`` reports a run stopped before its last epoch (e.g. when a GPU lease
    ended) as it stands; training it again with the same command resumes it and replaces the report."""
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = metrics["history"]
    plots.learning_curves(history, run_dir / "learning_curves.png", run_dir.name)
    checkpoint = ModelCheckpoint.load(run_dir / "best.pt")
    model = checkpoint.build_model()
    result: dict = {
        "arch": config.arch,
        "parameters": count_parameters(model),
        "best_epoch": metrics["best_epoch"],
        "epochs_run": len(history),
        "epochs_planned": config.epochs,
        "finished": finished,
        "val_accuracy": metrics["best_val_accuracy"],
        "seconds": sum(h["seconds"] for h in history),
        "temperature": config.kd.temperature if config.kd else None,
    }
    if test is not None:
        scores = _test_scores(model.to(device), checkpoint.preprocess, test, run_dir)
        centre = scores["test"]
        result |= scores
        checkpoint.metrics |= {
            "test_accuracy": scores["test_accuracy"],
            "test_accuracy_8crop": scores["test_accuracy_8crop"],
            "per_class": {
                c: {"precision": centre["per_class_precision"][c], "recall": centre["per_class_recall"][c]}
                for c in centre["classes"]
            },
            "confusion_matrix": centre["confusion_matrix"],
        }
        checkpoint.save(run_dir / "best.pt")
    _write(run_dir / RESULT, result)
    return result


def _test_scores(model: nn.Module, spec: PreprocessSpec, test: FaceDataset, run_dir: Path) -> dict:
    """Test accuracy on the centre crop (with its metrics and confusion-matrix plot) and on 8 crops + flips."""
    centre = evaluate(model, test, spec)
    eight = evaluate(model, test, spec, views="eight", flip=True)
    plots.confusion_matrix(centre.confusion_matrix, centre.classes, run_dir / "confusion_matrix.png", run_dir.name)
    return {"test_accuracy": centre.accuracy, "test_accuracy_8crop": eight.accuracy, "test": centre.to_dict()}


def ensemble_run(
    checkpoint_paths: Sequence[Path], val: FaceDataset, test: FaceDataset | None, run_dir: Path, recipe: str = ""
) -> dict:
    """Evaluate trained models as one (mean logits) and write ``result.json`` like a training run's."""
    done = run_dir / RESULT
    if done.exists():
        return json.loads(done.read_text())
    checkpoints = load_members(checkpoint_paths)
    model, spec = build_ensemble(checkpoints), checkpoints[0].preprocess
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "arch": " + ".join(checkpoint.arch for checkpoint in checkpoints),
        "members": [str(path) for path in checkpoint_paths],
        "parameters": count_parameters(model),
        "val_accuracy": evaluate(model, val, spec).accuracy,
        "temperature": None,
        "recipe": recipe,
    }
    if test is not None:
        result |= _test_scores(model, spec, test, run_dir)
    _write(done, result)
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
) -> tuple[float, dict[float, dict]]:
    """Train one student per temperature; the best validation accuracy picks T (test is only reported)."""
    if base.kd is None:
        raise ValueError("a temperature sweep needs a KD configuration")
    results = {}
    for t in temperatures:
        config = replace(base, kd=replace(base.kd, temperature=float(t)))
        results[float(t)] = train_run(config, train, val, run_dir / f"T{t:g}", logits=logits, test=test,
                                      progress=progress, device=device)  # fmt: skip
    best = max(results, key=lambda t: results[t]["val_accuracy"])
    _write(run_dir / "sweep.json", {"best_temperature": best, "results": {str(t): r for t, r in results.items()}})
    plots.accuracy_vs_temperature(
        {base.arch: {t: r["val_accuracy"] for t, r in results.items()}}, run_dir / "accuracy_vs_temperature.png",
        "validation accuracy vs temperature",
    )  # fmt: skip
    return best, results


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
) -> CVResult:
    """k-fold CV of one student configuration. With ``teacher`` (and ``student.kd``), a teacher is trained on each
    fold's training part (cached in ``run_dir/../teachers``, shared by every student of the same folds) and the
    student distils from it. Each fold selects its best epoch on a held-out 10% of its training subjects."""
    accuracies = []
    fold_root = run_dir.parent / "folds.json"
    split_list: list[Fold] = make_folds(dataset, folds, mode, seed=student.seed)
    if not fold_root.exists():
        fold_root.parent.mkdir(parents=True, exist_ok=True)
        _write(fold_root, [{"fold": f.index, "test": f.test.tolist()} for f in split_list])
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
        accuracies.append(result["test_accuracy"])
    cv = CVResult(accuracies)
    _write(run_dir / RESULT, {"mode": mode, "folds": folds, "fold_accuracies": accuracies, "mean": cv.mean,
                              "std": cv.std, "arch": student.arch, "kd": bool(student.kd)})  # fmt: skip
    return cv
