"""Camera-sized photographs through the service's pipeline: each stage's time on one-face JPEGs from 640x480 to 24
megapixels, decoded whole and as the server decodes them by default (a large JPEG at a reduced scale,
``Settings.decode_min_side``), with what the reduction changes in the answer: the face's box and probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np

from benchmarks.detection import default_size, iou, make_detector
from benchmarks.images import encode_jpeg, one_face_photo
from model_store.store import ModelStore
from model_store.vocabulary import split_model_name
from service.inference import load_model
from service.pipeline import Analysis, analyse
from service.settings import Settings

SIZES = ((640, 480), (1920, 1080), (4032, 3024), (6000, 4000))  # VGA, full HD, a phone's 12 MP, a camera's 24 MP
STAGES = ("decode_ms", "detect_ms", "preprocess_ms", "inference_ms")
GRAIN = 3.0  # sensor noise (grey levels): a camera's file size (about 4 MB at 12 MP, quality 90) and decoding work


def grainy_jpeg(width: int, height: int) -> tuple[bytes, tuple[int, int, int, int]]:
    photo = one_face_photo(width, height)
    noise = np.random.default_rng(0).normal(0.0, GRAIN, photo.bgr.shape)
    return encode_jpeg(np.clip(photo.bgr + noise, 0, 255).astype(np.uint8)), photo.faces[0]


def timed(run: Callable[[], Analysis], seconds: float) -> tuple[Analysis, dict[str, float]]:
    """The last analysis and each stage's median over at least three runs and `seconds`."""
    analyses = []
    deadline = time.perf_counter() + seconds
    while len(analyses) < 3 or time.perf_counter() < deadline:
        analyses.append(run())
    stages = {stage: float(np.median([getattr(a.timing, stage) for a in analyses])) for stage in STAGES}
    return analyses[-1], {**stages, "total_ms": sum(stages.values())}


def run(store: ModelStore, seconds: float, size: str = "M") -> dict[str, object]:
    settings = Settings()
    family, _ = split_model_name(store.default_name(size))  # the model a request naming the size gets
    model = load_model(store.resolve(size, family=family), threads=1)
    detector = make_detector("yunet", default_size("yunet"), store.root)
    rows = []
    for width, height in SIZES:
        data, truth = grainy_jpeg(width, height)
        row: dict[str, object] = {"width": width, "height": height, "bytes": len(data)}
        answers = {}
        for name, min_side in (("whole", 0), ("default", settings.decode_min_side)):
            once = partial(
                analyse, data, model, detector, settings.max_faces, settings.max_pixels, align=settings.align,
                min_side=min_side,
            )  # fmt: skip
            analysis, stages = timed(once, seconds)
            answers[name] = analysis
            row[name] = {**stages, "decoded": list(analysis.image.bgr.shape[1::-1]), "faces": len(analysis.faces)}
        whole, reduced = answers["whole"].faces, answers["default"].faces
        if whole and reduced:
            row["box_iou"] = iou(whole[0].box, reduced[0].box)
            row["truth_iou"] = {"whole": iou(whole[0].box, truth), "default": iou(reduced[0].box, truth)}
            row["probability_change"] = float(np.abs(whole[0].probabilities - reduced[0].probabilities).max())
            row["same_expression"] = bool(whole[0].probabilities.argmax() == reduced[0].probabilities.argmax())
        rows.append(row)
    return {
        "size": size,
        "model": model.metadata.name,
        "detector": "yunet",
        "decode_min_side": settings.decode_min_side,
        "rows": rows,
    }
