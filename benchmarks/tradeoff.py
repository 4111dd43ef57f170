"""``python -m benchmarks.tradeoff``: accuracy vs size vs speed of every served model in the store, as a table and a
plot (docs/results.md), from the models' metadata and the newest benchmark run that timed them.

Accuracy is FER2013 PrivateTest, single centre crop, from each model's metadata; throughput is onnxruntime at batch
256 (the better of one thread and one per core) and latency the batch-1 median at one thread, from
``benchmarks/history/`` (run ``python -m benchmarks --only model`` first when a model is new).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import report
from benchmarks.history import model_rows
from benchmarks.server import REPO
from model_store.store import ModelStore
from model_store.vocabulary import split_model_name
from trainer import plots

# Figures the issue asks to stand beside ours: published on FER2013, or measured here on PrivateTest.
REFERENCES = (
    {"label": "Yadagiri Rao et al. (paper)", "parameters": 58_000, "accuracy": 0.67},
    {"label": "fer package (measured here)", "parameters": 58_423, "accuracy": 0.582},
    {"label": "Wang et al. lightweight VGG (paper)", "parameters": 1_000_000, "accuracy": 0.698},
)


def newest_timed(history: Path, names: set[str]) -> dict | None:
    """The newest benchmark run that timed every model in ``names``."""
    for run in reversed(report.load_runs(history)):
        timed = {row.name for row in model_rows(run)}
        if names <= timed:
            return run
    return None


def points(store: ModelStore, run: dict) -> list[dict]:
    """One row per served model that has a test accuracy (an untrained model has nothing to plot)."""
    out = []
    for name in store.models():
        family, size = split_model_name(name)
        meta = store.metadata(name, store.served_version(name))
        if meta.metrics.test_accuracy is None:
            continue
        latency, throughput = report.model_speed(run, size, family) or (None, None)
        out.append(
            {
                "model": name,
                "family": family,
                "size": size,
                "version": meta.version,
                "parameters": meta.parameters,
                "file_bytes": meta.file_bytes,
                "val_accuracy": meta.metrics.val_accuracy,
                "accuracy": meta.metrics.test_accuracy,
                "latency_ms": latency,
                "throughput": throughput,
            }
        )
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| model | version | parameters | ONNX bytes | val | test | batch-1 median ms | images/s @256 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['version']} | {r['parameters']:,} | {r['file_bytes']:,} | "
            f"{100 * r['val_accuracy']:.1f} | {100 * r['accuracy']:.1f} | {report.fmt(r['latency_ms'], '.3f')} | "
            f"{report.fmt(r['throughput'], ',.0f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tradeoff", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "figures" / "fer2013_tradeoff.png")
    args = parser.parse_args(argv)
    store = ModelStore(args.store)
    run = newest_timed(REPO / "benchmarks" / "history", set(store.models()))
    if run is None:
        raise SystemExit("no benchmark run timed every served model: run `python -m benchmarks --only model` first")
    rows = points(store, run)
    plots.tradeoff(rows, REFERENCES, args.plot)
    print(f"Timings from benchmarks/history/{run['file']}.\n\n{table(rows)}")


if __name__ == "__main__":
    main()
