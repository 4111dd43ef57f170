"""How far YuNet's recall reaches on the scene benchmark, and what each step costs in false faces and time.

The service runs YuNet at one working size and one score threshold (with a second look only when nothing is found).
This sweep asks what any setting of those could give: the first look at each working size, alone or with two more
looks at the image turned by ±TURN degrees (faces turned in the photograph, which YuNet finds worse: docs/results.md),
every threshold from one pass at the lowest. A turned look's boxes are turned back about the image's centre; looks
are merged by non-maximum suppression, the more confident box kept. Matching and counting are the detection
section's (IoU >= 0.4).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.detection import iou, match, yunet_path
from benchmarks.scenes import Scene
from model_store.faces import YuNetDetector
from model_store.preprocess import Box

SIDES = (320, 480, 640)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
TURN = 25  # degrees; the scenes turn faces by up to 20 and FER2013's faces are often tilted already
MERGE_IOU = 0.3  # YuNet's own suppression threshold (the service's nms_threshold)

Candidate = tuple[Box, float]


def turned_look(detector: YuNetDetector, image: np.ndarray, angle: float) -> list[Candidate]:
    """The first look at the image turned by `angle` about its centre, boxes turned back (same size)."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    back = cv2.invertAffineTransform(matrix)
    found = []
    for face in detector.first_look(turned):
        x, y, w, h = face.box
        cx, cy = back @ np.array([x + w / 2, y + h / 2, 1.0])
        found.append(((round(cx - w / 2), round(cy - h / 2), w, h), face.score))
    return found


def candidates(detector: YuNetDetector, image: np.ndarray, turns: bool) -> list[Candidate]:
    found = [(face.box, face.score) for face in detector.first_look(image)]
    if turns:
        found += turned_look(detector, image, TURN) + turned_look(detector, image, -TURN)
    return found


def merged(found: list[Candidate], threshold: float) -> list[Box]:
    """The boxes scoring at least `threshold`, overlapping ones suppressed in favour of the more confident."""
    kept: list[Box] = []
    for box, _ in sorted((c for c in found if c[1] >= threshold), key=lambda c: -c[1]):
        if all(iou(box, other) < MERGE_IOU for other in kept):
            kept.append(box)
    return kept


def sweep(
    detector: YuNetDetector,
    labelled: list[tuple[Scene, np.ndarray]],
    empty: list[tuple[Scene, np.ndarray]],
    turns: bool,
) -> list[dict[str, object]]:
    """Recall (all, FER2013's faces), false positives per labelled and per face-free scene, at every threshold."""
    times = []
    looks = {}
    for key, images in (("labelled", labelled), ("empty", empty)):
        looks[key] = []
        for scene, image in images:
            start = time.perf_counter()
            looks[key].append((scene, candidates(detector, image, turns)))
            times.append(time.perf_counter() - start)
    rows = []
    for threshold in THRESHOLDS:
        faces = found = fer_faces = fer_found = 0
        false = {"labelled": 0, "empty": 0}
        for key, scenes in looks.items():
            for scene, found_here in scenes:
                boxes = merged(found_here, threshold)
                hits = match([face.box for face in scene.faces], boxes)
                false[key] += len(boxes) - sum(hit is not None for hit in hits)
                for face, hit in zip(scene.faces, hits, strict=True):
                    faces += 1
                    found += hit is not None
                    fer_faces += face.source == "fer2013"
                    fer_found += face.source == "fer2013" and hit is not None
        rows.append(
            {
                "threshold": threshold,
                "recall": found / faces,
                "recall_fer2013": fer_found / fer_faces if fer_faces else None,
                "false_positives_per_scene": false["labelled"] / len(labelled),
                "false_positives_per_empty_scene": false["empty"] / len(empty),
            }
        )
    return [{**row, "ms_median": float(np.median(times)) * 1e3} for row in rows]


def run(store_root: Path, sets: dict[str, list[tuple[Scene, np.ndarray]]]) -> dict[str, object]:
    """The sweep over SIDES x (no turns, turns) x THRESHOLDS on the labelled and face-free scenes."""
    rows = []
    for side in SIDES:
        detector = YuNetDetector(yunet_path(store_root), max_side=side, score_threshold=min(THRESHOLDS))
        for turns in (False, True):
            for row in sweep(detector, sets["scenes"], sets["empty"], turns):
                rows.append({"max_side": side, "turns": [0, TURN, -TURN] if turns else [0], **row})
    return {"scenes": len(sets["scenes"]), "empty_scenes": len(sets["empty"]), "rows": rows}
