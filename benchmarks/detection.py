"""Face detection: each detector at each working size on the scene benchmark (benchmarks/scenes.py): the faces it
finds, what else it reports, its time per 640x480 scene; and its share of the in-process pipeline.

A placed face counts as found when a detection overlaps its box by IoU >= 0.4, each detection matched to at most
one face, largest overlaps first; every detection left unmatched is a false positive. 0.4 rather than PASCAL's 0.5
because the placed box is the dataset's crop, a square from brow to chin, while each detector draws its own
convention of a face box (YuNet's is taller than wide, Haar's square reaches past the ears): a detection squarely
on a face can overlap its crop by less than 0.5. The run records the median IoU of the matches and the recall at
0.5 as well, so the choice can be checked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from benchmarks.images import encode_jpeg, one_face_photo
from benchmarks.registry_photos import RegistryUnavailable, registry_scenes
from benchmarks.scenes import ANGLES, Scene, empty_scenes, labelled_pools, photo_scenes, scenes
from benchmarks.server import YUNET
from model_store.faces import DetectorNotInstalledError, FaceDetector, HaarDetector, MTCNNDetector, YuNetDetector
from model_store.preprocess import Box
from model_store.store import ModelStore, yunet_file
from service.inference import load_model
from service.pipeline import analyse
from service.settings import Settings

IOU_THRESHOLD = 0.4
WORKING_SIZES = {"haar": (320, 480, 640), "yunet": (240, 320, 480, 640), "mtcnn": (240, 320, 480, 640)}
SIZE_BINS = ((60, 95), (95, 151), (151, 241))  # placed face sides, thirds of 60-240 px on a log scale


def default_size(name: str) -> int:
    """The service's working size for a detector (MICROEXP_<NAME>_MAX_SIDE's default)."""
    return int(Settings.model_fields[f"{name}_max_side"].default)


def yunet_path(store_root: Path) -> Path:
    """The store's own YuNet file, else the shared reference copy (a store made for a test has none)."""
    path = yunet_file(store_root)
    return path if path.is_file() else YUNET


def make_detector(name: str, max_side: int, store_root: Path) -> FaceDetector:
    """A detector as the service builds it, at `max_side`."""
    if name == "haar":
        return HaarDetector(max_side=max_side)
    if name == "yunet":
        threshold = float(Settings.model_fields["yunet_score_threshold"].default)
        return YuNetDetector(yunet_path(store_root), max_side=max_side, score_threshold=threshold)
    return MTCNNDetector(max_side=max_side)


def detector_names(store_root: Path) -> dict[str, str | None]:
    """Every detector the service knows, with why it cannot run here (None: it can)."""
    names: dict[str, str | None] = {"haar": None, "yunet": None, "mtcnn": None}
    if not yunet_path(store_root).is_file():
        names["yunet"] = f"no YuNet model in {store_root} or at {YUNET}"
    try:
        MTCNNDetector()
    except DetectorNotInstalledError as error:
        names["mtcnn"] = str(error)
    return names


def iou(a: Box, b: Box) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def match(truths: Sequence[Box], found: Sequence[Box], threshold: float = IOU_THRESHOLD) -> list[int | None]:
    """For each true box, the index of the detection matched to it (None: missed); largest overlaps first (on a tie,
    the earlier, more confident detection), each detection used once."""
    pairs = sorted((-iou(truth, box), t, d) for t, truth in enumerate(truths) for d, box in enumerate(found))
    matched: list[int | None] = [None] * len(truths)
    used = set()
    for overlap, t, d in pairs:
        if -overlap < threshold:
            break
        if matched[t] is None and d not in used:
            matched[t] = d
            used.add(d)
    return matched


def decoded(scene: Scene) -> np.ndarray:
    """The scene as the service sees it: through a JPEG (quality 90), decoded."""
    return cv2.imdecode(np.frombuffer(encode_jpeg(scene.bgr), np.uint8), cv2.IMREAD_COLOR)


def size_bin(side: int) -> str | None:
    """The placed faces' size bin of a face side; None past them (the group photographs' faces)."""
    return next((f"{low}-{high - 1}" for low, high in SIZE_BINS if low <= side < high), None)


def tally(counts: dict[str, list[int]], key: str, found: bool) -> None:
    entry = counts.setdefault(key, [0, 0])
    entry[0] += 1
    entry[1] += found


