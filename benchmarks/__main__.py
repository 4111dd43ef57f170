"""``python -m benchmarks`` (``make bench``): every benchmark in one run; JSON into benchmarks/history/, tables into
docs/benchmarks.md.

Sections: machine (CPU, cores, versions, FLOP/s peak), model only (onnxruntime, PyTorch eager, the authors'
TensorFlow formulation, the arithmetic floor), face detection on the scene benchmark, end-to-end accuracy on it
(detector x alignment x views x size), camera-sized photographs through the pipeline, worker/thread layouts,
end-to-end HTTP, the default server's requests/s by detector, a video's frames/s over HTTP, int8.
``--quick`` shortens every timing for development (its numbers are not for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    detection,
    end_to_end,
    http_load,
    machine,
    model_speed,
    photo_sizes,
    quantize,
    report,
    video,
    yunet_reach,
)
from benchmarks.official_tf import OFFICIAL
from benchmarks.server import REPO
from model_store.store import ModelStore

HISTORY = REPO / "benchmarks" / "history"
SECTIONS = ("model", "tensorflow", "detection", "accuracy", "photos", "layouts", "http", "detectors", "video", "int8")
# Scenes for the detection and accuracy sections, full and --quick: the accuracy grid runs each scene 60 times.
DETECTION_SCENES = {False: (400, 100), True: (40, 10)}  # labelled scenes, face-free scenes
ACCURACY_SCENES = {False: 240, True: 12}


def official_tf(threads: list[int], seconds: float, rounds: int) -> dict[str, object]:
    try:
        import tensorflow  # noqa: F401  (only whether it is installed; it runs in a subprocess)
    except ImportError:
        return {"skipped": "tensorflow-cpu is not installed (pip install -e '.[bench]')"}
    if not (OFFICIAL / "ck.npz").is_file():
        return {"skipped": f"the authors' weights are not at {OFFICIAL}"}
    runs = []
    for count in threads:
        command = [sys.executable, "-m", "benchmarks.official_tf", "--threads", str(count)]
        command += ["--seconds", str(seconds), "--rounds", str(rounds)]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {"runs": runs}


def trained(store: ModelStore) -> bool:
    names = store.models()
    return bool(names) and all(
        store.metadata(n, store.served_version(n)).metrics.test_accuracy is not None for n in names
    )


def history_name(stamp: str, label: str, quick: bool) -> str:
    """The run's file name: the label (free text, kept whole inside the file) reduced to characters that need no
    quoting in a shell or escaping in a link."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "run"
    return f"{stamp}-{slug}{'-quick' if quick else ''}.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "models", help="model store (default: models/)")
    parser.add_argument("--label", default="run", help="what this run measures, e.g. the change it follows")
    parser.add_argument("--quick", action="store_true", help="short timings, for development")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--layout", help="WORKERSxTHREADS for the HTTP runs instead of the best measured layout")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md and docs/results.md")
    args = parser.parse_args(argv)

    store = ModelStore(args.store)
    seconds = 0.6 if args.quick else 3.0  # per timed figure
    http_seconds = 3 if args.quick else 10
    result: dict[str, object] = {
        "label": args.label,
        "quick": args.quick,
        "store": str(args.store),
        "trained_models": trained(store),
        "machine": machine.describe(),
    }
    started = datetime.now(UTC)
    print(f"[bench] {args.label}: sections {', '.join(args.only)}", file=sys.stderr)
    if "model" in args.only:
        result["peak"] = machine.peak_flops()
        result["model"] = model_speed.run(store, seconds, rounds=3)
        result["optimisation_levels"] = model_speed.optimisation_levels(store, "XXS", seconds / 2)
    if "tensorflow" in args.only:
        result["official_tf"] = official_tf(model_speed.thread_counts(), seconds, rounds=3)
    if "detection" in args.only:
        labelled, empty = DETECTION_SCENES[args.quick]
        sets, missing = detection.decoded_sets(labelled, empty)
        result["detection"] = detection.run(store, seconds / 2, sets, missing)
        if "scenes" in sets and "yunet" not in result["detection"]["unavailable"]:
            result["detection"]["yunet_reach"] = yunet_reach.run(store.root, sets)
    if "accuracy" in args.only:
        result["accuracy"] = end_to_end.run(args.store, ACCURACY_SCENES[args.quick])
    if "photos" in args.only:
        result["photos"] = photo_sizes.run(store, seconds)
    with tempfile.TemporaryDirectory(prefix="microexp-bench-") as tmp:
        logs = Path(tmp)
        layout = tuple(map(int, args.layout.split("x"))) if args.layout else None
        if "layouts" in args.only and layout is None:
            result["layouts"] = http_load.layouts(args.store, http_seconds / 2, logs)
            layout = http_load.best_layout(result["layouts"])
        if "http" in args.only:
            workers, threads = layout or (2, 1)
            result["http"] = http_load.run(args.store, http_seconds, logs, workers, threads)
        if "detectors" in args.only:
            names = [name for name, problem in detection.detector_names(args.store).items() if problem is None]
            result["http_detectors"] = http_load.detectors(args.store, http_seconds, logs, names)
        if "video" in args.only:
            result["video"] = video.run(args.store, logs, repeats=1 if args.quick else 5)
    if "int8" in args.only and not args.quick:
        result["int8"] = (
            quantize.run(store, REPO / "benchmarks" / "out" / "int8", seconds / 3)
            if result["trained_models"]
            else {"skipped": "the store's models are not trained (no test accuracy in their metadata)"}
        )
    result["duration_s"] = (datetime.now(UTC) - started).total_seconds()
    HISTORY.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = HISTORY / history_name(stamp, args.label, args.quick)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"[bench] wrote {path.relative_to(REPO)}", file=sys.stderr)
    if not args.no_docs:
        report.write(HISTORY, REPO / "docs" / "benchmarks.md")
        report.write_results(HISTORY, REPO / "docs" / "results.md")
    print(report.headline(result))


if __name__ == "__main__":
    main()
