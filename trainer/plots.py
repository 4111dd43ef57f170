"""PNG plots for run directories and reports (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import ticker

from trainer.records import EpochRecord


def learning_curves(history: Sequence[EpochRecord], path: Path, title: str = "") -> None:
    epochs = [h.epoch for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [h.train_loss for h in history])
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    acc_ax.plot(epochs, [h.train_accuracy for h in history], label="train")
    averaged = bool(history) and history[0].trained_val_accuracy is not None  # a run validating its weight average
    val_label = "validation, weight average" if averaged else "validation"
    acc_ax.plot(epochs, [h.val_accuracy for h in history], label=val_label)
    if averaged:
        acc_ax.plot(epochs, [h.trained_val_accuracy for h in history], label="validation, trained weights")
    acc_ax.set(xlabel="epoch", ylabel="accuracy")
    acc_ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    totals = [max(1, sum(row)) for row in matrix]
    normalised = [[v / t for v in row] for row, t in zip(matrix, totals, strict=True)]
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if normalised[i][j] > 0.5 else "black")  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def accuracy_vs_temperature(series: dict[str, dict[float, float]], path: Path, title: str = "") -> None:
    """The paper's Fig. 1: one line per model size, accuracy at each temperature."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        temps = sorted(points)
        ax.plot(temps, [points[t] for t in temps], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="temperature T", ylabel="accuracy", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def tradeoff(
    points: Sequence[dict], references: Sequence[dict], path: Path, title: str = "FER2013 PrivateTest accuracy"
) -> None:
    """Accuracy vs parameters and vs throughput, one marker per model, one colour per family.

    ``points``: {"family", "size", "parameters", "accuracy", "throughput"}; ``references`` (published or measured
    elsewhere, no throughput here): {"label", "parameters", "accuracy"}, drawn on the parameter panel only.
    """
    fig, (params_ax, speed_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for family in sorted({p["family"] for p in points}):
        mine = sorted((p for p in points if p["family"] == family), key=lambda p: p["parameters"])
        accuracy = [100 * p["accuracy"] for p in mine]
        params_ax.plot([p["parameters"] for p in mine], accuracy, marker="o", label=family)
        speed_ax.scatter([p["throughput"] for p in mine], accuracy, label=family)
        for p in mine:
            params_ax.annotate(p["size"], (p["parameters"], 100 * p["accuracy"]), fontsize=7,
                               xytext=(3, -9), textcoords="offset points")  # fmt: skip
            speed_ax.annotate(p["size"], (p["throughput"], 100 * p["accuracy"]), fontsize=7,
                              xytext=(3, -9), textcoords="offset points")  # fmt: skip
    for ref in references:
        params_ax.scatter(ref["parameters"], 100 * ref["accuracy"], marker="x", color="black")
        params_ax.annotate(ref["label"], (ref["parameters"], 100 * ref["accuracy"]), fontsize=7,
                           xytext=(4, 3), textcoords="offset points")  # fmt: skip
    params_ax.set_xscale("log")
    params_ax.set_xlim(4e4, 4e6)  # room for the labels of the ~1M-parameter references
    params_ax.set(xlabel="parameters", ylabel="accuracy (%)", title=title)
    speed_ax.set_xscale("log")
    # 1-2-5 ticks in plain numbers: the default minor labels (2x10^3, 3x10^3, ...) overlap on these short decades.
    speed_ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    speed_ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    speed_ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    speed_ax.set(xlabel="images/s at batch 256 (onnxruntime, this machine)", ylabel="accuracy (%)",
                 title="accuracy vs throughput")  # fmt: skip
    params_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
