"""Face detection: cost per image and detection rate of each detector at each working size, and its share of
the whole in-process pipeline (decode, detect, crop, classify)."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.images import FacePhoto, astronaut_composites, encode_jpeg, fer_composites, one_face_photo
from benchmarks.server import SHARED, YUNET
from model_store.faces import FaceDetector, HaarDetector, YuNetDetector
from model_store.preprocess import Box
from model_store.store import ModelStore
from service.inference import load_model
from service.pipeline import analyse

FRAMES = ((640, 480), (1280, 720))
WORKING_SIZES = {"haar": (320, 480, 640), "yunet": (160, 240, 320, 480, 640)}
DEFAULT_SIZES = {"haar": 640, "yunet": 320}  # the service's defaults (MICROEXP_*_MAX_SIDE)
FER_TEST = SHARED / "datasets" / "fer2013" / "test"
RATE_FRAME = (1280, 720)


def make_detector(name: str, max_side: int) -> FaceDetector:
    return HaarDetector(max_side=max_side) if name == "haar" else YuNetDetector(YUNET, max_side=max_side)


def detector_names() -> list[str]:
    return ["haar", "yunet"] if YUNET.is_file() else ["haar"]


def median_ms(run, seconds: float, min_calls: int = 3) -> float:
    run()
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def centre_inside(box: Box, truth: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    x, y, w, h = truth
    return x <= cx <= x + w and y <= cy <= y + h


def score(detector: FaceDetector, photos: list[FacePhoto]) -> dict[str, float | int]:
    """Faces found (a detection whose centre is inside the true box) and detections that match no face."""
    found = false_positives = total = 0
    for photo in photos:
        boxes = [face.box for face in detector.detect(photo.bgr)]
        total += len(photo.faces)
        found += sum(any(centre_inside(box, truth) for box in boxes) for truth in photo.faces)
        false_positives += sum(not any(centre_inside(box, truth) for truth in photo.faces) for box in boxes)
    return {"faces": total, "found": found, "rate": found / total if total else 0.0, "false_positives": false_positives}


def rate_sets(count: int) -> dict[str, list[FacePhoto]]:
    width, height = RATE_FRAME
    sets = {"astronaut": [one_face_photo(width, height), *astronaut_composites(count, width, height)]}
    if FER_TEST.is_dir():
        sets["fer2013"] = fer_composites(FER_TEST, 2 * count, width, height)
    return sets


def pipeline_share(store: ModelStore, size: str, seconds: float) -> list[dict[str, object]]:
    """Median stage times of the service's own pipeline on the 640x480 one-face JPEG, per detector."""
    model = load_model(store.resolve(size), threads=1)
    data = encode_jpeg(one_face_photo(640, 480).bgr)
    rows = []
    for name in detector_names():
        detector = make_detector(name, DEFAULT_SIZES[name])
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


def run(store: ModelStore, seconds: float, rate_count: int) -> dict[str, object]:
    frames = {f"{w}x{h}": one_face_photo(w, h) for w, h in FRAMES}
    sets = rate_sets(rate_count)
    rows = []
    for name in detector_names():
        for max_side in WORKING_SIZES[name]:
            detector = make_detector(name, max_side)
            row: dict[str, object] = {
                "detector": name,
                "max_side": max_side,
                "default": DEFAULT_SIZES[name] == max_side,
            }
            row["ms"] = {
                key: median_ms(lambda d=detector, p=photo: d.detect(p.bgr), seconds) for key, photo in frames.items()
            }
            row["rates"] = {key: score(detector, photos) for key, photos in sets.items()}
            rows.append(row)
    return {
        "rate_frame": f"{RATE_FRAME[0]}x{RATE_FRAME[1]}",
        "rate_sets": {key: len(photos) for key, photos in sets.items()},
        "detectors": rows,
        "pipeline": pipeline_share(store, "XXS", seconds),
    }
