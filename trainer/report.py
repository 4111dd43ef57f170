"""Paper-style tables from the runs a runs folder holds (``python -m trainer report RUNS``).

Every run names the recipe it comes from (``trainer/recipes/``): a training run in its ``config.json``, an ensemble
in its ``result.json``, a cross-validation cell in its folds' ``config.json``. The tables pick runs by recipe and
read everything else (architecture, size, family, seed, temperature, pooling, scores) from those records, wherever
the runs sit under ``RUNS/fer2013`` (FER2013 tables) and ``RUNS/ckplus`` (CK+ tables). A run written before runs
named their recipe belongs to the recipe whose run folder it is in (the recipes' ``run_dir`` below ``runs/``); one
in no recipe's folder is listed under its folder's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from model_store.vocabulary import SIZES, split_model_name
from trainer import plots
from trainer.config import TrainConfig
from trainer.models.microexpnet import POOLINGS
from trainer.recipe import RecipeError, load_recipe, recipe_names
from trainer.records import RESULT, SWEEP, CellResult, RunResult, SweepResult, read


@dataclass(frozen=True)
class Run:
    """A training run's or an ensemble's result, with its recipe and configuration (None for an ensemble)."""

    folder: str  # relative to the runs folder
    recipe: str
    result: RunResult
    config: TrainConfig | None

    @property
    def size(self) -> str | None:
        try:
            return split_model_name(self.result.arch)[1]
        except ValueError:  # a teacher or an ensemble
            return None

    @property
    def is_default_seed(self) -> bool:
        return self.config is None or self.config.seed == _own_seed(self.recipe)

    @property
    def label(self) -> str:
        """The recipe (or, for an old run outside every recipe's folders, the folder), its seed when it is not the
        recipe's own, and where a run reported early stopped (``trainer conclude``)."""
        label = self.recipe or self.folder
        if not self.is_default_seed and self.config is not None:
            label += f", seed {self.config.seed}"
        if not self.result.finished:
            label += f" (stopped at epoch {self.result.epochs_run} of {self.result.epochs_planned})"
        return label


@dataclass(frozen=True)
class Cell:
    """A cross-validation cell, described by its first fold's configuration."""

    recipe: str
    result: CellResult
    config: TrainConfig
    selection_accuracy: float | None  # mean over its folds of the held-out training subjects' accuracy

    @property
    def size(self) -> str:
        return split_model_name(self.config.arch)[1]

    @property
    def pooling(self) -> str | None:
        return self.config.model_kwargs.get("pooling")

    @property
    def temperature(self) -> float | None:
        return self.config.kd.temperature if self.config.kd else None


@cache
def _own_seed(recipe: str) -> int:
    try:
        return int(load_recipe(recipe).args.get("seed", 0))  # type: ignore[arg-type]
    except RecipeError:
        return 0


@cache
def _recipe_folders() -> dict[Path, str]:
    """Run folders below ``runs/`` → the recipe whose runs go there."""
    folders: dict[Path, str] = {}
    for name in recipe_names():
        for run in load_recipe(name).plan():
            path = Path(run.run_dir)
            if path.parts[:1] == ("runs",):
                folders.setdefault(path.relative_to("runs"), name)
    return folders


def _recipe(recorded: str, relative: Path) -> str:
    if recorded:
        return recorded
    return next((_recipe_folders()[p] for p in (relative, *relative.parents) if p in _recipe_folders()), "")


def _config(folder: Path) -> TrainConfig | None:
    path = folder / "config.json"
    return TrainConfig.from_dict(json.loads(path.read_text())) if path.exists() else None


def find_runs(root: Path) -> list[Run]:
    """Training runs and ensembles below ``root`` (not a sweep's or a cross-validation cell's parts)."""
    runs = []
    for path in sorted(root.rglob(RESULT)):
        folder = path.parent
        result = read(path, RunResult)
        if result is None or (folder.parent / SWEEP).exists() or (folder.parent / RESULT).exists():
            continue
        config = _config(folder)
        relative = folder.relative_to(root.parent)
        runs.append(Run(str(relative), _recipe(config.recipe if config else result.recipe, relative), result, config))
    return runs


def find_cells(root: Path) -> list[Cell]:
    cells = []
    for path in sorted(root.rglob(RESULT)):
        result = read(path, CellResult)
        configs = sorted(path.parent.glob("fold*/config.json"))
        if result is None or not configs:
            continue
        config = TrainConfig.from_dict(json.loads(configs[0].read_text()))
        folds = [r.val_accuracy for f in sorted(path.parent.glob(f"fold*/{RESULT}")) if (r := read(f, RunResult))]
        selection = sum(folds) / len(folds) if folds else None
        cells.append(Cell(_recipe(config.recipe, path.parent.relative_to(root.parent)), result, config, selection))
    return cells


def _of(runs: Iterable[Run], recipe: str, size: str | None = None) -> Run | None:
    """The run of ``recipe`` (at ``size``) on the recipe's own seed."""
    return next((r for r in runs if r.recipe == recipe and r.size == size and r.is_default_seed), None)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _test(run: Run | None) -> float | None:
    return run.result.test_accuracy if run else None


def _gap(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{100 * (b - a):+.1f}"


def _cv(cell: Cell | None) -> str:
    return "—" if cell is None else f"{100 * cell.result.mean:.1f} ± {100 * cell.result.std:.1f}"


def _order(run: Run) -> tuple[int, str, int, str, int]:
    kind = 0 if run.size is None and run.config is not None else 1 if run.config is None else 2
    size = SIZES.index(run.size) if run.size else 0  # type: ignore[arg-type]
    return kind, run.recipe or run.folder, size, run.result.arch, run.config.seed if run.config else 0


def fer2013_table(runs: list[Run]) -> str:
    lines = [
        "| model | recipe | parameters | val | test (centre crop) | test (8 crops + flips) | T |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run in sorted(runs, key=_order):
        r = run.result
        lines.append(
            f"| {r.arch} | {run.label} | {r.parameters:,} | {_pct(r.val_accuracy)} | {_pct(r.test_accuracy)} | "
            f"{_pct(r.test_accuracy_8crop)} | {r.temperature or ''} |"
        )
    return "\n".join(lines)


def fer2013_kd_vs_vanilla(runs: list[Run]) -> str:
    lines = [
        "| size | vanilla test | KD test | KD − vanilla | vanilla 8-crop | KD 8-crop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        vanilla, kd = _of(runs, "fer2013-vanilla", size), _of(runs, "fer2013-kd", size)
        eight = [_pct(run.result.test_accuracy_8crop if run else None) for run in (vanilla, kd)]
        lines.append(
            f"| {size} | {_pct(_test(vanilla))} | {_pct(_test(kd))} | {_gap(_test(vanilla), _test(kd))} | "
            f"{eight[0]} | {eight[1]} |"
        )
    return "\n".join(lines)


def fer2013_smoothing_vs_kd(runs: list[Run]) -> str:
    """Label smoothing, the teacher-free regulariser, beside vanilla and KD (sizes where it was run)."""
    lines = ["| size | vanilla | label smoothing 0.1 | KD |", "|---|---:|---:|---:|"]
    for size in SIZES:
        row = [_of(runs, recipe, size) for recipe in ("fer2013-vanilla", "fer2013-smoothing", "fer2013-kd")]
        if row[1] is not None:
            lines.append(f"| {size} | " + " | ".join(_pct(_test(run)) for run in row) + " |")
    return "\n".join(lines)


def fer2013_teacher_effect(runs: list[Run]) -> str:
    """Does a better teacher make a better student? The same students distilled from teacher 1 and the ensemble."""
    teachers = [_of(runs, "fer2013-teacher"), _of(runs, "fer2013-ensemble")]
    header = " | ".join(f"from {_pct(_test(teacher))} teacher" for teacher in teachers)
    lines = [f"| size | T | {header} | difference |", "|---|---:|---:|---:|---:|"]
    for size in SIZES:
        one, both = _of(runs, "fer2013-kd", size), _of(runs, "fer2013-kd-ensemble", size)
        temperature = next((run.result.temperature for run in (one, both) if run), None) or ""
        lines.append(
            f"| {size} | {temperature} | {_pct(_test(one))} | {_pct(_test(both))} | {_gap(_test(one), _test(both))} |"
        )
    return "\n".join(lines)


def fer2013_family_choice(runs: list[Run]) -> str:
    """Per size, the most accurate KD student on val among every family's (what the store should serve)."""
    lines = [
        "| size | most accurate on val | val | test | MicroExpNet KD test | difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        candidates = [run for run in runs if run.size == size and run.result.temperature]
        if not candidates:
            continue
        best = max(candidates, key=lambda run: run.result.val_accuracy)
        micro = max((run for run in candidates if run.result.arch.startswith("microexpnet")),
                    key=lambda run: run.result.val_accuracy, default=None)  # fmt: skip
        lines.append(
            f"| {size} | {best.result.arch} {best.label} | {_pct(best.result.val_accuracy)} | {_pct(_test(best))} | "
            f"{_pct(_test(micro))} | {_gap(_test(micro), _test(best))} |"
        )
    return "\n".join(lines)


def fer2013_sweep_table(root: Path, plot: Path | None = None) -> str:
    """Validation accuracy per temperature of each size's short KD runs (what chose T), and the chosen T."""
    sweeps = {}
    for path in sorted(root.rglob(SWEEP)):
        if (sweep := read(path, SweepResult)) is not None and sweep.results:
            sweeps[split_model_name(next(iter(sweep.results.values())).arch)[1]] = sweep
    if not sweeps:
        return "*no finished sweep yet*"
    temperatures = sorted({t for sweep in sweeps.values() for t in sweep.results})
    lines = ["| size | " + " | ".join(f"T={t:g}" for t in temperatures) + " | chosen T |",
             "|---|" + "---:|" * (len(temperatures) + 1)]  # fmt: skip
    series = {}
    for size in (size for size in SIZES if size in sweeps):
        values = {t: r.val_accuracy for t, r in sweeps[size].results.items()}
        series[f"MicroExpNet-{size}"] = values
        row = " | ".join(_pct(values.get(t)) for t in temperatures)
        lines.append(f"| {size} | {row} | {sweeps[size].best_temperature:g} |")
    if plot is not None:
        plots.accuracy_vs_temperature(series, plot, "FER2013 validation accuracy vs temperature (short runs)")
    return "\n".join(lines)


def fer2013_confusion_plots(runs: list[Run], plots_dir: Path) -> None:
    """PrivateTest confusion matrices (centre crop) of the teacher and the KD students."""
    chosen = {"teacher": _of(runs, "fer2013-teacher")}
    chosen |= {f"kd_{size.lower()}": _of(runs, "fer2013-kd", size) for size in SIZES}
    for name, run in chosen.items():
        if run is not None and (test := run.result.test) is not None:
            title = f"{run.result.arch} on FER2013 PrivateTest ({100 * test.accuracy:.1f}%)"
            plots.confusion_matrix(test.confusion_matrix, test.classes, plots_dir / f"fer2013_{name}.png", title)


def selected_temperature(cells: list[Cell], size: str) -> float | None:
    """Of ``cells`` (a temperature sweep's), the temperature whose cell at ``size`` has the best mean selection-split
    accuracy: test folds are not looked at."""
    scores = {c.temperature: c.selection_accuracy for c in cells if c.size == size and c.selection_accuracy is not None}
    return max(scores, key=scores.get) if scores else None  # type: ignore[arg-type]


def _cells(cells: list[Cell], recipe: str) -> list[Cell]:
    return [cell for cell in cells if cell.recipe == recipe]


def kd_table(cells: list[Cell]) -> str:
    """ckplus-vanilla against ckplus-kd, beside the temperature ckplus-temperature picked on its selection splits."""
    sweep = _cells(cells, "ckplus-temperature")
    lines = [
        "| size | vanilla | KD | T | T picked on the selection splits | KD − vanilla |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        vanilla = next((c for c in _cells(cells, "ckplus-vanilla") if c.size == size), None)
        kd = next((c for c in _cells(cells, "ckplus-kd") if c.size == size), None)
        picked = selected_temperature(sweep, size)
        gap = _gap(vanilla.result.mean if vanilla else None, kd.result.mean if kd else None)
        temperature = kd.temperature if kd else None
        lines.append(f"| {size} | {_cv(vanilla)} | {_cv(kd)} | {temperature or '—'} | {picked or '—'} | {gap} |")
    return "\n".join(lines)


def pooling_table(cells: list[Cell]) -> str:
    grid = {(c.result.mode, c.size, c.pooling): c for c in _cells(cells, "ckplus-pooling")}
    modes = ("random", "subject")
    header = "| size | " + " | ".join(f"{p} ({m})" for m in modes for p in POOLINGS) + " |"
    lines = [header, "|---|" + "---:|" * (len(POOLINGS) * len(modes))]
    for size in SIZES:
        lines.append(f"| {size} | " + " | ".join(_cv(grid.get((m, size, p))) for m in modes for p in POOLINGS) + " |")
    return "\n".join(lines)


def temperature_table(cells: list[Cell], plot: Path | None = None) -> str:
    grid = {(c.size, c.temperature): c for c in _cells(cells, "ckplus-temperature")}
    temperatures = sorted({t for _, t in grid if t is not None})
    if not temperatures:
        return "*no finished cells yet*"
    lines = ["| size | " + " | ".join(f"T={t:g}" for t in temperatures) + " |",
             "|---|" + "---:|" * len(temperatures)]  # fmt: skip
    series: dict[str, dict[float, float]] = {}
    for size in SIZES:
        row = {t: grid[(size, t)] for t in temperatures if (size, t) in grid}
        series[f"MicroExpNet-{size}"] = {t: cell.result.mean for t, cell in row.items()}
        lines.append(f"| {size} | " + " | ".join(_cv(row.get(t)) for t in temperatures) + " |")
    if plot is not None and any(series.values()):
        plots.accuracy_vs_temperature({k: v for k, v in series.items() if v}, plot, "CK+ accuracy vs temperature")
    return "\n".join(lines)


def report(runs_root: Path, plots_dir: Path | None = None) -> str:
    fer, ck = runs_root / "fer2013", runs_root / "ckplus"
    runs, cells = find_runs(fer), find_cells(ck)
    fig = fer_fig = None
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        fig, fer_fig = plots_dir / "ckplus_accuracy_vs_temperature.png", plots_dir / "fer2013_sweep.png"
        fer2013_confusion_plots(runs, plots_dir)
    return "\n\n".join(
        [
            "## FER2013 (train / val = PublicTest / test = PrivateTest)",
            fer2013_table(runs),
            "## FER2013 KD vs vanilla (PrivateTest, %)",
            fer2013_kd_vs_vanilla(runs),
            "## FER2013 label smoothing vs KD (PrivateTest, %)",
            fer2013_smoothing_vs_kd(runs),
            "## FER2013 students of a better teacher (PrivateTest, %)",
            fer2013_teacher_effect(runs),
            "## FER2013 most accurate student per size on val (all families; PrivateTest, %)",
            fer2013_family_choice(runs),
            "## FER2013 temperature sweep (validation accuracy, %)",
            fer2013_sweep_table(fer, fer_fig),
            "## CK+ vanilla vs KD (subject-independent 10-fold CV)",
            kd_table(cells),
            "## CK+ pooling variants (Table II; 5-fold CV, random vs subject-independent)",
            pooling_table(cells),
            "## CK+ accuracy vs temperature (Fig. 1; subject-independent 5-fold CV)",
            temperature_table(cells, fig),
        ]
    )
