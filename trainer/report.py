"""Paper-style tables from the ``result.json`` files that runs leave behind (``python -m trainer report``).

Expected layout under the runs root (what the Makefile's experiment targets write):
    fer2013/teacher/, fer2013/teacher2/, fer2013/ensemble/, fer2013/sweep/<size>/T<t>/,
    fer2013/{vanilla,kd,kd-ensemble}/<size>/, fer2013/families{,-e60,-e90,-64,-e60-ensemble}/<family>_<size>/
    ckplus/<mode>-k<folds>/<size>-<pooling>-<vanilla|kd-T<t>>/   (cross-validation cells)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from trainer import plots
from trainer.models.microexpnet import POOLINGS, SIZES

CELL = re.compile(r"^(?P<size>m|s|xs|xxs)-(?P<pooling>v|p1|p2|p12)-(?:(?P<vanilla>vanilla)|kd-T(?P<t>[0-9.]+))$")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _cv(result: dict | None) -> str:
    if result is None:
        return "—"
    return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f}"


def cv_cells(grid: Path) -> dict[tuple[str, str, float | None], dict]:
    """(size, pooling, temperature or None for vanilla) → CV result, for every finished cell of a grid folder."""
    cells = {}
    for result_file in sorted(grid.glob("*/result.json")):
        match = CELL.match(result_file.parent.name)
        if match and (data := _load(result_file)) is not None:
            temperature = None if match["vanilla"] else float(match["t"])
            cells[(match["size"].upper(), match["pooling"], temperature)] = data
    return cells


def _selection_accuracy(cell_dir: Path) -> float | None:
    """Mean validation (selection split) accuracy over a CV cell's folds: what picks T without touching test."""
    values = [r["val_accuracy"] for f in sorted(cell_dir.glob("fold*/result.json")) if (r := _load(f))]
    return sum(values) / len(values) if values else None


# MicroExpNet students: on labels only, on labels smoothed by 0.1, by KD from the first teacher, from the ensemble.
STUDENT_KINDS = ("vanilla", "smoothing", "kd", "kd-ensemble")
# The other families' runs (Makefile fer2013-families*): folder → what sets its runs apart.
FAMILY_FOLDERS = {
    "families": "kd",
    "families-e60": "kd, 60 epochs",
    "families-e90": "kd, 90 epochs",
    "families-64": "kd, 64x64 input",
    "families-e60-ensemble": "kd from the ensemble, 60 epochs",
    "families-e60-ensemble-strong": "kd from the ensemble, strong augmentation, 60 epochs",
    "families-e60-ensemble-nodropout": "kd from the ensemble, no dropout, 60 epochs",
    "families-e60-ensemble-nodropout-ema": "kd from the ensemble, no dropout, weight average, 60 epochs",
}
SEED_FOLDER = re.compile(r"(?P<recipe>families-[\w-]+)-seed(?P<seed>\d+)")  # a FAMILY_FOLDERS recipe on one more seed


def _run_label(label: str, result: dict) -> str:
    """A run reported before its last epoch says so (``trainer conclude``)."""
    if result.get("finished", True):
        return label
    return f"{label} (stopped at epoch {result['epochs_run']} of {result['epochs_planned']})"


def _fer2013_runs(root: Path) -> list[tuple[str, Path]]:
    """(row label, run folder) of every FER2013 run the report knows, teachers first."""
    runs = [("teacher", root / "teacher"), ("teacher 2", root / "teacher2"), ("teacher ensemble", root / "ensemble")]
    for kind in STUDENT_KINDS:
        runs += [(f"MicroExpNet-{size} {kind}", root / kind / size.lower()) for size in SIZES]
    folders = [(root / folder, kind) for folder, kind in FAMILY_FOLDERS.items()]
    # A recipe on other seeds (make fer2013-families-seeds): how much of a difference is seed noise.
    recipes = list(FAMILY_FOLDERS)
    seeds = sorted(
        (recipes.index(m["recipe"]), int(m["seed"]), f)
        for f in root.glob("families-*")
        if (m := SEED_FOLDER.fullmatch(f.name)) and m["recipe"] in FAMILY_FOLDERS
    )
    folders += [(folder, f"{FAMILY_FOLDERS[recipes[r]]}, seed {seed}") for r, seed, folder in seeds]
    for folder, kind in folders:
        runs += [(f"{run.name} {kind}", run) for run in sorted(folder.glob("*_*"))]
    return runs


