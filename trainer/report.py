"""Paper-style tables from the ``result.json`` files that runs leave behind (``python -m trainer report``).

Expected layout under the runs root (what the Makefile's experiment targets write):
    fer2013/teacher/, fer2013/vanilla/<size>/, fer2013/kd/<size>/, fer2013/sweep/<size>/T<t>/
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


def fer2013_table(root: Path) -> str:
    lines = [
        "| model | parameters | val | test (centre crop) | test (8 crops + flips) | T |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    teacher = _load(root / "teacher" / "result.json")
    if teacher:
        lines.append(
            f"| teacher ({teacher['arch']}) | {teacher['parameters']:,} | {_pct(teacher['val_accuracy'])} | "
            f"{_pct(teacher.get('test_accuracy'))} | {_pct(teacher.get('test_accuracy_8crop'))} | |"
        )
    for kind in ("vanilla", "kd"):
        for size in SIZES:
            r = _load(root / kind / size.lower() / "result.json")
            if r:
                lines.append(
                    f"| MicroExpNet-{size} {kind} | {r['parameters']:,} | {_pct(r['val_accuracy'])} | "
                    f"{_pct(r.get('test_accuracy'))} | {_pct(r.get('test_accuracy_8crop'))} | "
                    f"{r['temperature'] or ''} |"
                )
    return "\n".join(lines)


def kd_table(grid: Path) -> str:
    cells = cv_cells(grid)
    lines = ["| size | vanilla | KD | T (picked on selection splits) | KD − vanilla |", "|---|---:|---:|---:|---:|"]
    for size in SIZES:
        vanilla = cells.get((size, "p12", None))
        best_t = selected_temperature(grid, size)
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
    fig = None if plots_dir is None else plots_dir / "ckplus_accuracy_vs_temperature.png"
    return "\n\n".join(
        [
            "## FER2013 (train / val = PublicTest / test = PrivateTest)",
            fer2013_table(runs / "fer2013"),
            "## CK+ vanilla vs KD (subject-independent 10-fold CV)",
            kd_table(runs / "ckplus" / "subject-k10"),
            "## CK+ pooling variants (Table II; 5-fold CV, random vs subject-independent)",
            pooling_table(runs / "ckplus", folds=5),
            "## CK+ accuracy vs temperature (Fig. 1; subject-independent 5-fold CV)",
            temperature_table(runs / "ckplus" / "subject-k5", fig),
        ]
    )
