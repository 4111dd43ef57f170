"""End-to-end accuracy on the scene benchmark: each placed face's expression as the service answers it.

Every scene, as a JPEG, goes through the service's own ``analyse`` (decode, detect, crop, align, test-time views,
classify) for each detector at its service working size x alignment (off, on) x views (1, 2, 16) x model size
(M, S, XS, XXS; the family the service serves by default at each size). A face is answered right when a detection
matches it (IoU >= 0.4, as in the detection section) and the most probable expression of that detection is the
face's label; a missed face counts as wrong, so the figure is what a user gets. The faces' own 48x48 crops, sent
as already-cropped faces (``detect=false``), give the same models' accuracy without a scene around them. Each row
also has its accuracy on the faces every detector found, where detectors differ only in how they frame a face.

Detection runs once per scene and detector (the last image's detections are kept in front of the detector; its
time is the detection section's): every configuration after it runs in full. Haar gives no landmarks, so its
aligned rows would repeat its unaligned ones and are not run.

Comparisons between configurations are paired (the same faces), so their standard errors are those of the mean
per-face difference, smaller than either accuracy's own.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import cv2
import numpy as np

from benchmarks.detection import default_size, detector_names, make_detector, match
from benchmarks.images import encode_jpeg
from benchmarks.report import config_key
from benchmarks.scenes import LabelledFace, background_images, labelled_pools
from benchmarks.scenes import scene as make_scene
from model_store.faces import Face, FaceDetector
from model_store.preprocess import ViewCount
from model_store.vocabulary import SIZES
from service.inference import LoadedModel
from service.pipeline import analyse
from service.registry import ModelRegistry
from service.settings import Settings

ALIGN = (False, True)
VIEWS = tuple(ViewCount)
PROCESSES = os.cpu_count() or 1  # the scenes are independent: one process per core


class LastImageDetector:
    """A detector that answers again for the image it saw last without detecting again."""

    def __init__(self, inner: FaceDetector) -> None:
        self.inner = inner
        self.name = inner.name
        self._key: bytes | None = None
        self._faces: list[Face] = []

    def detect(self, image: np.ndarray) -> list[Face]:
        key = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        if key != self._key:
            self._key, self._faces = key, self.inner.detect(image)
        return self._faces


@dataclass(frozen=True)
class Config:
    detector: str | None  # None: the face's own crop, no detection
    align: bool
    views: ViewCount
    size: str

    def key(self) -> str:
        return config_key(self.detector, self.align, int(self.views), self.size)


# Per labelled face, in one order for every configuration: right, wrong, or None: no detection matched the face.
Outcomes = dict[Config, list[bool | None]]
Costs = dict[Config, list[tuple[float, int]]]


def served_models(store_root: Path) -> dict[str, LoadedModel]:
    """Each size's default model, as the service picks it (MICROEXP_FAMILY unset)."""
    settings = Settings(store=store_root)
    registry = ModelRegistry(store_root, settings.family, settings.ort_threads)
    registry.reload()
    return {size: registry.catalog.model(size) for size in SIZES if size in registry.catalog.defaults}


def predicted(model: LoadedModel, probabilities: np.ndarray) -> str:
    return model.metadata.labels[int(np.argmax(probabilities))]


def proportion(outcomes: Sequence[bool | None]) -> dict[str, float | int]:
    """Accuracy (a missed face counts as wrong) with its binomial standard error."""
    n = len(outcomes)
    p = sum(outcome is True for outcome in outcomes) / n if n else 0.0
    return {"faces": n, "accuracy": p, "se": math.sqrt(p * (1 - p) / n) if n else 0.0}


def paired(better: Sequence[bool | None], base: Sequence[bool | None]) -> dict[str, float]:
    """Mean per-face difference of two configurations on the same faces, with its standard error."""
    diff = np.array([b is True for b in better], float) - np.array([b is True for b in base], float)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"difference": float(diff.mean()), "se": se}


def crop_bytes(face: LabelledFace) -> bytes:
    ok, encoded = cv2.imencode(".png", face.gray)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {face.name}")
    return encoded.tobytes()


