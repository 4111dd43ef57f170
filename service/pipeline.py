"""Images through the service: decode, detect, crop each face as the trainer does, classify the faces in one run.

``analyse`` takes one image; ``analyse_batch`` several, every face of every image classified in one model run;
service.video takes a video's frames through the same ``find_faces`` and ``classify``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from model_store.faces import FaceDetector
from model_store.preprocess import Box, ViewCount, crop_face, eye_angle, face_views, to_gray
from service.decode import DecodedImage, decode
from service.errors import ApiError
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


@dataclass(frozen=True)
class FoundFaces:
    """The faces found in one image, cropped and ready to classify."""

    found: list[tuple[Box, float | None, bool]]  # box, detector score, aligned
    inputs: list[np.ndarray]  # per face, its views [views, S, S]
    detect_ms: float
    preprocess_ms: float


def find_faces(
    bgr: np.ndarray, model: LoadedModel, detector: FaceDetector | None, max_faces: int, align: bool, views: ViewCount
) -> FoundFaces:
    """The faces in a decoded image as the model's inputs; `detector` None: the image is one face."""
    start = time.perf_counter()
    height, width = bgr.shape[:2]
    spec = model.spec
    detections = None if detector is None else detector.detect(bgr)[:max_faces]
    detected = time.perf_counter()
    if detections is None:
        found: list[tuple[Box, float | None, bool]] = [((0, 0, width, height), None, False)]
        regions = [bgr]  # an already-cropped face is used whole, as the trainer uses cropped datasets
    else:
        found = [(face.box, face.score, align and eye_angle(face.landmarks) is not None) for face in detections]
        regions = [crop_face(bgr, face.box, spec.face_margin, face.landmarks if align else ()) for face in detections]
    # Cropping before the grayscale conversion gives the same pixels (the conversion is per pixel) and
    # converts only the faces rather than the whole photograph.
    inputs = [face_views(to_gray(region), spec, views) for region in regions]
    prepared = time.perf_counter()
    return FoundFaces(found, inputs, (detected - start) * 1000, (prepared - detected) * 1000)


def classify(model: LoadedModel, images: Sequence[FoundFaces], views: ViewCount) -> list[list[FaceResult]]:
    """Each image's faces with their probabilities, from one model run over every view of every face."""
    inputs = [face for image in images for face in image.inputs]
    labels = len(model.metadata.labels)
    if inputs:
        # [faces * views] rows, averaged back to one row per face.
        probabilities = model.classify(np.concatenate(inputs)).reshape(len(inputs), views, labels).mean(axis=1)
    else:
        probabilities = np.empty((0, labels), np.float32)
    results, start = [], 0
    for image in images:
        end = start + len(image.found)
        results.append(
            [
                FaceResult(box, score, aligned, probs)
                for (box, score, aligned), probs in zip(image.found, probabilities[start:end], strict=True)
            ]
        )
        start = end
    return results


def analyse(
    data: bytes,
    model: LoadedModel,
    detector: FaceDetector | None,
    max_faces: int,
    max_pixels: int,
    *,
    align: bool = False,
    views: ViewCount = ViewCount.CENTRE,
    min_side: int = 0,
) -> Analysis:
    """Faces in an uploaded image with their expression probabilities; `detector` None: the image is one face.

    `align`: turn each face whose detector gave eye landmarks so that the eyes are level; `views`: average the
    probabilities over that many test-time views of each face; `min_side`: a large JPEG may be decoded at a reduced
    scale down to this longer side (``service.decode``; 0: whole), its faces still reported in its own pixels.
    """
    (analysis,) = analyse_batch(
        [data], model, detector, max_faces, max_pixels, align=align, views=views, min_side=min_side
    )
    if isinstance(analysis, ApiError):
        raise analysis
    return analysis


def analyse_batch(
    uploads: Sequence[bytes | ApiError],
    model: LoadedModel,
    detector: FaceDetector | None,
    max_faces: int,
    max_pixels: int,
    *,
    align: bool = False,
    views: ViewCount = ViewCount.CENTRE,
    min_side: int = 0,
) -> list[Analysis | ApiError]:
    """``analyse`` for each upload, in order; an upload that is (or raises) an ApiError gives that error in its place.

    The faces of all images are classified in one model run, whose time is every image's ``inference_ms``.
    """
    decoded: list[tuple[DecodedImage, FoundFaces, float] | ApiError] = []
    for upload in uploads:
        try:
            if isinstance(upload, ApiError):
                raise upload
            start = time.perf_counter()
            image = decode(upload, max_pixels, min_side)
            decode_ms = (time.perf_counter() - start) * 1000
            decoded.append((image, find_faces(image.bgr, model, detector, max_faces, align, views), decode_ms))
        except ApiError as error:
            decoded.append(error)
    found = [entry[1] for entry in decoded if not isinstance(entry, ApiError)]
    start = time.perf_counter()
    faces = iter(classify(model, found, views))
    inference_ms = (time.perf_counter() - start) * 1000
    results: list[Analysis | ApiError] = []
    for entry in decoded:
        if isinstance(entry, ApiError):
            results.append(entry)
            continue
        image, image_faces, decode_ms = entry
        timing = Timing(
            decode_ms=decode_ms,
            detect_ms=image_faces.detect_ms,
            preprocess_ms=image_faces.preprocess_ms,
            inference_ms=inference_ms,
        )
        detector_name = None if detector is None else detector.name
        in_upload = [replace(face, box=image.to_upload(face.box)) for face in next(faces)]
        results.append(Analysis(image, model, detector_name, views, in_upload, timing))
    return results
