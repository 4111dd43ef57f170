"""Which model should answer a size by default? Two candidate models per size, end to end on the scene benchmark.

Each scene (benchmarks/scenes.py) goes, as a JPEG, through the service's own ``analyse`` with the default server's
detector, alignment and views, once per candidate; a face is right when a detection matches it (IoU >= 0.4) and
its expression is the face's label, a missed face is wrong. Three labellings, each scored separately because each
favours the models trained on it: FER2013's own labels of the FER2013 faces, FER+'s majority labels of the same
faces (ties and unknown / not-a-face majorities left out), and CK+'s labels (posed, a neutral judge for both).
Contempt faces and labels count like any other: a seven-class model cannot answer them. The comparison of two
candidates is paired (the same faces), so its standard error is that of the mean per-face difference.

    python -m benchmarks.model_choice --candidates M=dsvgg5_m,dsvgg5-ferplus_m XXS=dsvgg5_xxs,dsvgg5-ferplus_xxs
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.detection import default_size, make_detector, match
from benchmarks.end_to_end import LastImageDetector, paired, predicted, proportion
from benchmarks.images import encode_jpeg
from benchmarks.scenes import background_images, labelled_pools
from benchmarks.scenes import scene as make_scene
from benchmarks.server import REPO, SHARED
from model_store.store import ModelStore
from model_store.vocabulary import split_model_name
from service.inference import load_model
from service.pipeline import analyse
from service.settings import Settings
from trainer.data import FERPLUS_SPLITS, ferplus_votes, majority_kept
from trainer.data import FERPLUS_VOTE_COLUMNS as VOTE_LABELS

SCENES = 240


def ferplus_majority(ferplus: Path) -> dict[str, str]:
    """FER+ test image stem → its majority label, for the faces the majority protocol keeps."""
    paths, votes = ferplus_votes(ferplus / FERPLUS_SPLITS["test"])
    kept = majority_kept(votes)
    return {
        path.stem: VOTE_LABELS[int(row[: len(VOTE_LABELS)].argmax())]
        for path, row, keep in zip(paths, votes, kept, strict=True)
        if keep
    }


def compare(store_root: Path, candidates: dict[str, list[str]], scene_count: int) -> dict[str, object]:
    settings = Settings(store=store_root)
    store = ModelStore(store_root)
    models = {}
    for name in (name for names in candidates.values() for name in names):
        family, size = split_model_name(name)
        models[name] = load_model(store.resolve(size, family=family), threads=1)
    detector = LastImageDetector(make_detector(settings.detector, default_size(settings.detector), store_root))
    majority = ferplus_majority(SHARED / "datasets" / "ferplus")
    pools, grounds = labelled_pools(), background_images()
    outcomes: dict[str, dict[str, list[bool | None]]] = {name: {} for name in models}
    for index in range(scene_count):
        scene = make_scene(index, pools, grounds)
        data = encode_jpeg(scene.bgr)
        truths = [face.box for face in scene.faces]
        for name, model in models.items():
            size = model.metadata.size
            found = analyse(data, model, detector, settings.max_faces, settings.max_pixels,
                            align=settings.align, views=settings.views_for(size))  # fmt: skip
            for face, hit in zip(scene.faces, match(truths, [f.box for f in found.faces]), strict=True):
                answer = None if hit is None else predicted(model, found.faces[hit].probabilities)
                labellings = {"ckplus": face.label} if face.source == "ckplus" else {
                    "fer2013_labels": face.label, "ferplus_majority": majority.get(face.name),
                }  # fmt: skip
                for labelling, label in labellings.items():
                    if label is not None:
                        outcomes[name].setdefault(labelling, []).append(None if answer is None else answer == label)
    result: dict[str, object] = {}
    for size, (base, other) in candidates.items():
        result[size] = {
            labelling: {
                base: proportion(outcomes[base][labelling]),
                other: proportion(outcomes[other][labelling]),
                f"{other} - {base}": paired(outcomes[other][labelling], outcomes[base][labelling]),
            }
            for labelling in outcomes[base]
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_choice", description=__doc__)
    parser.add_argument("--candidates", nargs="+", required=True, help="SIZE=BASE,OTHER model names")
    parser.add_argument("--scenes", type=int, default=SCENES)
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--label", default="run")
    args = parser.parse_args(argv)
    candidates = {size.upper(): names.split(",") for size, _, names in (c.partition("=") for c in args.candidates)}
    result = compare(args.store, candidates, args.scenes)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "benchmarks" / "history" / f"{stamp}-model-choice-{args.label}.json"
    record = {"time": stamp, "scenes": args.scenes, "settings": "the default server's", "results": result}
    out.write_text(json.dumps(record, indent=2, default=float) + "\n")
    for size, labellings in result.items():
        for labelling, scores in labellings.items():
            print(size, labelling, {k: round(v.get("accuracy", v.get("difference")), 4) for k, v in scores.items()})
    print(out)


if __name__ == "__main__":
    main()
