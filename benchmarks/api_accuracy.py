"""Accuracy of served models through the HTTP API, as a user gets it: every face of a labelled test split POSTed to
the real service (``detect=false``: the image is the face) with the model asked for by name.

Splits: FER+ test by its majority protocol (ties and unknown / not-a-face majorities left out, ``trainer.data``),
and FER2013 PrivateTest on the same original pixels with FER2013's own labels (a model that answers a class the
split lacks, e.g. contempt, is wrong there). Results go to ``benchmarks/history/<time>-api-accuracy.json``.

    python -m benchmarks.api_accuracy --models dsvgg5-ferplus_m dsvgg5_m [--ferplus ../shared/datasets/ferplus]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.server import REPO, SHARED, running_service
from trainer.data import FaceDataset, open_dataset

SPLITS = {"ferplus_test_majority": "ferplus", "fer2013_test_original_pixels": "ferplus-fer2013"}
CONNECTIONS = 4


def _answers(url: str, model: str, paths: list[str]) -> list[str | None]:
    """The expression the service answers for each image (None when it answers no face)."""

    def ask(path: str) -> str | None:
        response = client.post(
            f"{url}/v1/predict",
            params={"model": model, "detect": "false"},
            content=Path(path).read_bytes(),
            headers={"content-type": "image/png"},
        )
        response.raise_for_status()
        faces = response.json()["faces"]
        return faces[0]["expression"] if faces else None

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(CONNECTIONS) as pool:
        return list(pool.map(ask, paths))


def score(url: str, model: str, split: FaceDataset) -> dict[str, float | int]:
    answers = _answers(url, model, split.paths)
    truth = [split.classes[label] for label in split.labels]
    correct = sum(answer == label for answer, label in zip(answers, truth, strict=True))
    return {"accuracy": correct / len(truth), "correct": correct, "faces": len(truth)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_accuracy", description=__doc__)
    parser.add_argument("--models", nargs="+", required=True, help="model names, e.g. dsvgg5-ferplus_m")
    parser.add_argument("--ferplus", type=Path, default=SHARED / "datasets" / "ferplus")
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--label", default="run")
    args = parser.parse_args(argv)
    splits = {
        name: open_dataset(f"{kind}:{args.ferplus}", fer_splits=("test",))["test"] for name, kind in SPLITS.items()
    }
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    with tempfile.TemporaryDirectory() as tmp, running_service(args.store, Path(tmp) / "service.log") as service:
        for model in args.models:
            results[model] = {name: score(service.url, model, split) for name, split in splits.items()}
            print(model, {name: round(r["accuracy"], 4) for name, r in results[model].items()}, flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "benchmarks" / "history" / f"{stamp}-api-accuracy-{args.label}.json"
    out.write_text(json.dumps({"time": stamp, "store": str(args.store.name), "results": results}, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
