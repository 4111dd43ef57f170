"""Image preprocessing shared by the trainer and the service (one implementation, no torch).

A face goes through the same steps in training and in serving, so a model sees at inference what it saw
when it was trained:

1. grayscale (``to_gray``),
2. square crop around the detected face box with a margin (``crop_face``); training sets that are already
   cropped faces (FER2013, CK+48) skip this step,
3. resize to the training data's native resolution (``native_size``, e.g. 48 px for FER2013) so that a sharp
   high-resolution face gets the same blur as the training images, then to ``resize_size``,
4. centre crop to ``input_size`` (training takes the paper's eight corner/side crops of the same grid),
5. scale to float32 ``(pixel * scale - mean) / std`` in NCHW layout.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class PreprocessSpec(BaseModel):
    """How a model's input is made from a face image; stored in each model's metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: int = Field(84, ge=8, le=512, description="model input height = width, pixels")
    resize_size: int = Field(96, ge=8, le=640, description="face resized to this before the centre crop")
    native_size: int | None = Field(
        48, ge=8, le=640, description="faces first resized to this (the training data's resolution)"
    )
    grayscale: bool = True
    scale: float = Field(1.0 / 255.0, gt=0)
    mean: float = 0.0
    std: float = Field(1.0, gt=0)
    # FER2013's faces fill 96-97% of their frame as measured by both detectors on 600 test images (upscaled and
    # padded so a detector can see them), so a detected box grown by 2% per side frames a face as in training.
    face_margin: float = Field(0.02, ge=0, le=1, description="box grown by this fraction on each side")

    def model_post_init(self, _context: object) -> None:
        if self.resize_size < self.input_size:
            raise ValueError("resize_size must be at least input_size")


Box = tuple[int, int, int, int]  # x, y, width, height in image pixels


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA; 8 or 16 bit) as a 2-D uint8 array."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}")


def square_box(box: Box, margin: float, width: int, height: int) -> Box:
    """The square around `box`, grown by `margin` on each side and clipped to the image."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = round(max(0.0, cx - side / 2.0))
    y0 = round(max(0.0, cy - side / 2.0))
    x1 = round(min(float(width), cx + side / 2.0))
    y1 = round(min(float(height), cy + side / 2.0))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def crop_face(gray: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The face region of a grayscale image (a view, no copy)."""
    x, y, w, h = square_box(box, margin, gray.shape[1], gray.shape[0])
    return gray[y : y + h, x : x + w]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] > size or image.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_grid(gray_face: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A grayscale face at ``resize_size`` x ``resize_size``, via the native resolution."""
    if spec.native_size is not None:
        gray_face = resize(gray_face, spec.native_size)
    return resize(gray_face, spec.resize_size)


def crop_offsets(spec: PreprocessSpec) -> list[tuple[int, int]]:
    """(top, left) of the paper's eight crops: four corners, then the middles of the four sides."""
    far = spec.resize_size - spec.input_size
    mid = far // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (0, mid), (mid, 0), (mid, far), (far, mid)]


def centre_offset(spec: PreprocessSpec) -> tuple[int, int]:
    mid = (spec.resize_size - spec.input_size) // 2
    return mid, mid


def face_input(gray_face: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One grayscale face as the uint8 input_size x input_size centre crop the model classifies."""
    grid = to_grid(gray_face, spec)
    top, left = centre_offset(spec)
    return grid[top : top + spec.input_size, left : left + spec.input_size]


def to_tensor(faces: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 faces [N, H, W] as the model's float32 input [N, 1, H, W]."""
    out = faces.astype(np.float32)[:, None]
    factor = spec.scale / spec.std
    offset = spec.mean / spec.std
    out *= factor
    if offset:
        out -= offset
    return out