def fer2013_table(root: Path) -> str:
    lines = [
        "| model | parameters | val | test (centre crop) | test (8 crops + flips) | T |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, run in _fer2013_runs(root):
        if (r := _load(run / "result.json")) is not None:
            name = f"{label} ({r['arch']})" if label.startswith("teacher") else _run_label(label, r)
            lines.append(
                f"| {name} | {r['parameters']:,} | {_pct(r['val_accuracy'])} | {_pct(r.get('test_accuracy'))} | "
                f"{_pct(r.get('test_accuracy_8crop'))} | {r['temperature'] or ''} |"
            )
    return "\n".join(lines)


def fer2013_teacher_effect(root: Path) -> str:
    """Does a better teacher make a better student? The same students distilled from teacher 1 and the ensemble."""
    teachers = [_load(root / name / "result.json") for name in ("teacher", "ensemble")]
    header = " | ".join(f"from {_pct(t and t['test_accuracy'])} teacher" for t in teachers)
    lines = [f"| size | T | {header} | difference |", "|---|---:|---:|---:|---:|"]
    for size in SIZES:
        one, both = (_load(root / kind / size.lower() / "result.json") for kind in ("kd", "kd-ensemble"))
        gap = f"{100 * (both['test_accuracy'] - one['test_accuracy']):+.1f}" if one and both else "—"
        temperature = (one or both or {}).get("temperature") or ""
        lines.append(
            f"| {size} | {temperature} | {_pct(one and one['test_accuracy'])} | "
            f"{_pct(both and both['test_accuracy'])} | {gap} |"
        )
    return "\n".join(lines)


def fer2013_family_choice(root: Path) -> str:
    """Per size, the most accurate run on val among every family's students (what the store should serve)."""
    lines = [
        "| size | most accurate on val | val | test | MicroExpNet KD test | difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    results = [(label, r) for label, run in _fer2013_runs(root) if (r := _load(run / "result.json")) is not None]
    for size in SIZES:
        candidates = [
            (label, r) for label, r in results if r["arch"].endswith(f"_{size.lower()}") and r.get("temperature")
        ]
        if not candidates:
            continue
        label, best = max(candidates, key=lambda c: c[1]["val_accuracy"])
        micro = max((r for _, r in candidates if r["arch"].startswith("microexpnet")), key=lambda r: r["val_accuracy"],
                    default=None)  # fmt: skip
        gap = f"{100 * (best['test_accuracy'] - micro['test_accuracy']):+.1f}" if micro else "—"
        lines.append(
            f"| {size} | {_run_label(label, best)} | {_pct(best['val_accuracy'])} | {_pct(best['test_accuracy'])} | "
            f"{_pct(micro and micro['test_accuracy'])} | {gap} |"
        )
    return "\n".join(lines)


def fer2013_sweep_table(root: Path, plot: Path | None = None) -> str:
    """Validation accuracy per temperature of each size's short KD runs (what chose T), and the chosen T."""
    sweeps = {size: data for size in SIZES if (data := _load(root / "sweep" / size.lower() / "sweep.json"))}
    if not sweeps:
        return "*no finished sweep yet*"
    temperatures = sorted({float(t) for data in sweeps.values() for t in data["results"]})
    lines = ["| size | " + " | ".join(f"T={t:g}" for t in temperatures) + " | chosen T |",
             "|---|" + "---:|" * (len(temperatures) + 1)]  # fmt: skip
    series = {}
    for size, data in sweeps.items():
        values = {float(t): r["val_accuracy"] for t, r in data["results"].items()}
        series[f"MicroExpNet-{size}"] = values
        row = " | ".join(_pct(values.get(t)) for t in temperatures)
        lines.append(f"| {size} | {row} | {data['best_temperature']:g} |")
    if plot is not None:
        plots.accuracy_vs_temperature(series, plot, "FER2013 validation accuracy vs temperature (short runs)")
    return "\n".join(lines)


def fer2013_kd_vs_vanilla(root: Path) -> str:
    lines = [
        "| size | vanilla test | KD test | KD − vanilla | vanilla 8-crop | KD 8-crop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        vanilla, kd = (_load(root / kind / size.lower() / "result.json") for kind in ("vanilla", "kd"))
        gap = f"{100 * (kd['test_accuracy'] - vanilla['test_accuracy']):+.1f}" if kd and vanilla else "—"
        lines.append(
            f"| {size} | {_pct(vanilla and vanilla['test_accuracy'])} | {_pct(kd and kd['test_accuracy'])} | {gap} | "
            f"{_pct(vanilla and vanilla['test_accuracy_8crop'])} | {_pct(kd and kd['test_accuracy_8crop'])} |"
        )
    return "\n".join(lines)


def fer2013_smoothing_vs_kd(root: Path) -> str:
    """Label smoothing, the teacher-free regulariser, beside vanilla and KD (sizes where it was run)."""
    lines = ["| size | vanilla | label smoothing 0.1 | KD |", "|---|---:|---:|---:|"]
    for size in SIZES:
        runs = [_load(root / kind / size.lower() / "result.json") for kind in ("vanilla", "smoothing", "kd")]
        if runs[1] is not None:
            lines.append(f"| {size} | " + " | ".join(_pct(r and r["test_accuracy"]) for r in runs) + " |")
    return "\n".join(lines)


def fer2013_confusion_plots(root: Path, plots_dir: Path) -> None:
    """PrivateTest confusion matrices (centre crop) of the teacher and the KD students."""
    runs = {"teacher": root / "teacher"} | {f"kd_{size.lower()}": root / "kd" / size.lower() for size in SIZES}
    for name, run in runs.items():
        if (result := _load(run / "result.json")) is not None:
            test = result["test"]
            title = f"{result['arch']} on FER2013 PrivateTest ({100 * test['accuracy']:.1f}%)"
            plots.confusion_matrix(test["confusion_matrix"], test["classes"], plots_dir / f"fer2013_{name}.png", title)


def kd_table(grid: Path, sweep: Path) -> str:
    """Vanilla vs KD cells of ``grid``, KD at the temperature the ``sweep`` grid picked on its selection splits."""
    cells = cv_cells(grid)
    lines = ["| size | vanilla | KD | T (picked on selection splits) | KD − vanilla |", "|---|---:|---:|---:|---:|"]
    for size in SIZES:
        vanilla = cells.get((size, "p12", None))
        best_t = selected_temperature(sweep, size)
        best = cells.get((size, "p12", best_t)) if best_t is not None else None
        gap = f"{100 * (best['mean'] - vanilla['mean']):+.1f}" if best and vanilla else "—"
        lines.append(f"| {size} | {_cv(vanilla)} | {_cv(best)} | {best_t if best_t is not None else '—'} | {gap} |")
    return "\n".join(lines)


def pooling_table(runs: Path, folds: int) -> str:
    grids = {mode: cv_cells(runs / f"{mode}-k{folds}") for mode in ("random", "subject")}
    header = "| size | " + " | ".join(f"{p} ({m})" for m in grids for p in POOLINGS) + " |"
    lines = [header, "|---|" + "---:|" * (len(POOLINGS) * len(grids))]
    for size in SIZES:
        row = [_cv(grids[m].get((size, p, None))) for m in grids for p in POOLINGS]
        lines.append(f"| {size} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def temperature_table(grid: Path, plot: Path | None = None) -> str:
    cells = cv_cells(grid)
    temperatures = sorted({t for (_, p, t) in cells if t is not None and p == "p12"})
    if not temperatures:
        return "*no finished cells yet*"
    lines = ["| size | " + " | ".join(f"T={t:g}" for t in temperatures) + " |",
             "|---|" + "---:|" * len(temperatures)]  # fmt: skip
    series: dict[str, dict[float, float]] = {}
    for size in SIZES:
        row = {t: cells[(size, "p12", t)] for t in temperatures if (size, "p12", t) in cells}
        series[f"MicroExpNet-{size}"] = {t: r["mean"] for t, r in row.items()}
        lines.append(f"| {size} | " + " | ".join(_cv(row.get(t)) for t in temperatures) + " |")
    if plot is not None and any(series.values()):
        plots.accuracy_vs_temperature({k: v for k, v in series.items() if v}, plot, "CK+ accuracy vs temperature")
    return "\n".join(lines)


def selected_temperature(grid: Path, size: str) -> float | None:
    """The temperature whose cell has the best mean selection-split accuracy (test folds are not looked at)."""
    scores = {}
    for cell in grid.glob(f"{size.lower()}-p12-kd-T*"):
        if (score := _selection_accuracy(cell)) is not None:
            scores[float(cell.name.rsplit("T", 1)[1])] = score
    return max(scores, key=scores.get) if scores else None


def report(runs: Path, plots_dir: Path | None = None) -> str:
    fig = fer_fig = None
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        fig, fer_fig = plots_dir / "ckplus_accuracy_vs_temperature.png", plots_dir / "fer2013_sweep.png"
        fer2013_confusion_plots(runs / "fer2013", plots_dir)
    return "\n\n".join(
        [
            "## FER2013 (train / val = PublicTest / test = PrivateTest)",
            fer2013_table(runs / "fer2013"),
            "## FER2013 KD vs vanilla (PrivateTest, %)",
            fer2013_kd_vs_vanilla(runs / "fer2013"),
            "## FER2013 label smoothing vs KD (PrivateTest, %)",
            fer2013_smoothing_vs_kd(runs / "fer2013"),
            "## FER2013 students of a better teacher (PrivateTest, %)",
            fer2013_teacher_effect(runs / "fer2013"),
            "## FER2013 most accurate student per size on val (all families; PrivateTest, %)",
            fer2013_family_choice(runs / "fer2013"),
            "## FER2013 temperature sweep (validation accuracy, %)",
            fer2013_sweep_table(runs / "fer2013", fer_fig),
            "## CK+ vanilla vs KD (subject-independent 10-fold CV)",
            kd_table(runs / "ckplus" / "subject-k10", runs / "ckplus" / "subject-k5"),
            "## CK+ pooling variants (Table II; 5-fold CV, random vs subject-independent)",
            pooling_table(runs / "ckplus", folds=5),
            "## CK+ accuracy vs temperature (Fig. 1; subject-independent 5-fold CV)",
            temperature_table(runs / "ckplus" / "subject-k5", fig),
        ]
    )
