"""The benchmark's images: real face photos placed on larger backgrounds, with the face boxes known.

The faces are scikit-image's astronaut (a real photograph shipped in the package) and, when the shared data
folder is present, FER2013 test faces (real, 48x48 grayscale, many people). The backgrounds are face-free
photographs from scikit-image, so every face in an image is one the benchmark put there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from model_store.preprocess import Box

# The astronaut's face in skimage.data.astronaut() (x, y, width, height), as both detectors find it.
ASTRONAUT_FACE: Box = (178, 65, 92, 100)
# The head and shoulders around it: enough context for a detector, as a photo of a person would give.
ASTRONAUT_HEAD: Box = (118, 0, 212, 260)


@dataclass(frozen=True)
class FacePhoto:
    name: str
    bgr: np.ndarray
    faces: list[Box]  # ground truth, in this image's pixels


def astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def backgrounds() -> list[np.ndarray]:
    """Face-free colour photographs from scikit-image."""
    images = [data.coffee(), data.rocket(), data.hubble_deep_field(), data.immunohistochemistry()]
    return [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in images]


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
    canvas = fitted(backgrounds()[0], width, height)
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


def astronaut_composites(count: int, width: int, height: int, seed: int = 0) -> list[FacePhoto]:
    """The astronaut's head and shoulders at random sizes and places on the backgrounds, one per image."""
    rng = np.random.default_rng(seed)
    head_x, head_y, head_w, head_h = ASTRONAUT_HEAD
    head = astronaut()[head_y : head_y + head_h, head_x : head_x + head_w]
    grounds = backgrounds()
    photos = []
    for index in range(count):
        # Face heights from 1/8 to 1/3 of the frame: a portrait to a person across a room.
        face_h = rng.uniform(height / 8, height / 3)
        factor = face_h / ASTRONAUT_FACE[3]
        patch = cv2.resize(head, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        fx, fy, fw, fh = ASTRONAUT_FACE
        left = fx - head_x  # the face's offset inside the head patch, mirrored with the patch
        if rng.random() < 0.5:
            patch = cv2.flip(patch, 1)
            left = head_w - left - fw
        x = int(rng.integers(0, width - patch.shape[1]))
        y = int(rng.integers(0, height - patch.shape[0]))
        canvas = fitted(grounds[index % len(grounds)], width, height)
        place(canvas, patch, x, y)
        box = (x + round(left * factor), y + round((fy - head_y) * factor), round(fw * factor), round(fh * factor))
        photos.append(FacePhoto(f"astronaut-composite-{index}", canvas, [box]))
    return photos


def fer_composites(fer_test: Path, count: int, width: int, height: int, seed: int = 0) -> list[FacePhoto]:
    """FER2013 test faces (real photos, tightly cropped) enlarged and placed on the backgrounds, one per image.

    FER2013's crops fill most of their frame, so each is padded with its own edge pixels before placing it:
    a detector needs a little context around a face, as a photograph gives.
    """
    files = sorted(fer_test.glob("*/*.jpg")) or sorted(fer_test.glob("*/*.png"))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=min(count, len(files)), replace=False)
    grounds = backgrounds()
    photos = []
    for index, file_index in enumerate(chosen):
        gray = cv2.imread(str(files[file_index]), cv2.IMREAD_GRAYSCALE)
        side = int(rng.uniform(height / 6, height / 3))
        face = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
        pad = side // 4
        patch = cv2.cvtColor(cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)
        x = int(rng.integers(0, width - patch.shape[1]))
        y = int(rng.integers(0, height - patch.shape[0]))
        canvas = fitted(grounds[index % len(grounds)], width, height)
        place(canvas, patch, x, y)
        photos.append(FacePhoto(f"fer2013-{files[file_index].stem}", canvas, [(x + pad, y + pad, side, side)]))
    return photos
