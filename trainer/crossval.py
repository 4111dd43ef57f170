"""k-fold cross-validation in two modes: ``subject`` (no subject in both train and test, the paper's protocol)
and ``random`` (faces shuffled regardless of who they show)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from trainer.data import FaceDataset

SplitMode = Literal["subject", "random"]


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray
    test: np.ndarray


def make_folds(dataset: FaceDataset, k: int, mode: SplitMode, seed: int = 0) -> list[Fold]:
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    rng = np.random.default_rng(seed)
    if mode == "subject":
        if dataset.subjects is None:
            raise ValueError(f"{dataset.name} has no subject ids; give a --subject-pattern or use random folds")
        subjects = np.unique(dataset.subjects)
        if len(subjects) < k:
            raise ValueError(f"{len(subjects)} subjects cannot fill {k} subject-independent folds")
        # Greedy balancing: the largest remaining subject goes to the currently smallest fold.
        order = rng.permutation(subjects)
        sizes = {s: int((dataset.subjects == s).sum()) for s in order}
        order = sorted(order, key=lambda s: -sizes[s])
        fold_of: dict[str, int] = {}
        load = np.zeros(k, dtype=int)
        for subject in order:
            target = int(np.argmin(load))
            fold_of[subject] = target
            load[target] += sizes[subject]
        assignment = np.array([fold_of[s] for s in dataset.subjects])
    else:
        assignment = np.empty(len(dataset), dtype=int)
        assignment[rng.permutation(len(dataset))] = np.arange(len(dataset)) % k
    return [Fold(i, np.flatnonzero(assignment != i), np.flatnonzero(assignment == i)) for i in range(k)]
