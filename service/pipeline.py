"""One image through the service: decode, detect, crop each face as the trainer does, classify all at once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from model_store.faces import FaceDetector
from model_store.preprocess import Box, crop_face, face_input, to_gray
from service.decode import DecodedImage, decode
from service.inference import LoadedModel
from service.schemas import Timing


@dataclass(frozen=True)
class FaceResult:
    box: Box
    score: float | None  # None when the whole image was taken as the face
    probabilities: np.ndarray  # in the model's label order


@dataclass(frozen=True)
class Analysis:
    image: DecodedImage
    model: LoadedModel
    detector: str | None
    faces: list[FaceResult]
    timing: Timing


def analyse(
    data: bytes, model: LoadedModel, detector: FaceDetector | None, max_faces: int, max_pixels: int
) -> Analysis:
    """Faces in an uploaded image with their expression probabilities; `detector` None: the image is one face."""
    start = time.perf_counter()
    image = decode(data, max_pixels)
    decoded = time.perf_counter()
    height, width = image.bgr.shape[:2]
    spec = model.spec
    if detector is None:
        found: list[tuple[Box, float | None]] = [((0, 0, width, height), None)]
        regions = [image.bgr]  # an already-cropped face is used whole, as the trainer uses cropped datasets
    else:
        found = [(face.box, face.score) for face in detector.detect(image.bgr)[:max_faces]]
        regions = [crop_face(image.bgr, box, spec.face_margin) for box, _ in found]
    detected = time.perf_counter()
    # Cropping before the grayscale conversion gives the same pixels (the conversion is per pixel) and
    # converts only the faces rather than the whole photograph.
    faces = [face_input(to_gray(region), spec) for region in regions]
    prepared = time.perf_counter()
    labels = len(model.metadata.labels)
    probabilities = model.classify(np.stack(faces)) if faces else np.empty((0, labels), np.float32)
    classified = time.perf_counter()
    return Analysis(
        image=image,
        model=model,
        detector=None if detector is None else detector.name,
        faces=[FaceResult(box, score, probs) for (box, score), probs in zip(found, probabilities, strict=True)],
        timing=Timing(
            decode_ms=(decoded - start) * 1000,
            detect_ms=(detected - decoded) * 1000,
            preprocess_ms=(prepared - detected) * 1000,
            inference_ms=(classified - prepared) * 1000,
        ),
    )
