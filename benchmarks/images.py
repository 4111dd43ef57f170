"""The speed benchmarks' images: scikit-image's astronaut (a real photograph shipped in the package) on a larger,
face-free background, with the face box known, and its face as an already-cropped 48x48 one. The detection
benchmark's scenes are in benchmarks/scenes.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data

from model_store.preprocess import Box

# The astronaut's face in skimage.data.astronaut() (x, y, width, height), as both detectors find it.
ASTRONAUT_FACE: Box = (178, 65, 92, 100)


@dataclass(frozen=True)
class FacePhoto:
    name: str
    bgr: np.ndarray
    faces: list[Box]  # ground truth, in this image's pixels


def astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def fitted(background: np.ndarray, width: int, height: int) -> np.ndarray:
    """The background scaled to cover width x height and centre-cropped to it."""
    factor = max(width / background.shape[1], height / background.shape[0])
    scaled = cv2.resize(background, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    top = (scaled.shape[0] - height) // 2
    left = (scaled.shape[1] - width) // 2
    return np.ascontiguousarray(scaled[top : top + height, left : left + width])


def place(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch


def one_face_photo(width: int, height: int) -> FacePhoto:
    """The astronaut photo scaled to the frame's height and centred on a wider background: one face."""
    photo = astronaut()
    factor = height / photo.shape[0]
    scaled = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    canvas = fitted(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), width, height)  # a face-free photograph
    left = (width - scaled.shape[1]) // 2
    place(canvas, scaled, left, 0)
    x, y, w, h = ASTRONAUT_FACE
    box = (left + round(x * factor), round(y * factor), round(w * factor), round(h * factor))
    return FacePhoto(f"astronaut-{width}x{height}", canvas, [box])


def cropped_face(side: int = 48) -> np.ndarray:
    """An already-cropped grayscale face, as FER2013 stores them."""
    x, y, w, h = ASTRONAUT_FACE
    face = cv2.cvtColor(astronaut()[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY)
    return cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {image.shape} image as JPEG")
    return encoded.tobytes()