def evaluate(store_root: str, indices: list[int]) -> tuple[Outcomes, Costs]:
    """Right or wrong per labelled face, and (classification ms, faces classified) per scene, for every
    configuration, on the scenes `indices` (in one process: the scenes are made here, not sent)."""
    settings = Settings()
    pools = labelled_pools()
    grounds = background_images()
    crops = {face.name: face for pool in pools for face in pool}
    models = served_models(Path(store_root))
    memo = {
        name: LastImageDetector(make_detector(name, default_size(name), Path(store_root)))
        for name, problem in detector_names(Path(store_root)).items()
        if problem is None
    }
    labels = set.intersection(*(set(model.metadata.labels) for model in models.values()))
    outcomes: Outcomes = {}
    costs: Costs = {}
    for index in indices:
        scene = make_scene(index, pools, grounds)
        data = encode_jpeg(scene.bgr)
        truths = [face.box for face in scene.faces]
        for (name, detector), align, views, (size, model) in product(memo.items(), ALIGN, VIEWS, models.items()):
            if align and name == "haar":
                continue
            config = Config(name, align, views, size)
            found = analyse(data, model, detector, settings.max_faces, settings.max_pixels, align=align, views=views)
            timing = found.timing
            costs.setdefault(config, []).append((timing.preprocess_ms + timing.inference_ms, len(found.faces)))
            for face, hit in zip(scene.faces, match(truths, [f.box for f in found.faces]), strict=True):
                if face.label in labels:
                    right = None if hit is None else predicted(model, found.faces[hit].probabilities) == face.label
                    outcomes.setdefault(config, []).append(right)
        for face in scene.faces:
            if face.label not in labels:
                continue
            data = crop_bytes(crops[face.name])
            for views, (size, model) in product(VIEWS, models.items()):
                config = Config(None, False, views, size)
                found = analyse(data, model, None, 1, settings.max_pixels, views=views)
                outcomes.setdefault(config, []).append(predicted(model, found.faces[0].probabilities) == face.label)
    return outcomes, costs


def evaluate_all(store_root: Path, count: int, processes: int) -> tuple[Outcomes, Costs]:
    """`evaluate` on scenes 0..count-1 dealt round to `processes` processes; each configuration's faces come back
    in the same order, so configurations stay paired face by face."""
    chunks = [list(range(start, count, processes)) for start in range(processes)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        parts = list(pool.map(evaluate, [str(store_root)] * processes, chunks))
    outcomes: Outcomes = {}
    costs: Costs = {}
    for part_outcomes, part_costs in parts:
        for config, results in part_outcomes.items():
            outcomes.setdefault(config, []).extend(results)
        for config, spent in part_costs.items():
            costs.setdefault(config, []).extend(spent)
    return outcomes, costs


def default_config(size: str) -> Config:
    """The configuration a request naming only the size gets from a server with default settings."""
    settings = Settings()
    return Config(settings.detector, settings.align, settings.views_for(size), size)


def rows(outcomes: Outcomes, costs: Costs) -> list[dict]:
    # Faces every detector found: there the configurations differ only in what follows detection, and the crops
    # show what the same faces score without a scene.
    found = [[outcome is not None for outcome in results] for config, results in outcomes.items() if config.detector]
    faces = len(next(iter(outcomes.values()), []))
    common = [all(column) for column in zip(*found, strict=True)] if found else [True] * faces
    out = []
    for config, results in outcomes.items():
        row: dict[str, object] = {**proportion(results), "config": config.key()}
        row.update(detector=config.detector, align=config.align, views=int(config.views), size=config.size)
        row["found"] = sum(outcome is not None for outcome in results) / len(results)
        row["on_common"] = proportion([outcome for outcome, keep in zip(results, common, strict=True) if keep])
        if config in costs:
            ms, faces = np.sum(costs[config], axis=0)
            row["classify_ms_per_face"] = float(ms / max(faces, 1))
        plain = Config(config.detector, False, config.views, config.size)
        if config.align and plain in outcomes:
            row["align_gain"] = paired(results, outcomes[plain])
        single = Config(config.detector, config.align, ViewCount.CENTRE, config.size)
        if config.views != ViewCount.CENTRE and single in outcomes:
            row["views_gain"] = paired(results, outcomes[single])
        default = default_config(config.size)
        if config != default and default in outcomes:
            row["vs_default"] = paired(results, outcomes[default])
        out.append(row)
    return out


def run(store_root: Path, scene_count: int, processes: int = PROCESSES) -> dict[str, object]:
    pools = labelled_pools()
    if not pools:
        return {"skipped": "needs FER+ and CK+ in ../shared/datasets (the project's shared data folder)"}
    models = served_models(store_root)
    start = time.perf_counter()
    outcomes, costs = evaluate_all(store_root, scene_count, processes)
    names = sorted({config.detector for config in outcomes if config.detector is not None})
    return {
        "scenes": scene_count,
        "faces": len(next(iter(outcomes.values()))),
        "labels": "FER2013's own on FER+'s pixels and CK+'s, contempt left out (no model predicts it)",
        "models": {size: model.metadata.name for size, model in models.items()},
        "detector_sizes": {name: default_size(name) for name in names},
        "defaults": {size: default_config(size).key() for size in models},
        "processes": processes,
        "seconds": time.perf_counter() - start,
        "rows": rows(outcomes, costs),
    }