def score(detector: FaceDetector, images: list[tuple[Scene, np.ndarray]]) -> dict[str, object]:
    """Recall (overall, at IoU 0.5 too, by source, angle and face size), false positives and time per scene."""
    faces = found = found_strict = false_positives = 0
    overlaps: list[float] = []
    times: list[float] = []
    by: dict[str, dict[str, list[int]]] = {"source": {}, "angle": {}, "size": {}}
    for scene, image in images:
        start = time.perf_counter()
        boxes = [face.box for face in detector.detect(image)]
        times.append(time.perf_counter() - start)
        truths = [face.box for face in scene.faces]
        matched = match(truths, boxes)
        strict = match(truths, boxes, 0.5)
        for face, hit, strict_hit in zip(scene.faces, matched, strict, strict=True):
            faces += 1
            found += hit is not None
            found_strict += strict_hit is not None
            if hit is not None:
                overlaps.append(iou(face.box, boxes[hit]))
            tally(by["source"], face.source, hit is not None)
            tally(by["angle"], str(face.angle), hit is not None)
            side_bin = size_bin(max(face.box[2:]))
            if side_bin is not None:
                tally(by["size"], side_bin, hit is not None)
        false_positives += len(boxes) - sum(hit is not None for hit in matched)
    return {
        "scenes": len(images),
        "faces": faces,
        "found": found,
        "recall": found / faces if faces else None,
        "recall_iou50": found_strict / faces if faces else None,
        "median_iou": float(np.median(overlaps)) if overlaps else None,
        "false_positives": false_positives,
        "false_positives_per_scene": false_positives / len(images) if images else None,
        "ms_median": float(np.median(times)) * 1e3 if times else None,
        "by": {key: {k: {"faces": n, "found": f} for k, (n, f) in sorted(v.items())} for key, v in by.items()},
    }


def scene_sets(count: int, empty: int) -> tuple[dict[str, list[Scene]], dict[str, str]]:
    """The labelled scenes (when ../shared has the faces), the real photographs, the face-free scenes and the group
    photographs from registry packages (when the registries answer); and why any set is left out."""
    sets = {"photos": photo_scenes(), "empty": empty_scenes(empty)}
    missing = {}
    pools = labelled_pools()
    if pools:
        sets = {"scenes": scenes(count, pools), **sets}
    else:
        missing["scenes"] = "no FER+ or CK+ faces in ../shared"
    try:
        sets["registry"] = registry_scenes()
    except RegistryUnavailable as error:
        missing["registry"] = str(error)
    return sets, missing


def pipeline_share(store: ModelStore, size: str, seconds: float, names: list[str]) -> list[dict[str, object]]:
    """Median stage times of the service's own pipeline on the 640x480 one-face JPEG, per detector."""
    model = load_model(store.resolve(size), threads=1)
    data = encode_jpeg(one_face_photo(640, 480).bgr)
    rows = []
    for name in names:
        detector = make_detector(name, default_size(name), store.root)
        timings = []
        deadline = time.perf_counter() + seconds
        while len(timings) < 3 or time.perf_counter() < deadline:
            timings.append(analyse(data, model, detector, 20, 40_000_000).timing)
        stages = {
            stage: float(np.median([getattr(t, stage) for t in timings]))
            for stage in ("decode_ms", "detect_ms", "preprocess_ms", "inference_ms")
        }
        total = sum(stages.values())
        rows.append(
            {"detector": name, "size": size, **stages, "total_ms": total, "detect_share": stages["detect_ms"] / total}
        )
    return rows


def decoded_sets(count: int, empty: int) -> tuple[dict[str, list[tuple[Scene, np.ndarray]]], dict[str, str]]:
    """`scene_sets`, each scene with its image as the service decodes it."""
    groups, missing = scene_sets(count, empty)
    return {key: [(scene, decoded(scene)) for scene in group] for key, group in groups.items()}, missing


def run(
    store: ModelStore, seconds: float, sets: dict[str, list[tuple[Scene, np.ndarray]]], missing: dict[str, str]
) -> dict[str, object]:
    names = detector_names(store.root)
    usable = [name for name, problem in names.items() if problem is None]
    rows = []
    for name in usable:
        for max_side in WORKING_SIZES[name]:
            detector = make_detector(name, max_side, store.root)
            detector.detect(sets["empty"][0][1])  # the first call allocates
            row: dict[str, object] = {"detector": name, "max_side": max_side, "default": default_size(name) == max_side}
            row.update({key: score(detector, images) for key, images in sets.items()})
            rows.append(row)
    return {
        "iou_threshold": IOU_THRESHOLD,
        "scene_size": "640x480",
        "angles": list(ANGLES),
        "sets": {
            key: {"scenes": len(group), "faces": sum(len(s.faces) for s, _ in group)} for key, group in sets.items()
        },
        "sets_left_out": missing,
        "unavailable": {name: problem for name, problem in names.items() if problem is not None},
        "detectors": rows,
        "pipeline": pipeline_share(store, "XXS", seconds, usable),
    }
