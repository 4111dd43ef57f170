"""One image through the service: decode, detect, crop each face as the trainer does, classify all at once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from model_store.faces import FaceDetector
from model_store.preprocess import Box, ViewCount, crop_face, eye_angle, face_views, to_gray
from service.decode import DecodedImage, decode
from service.inference import LoadedModel
from service.schemas import Timing


@dataclass(frozen=True)
class FaceResult:
    box: Box
    score: float | None  # None when the whole image was taken as the face
    aligned: bool  # turned so that the eyes are level (alignment asked for and the detector gave landmarks)
    probabilities: np.ndarray  # in the model's label order, averaged over the views


@dataclass(frozen=True)
class Analysis:
    image: DecodedImage
    model: LoadedModel
    detector: str | None
    views: ViewCount
    faces: list[FaceResult]
    timing: Timing


def analyse(
    data: bytes,
    model: LoadedModel,
    detector: FaceDetector | None,
    max_faces: int,
    max_pixels: int,
    *,
    align: bool = False,
    views: ViewCount = ViewCount.CENTRE,
) -> Analysis:
    """Faces in an uploaded image with their expression probabilities; `detector` None: the image is one face.

    `align`: turn each face whose detector gave eye landmarks so that the eyes are level; `views`: average the
    probabilities over that many test-time views of each face.
    """
    start = time.perf_counter()
    image = decode(data, max_pixels)
    decoded = time.perf_counter()
    height, width = image.bgr.shape[:2]
    spec = model.spec
    detections = None if detector is None else detector.detect(image.bgr)[:max_faces]
    detected = time.perf_counter()
    if detections is None:
        found: list[tuple[Box, float | None, bool]] = [((0, 0, width, height), None, False)]
        regions = [image.bgr]  # an already-cropped face is used whole, as the trainer uses cropped datasets
    else:
        found = [(face.box, face.score, align and eye_angle(face.landmarks) is not None) for face in detections]
        regions = [
            crop_face(image.bgr, face.box, spec.face_margin, face.landmarks if align else ()) for face in detections
        ]
    # Cropping before the grayscale conversion gives the same pixels (the conversion is per pixel) and
    # converts only the faces rather than the whole photograph.
    inputs = [face_views(to_gray(region), spec, views) for region in regions]
    prepared = time.perf_counter()
    labels = len(model.metadata.labels)
    if inputs:
        # Every view of every face in one run: [faces * views] rows, averaged back to one row per face.
        probabilities = model.classify(np.concatenate(inputs)).reshape(len(inputs), views, labels).mean(axis=1)
    else:
        probabilities = np.empty((0, labels), np.float32)
    classified = time.perf_counter()
    return Analysis(
        image=image,
        model=model,
        detector=None if detector is None else detector.name,
        views=views,
        faces=[
            FaceResult(box, score, aligned, probs)
            for (box, score, aligned), probs in zip(found, probabilities, strict=True)
        ],
        timing=Timing(
            decode_ms=(decoded - start) * 1000,
            detect_ms=(detected - decoded) * 1000,
            preprocess_ms=(prepared - detected) * 1000,
            inference_ms=(classified - prepared) * 1000,
        ),
    )
