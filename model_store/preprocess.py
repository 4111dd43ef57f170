"""Image preprocessing shared by the trainer and the service (one implementation, no torch).

A face goes through the same steps in training and in serving, so a model sees at inference what it saw
when it was trained:

1. grayscale (``to_gray``),
2. square crop around the detected face box with a margin (``crop_face``), turned so that the eyes are level
   when the detector gave landmarks and alignment is asked for; training sets that are already cropped faces
   (FER2013, CK+48) skip this step,
3. resize to the training data's native resolution (``native_size``, e.g. 48 px for FER2013) so that a sharp
   high-resolution face gets the same blur as the training images, then to ``resize_size``,
4. centre crop to ``input_size`` (training takes the paper's eight corner/side crops of the same grid; test-time
   views, ``face_views``, average the centre crop's or all eight crops' predictions with their mirrors'),
5. scale to float32 ``(pixel * scale - mean) / std`` in NCHW layout.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, Protocol, TypeVar

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
# (x, y) points in image pixels, in YuNet's order: the two eyes (image-left first), nose tip, two mouth corners.
Landmarks = tuple[tuple[float, float], ...]


class Sliceable(Protocol):
    def __getitem__(self, key: Any, /) -> Any: ...


# A numpy array or a torch tensor: the crops below only slice, so the trainer's tensors share them.
Grids = TypeVar("Grids", bound=Sliceable)


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


def square_edges(box: Box, margin: float) -> tuple[int, int, int, int]:
    """Left, top, right and bottom edges of the square around `box` grown by `margin` on each side, unclipped."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return round(cx - side / 2.0), round(cy - side / 2.0), round(cx + side / 2.0), round(cy + side / 2.0)


def square_box(box: Box, margin: float, width: int, height: int) -> Box:
    """The square around `box`, grown by `margin` on each side and clipped to the image."""
    x0, y0, x1, y1 = square_edges(box, margin)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def crop_face(image: np.ndarray, box: Box, margin: float, landmarks: Landmarks = ()) -> np.ndarray:
    """The face region of an image: a view of the square around `box` (``square_box``), or with `landmarks`, the
    same square turned so that the eyes are level (``align_face``)."""
    if eye_angle(landmarks) is not None:
        return align_face(image, box, margin, landmarks)
    x, y, w, h = square_box(box, margin, image.shape[1], image.shape[0])
    return image[y : y + h, x : x + w]


def eye_angle(landmarks: Landmarks) -> float | None:
    """Radians from the image-left eye to the other (0: level, positive: the other eye lower); None without two
    usable eye points."""
    if len(landmarks) < 2:
        return None
    (x0, y0), (x1, y1) = landmarks[0], landmarks[1]
    if not all(math.isfinite(value) for value in (x0, y0, x1, y1)) or (x0, y0) == (x1, y1):
        return None
    return math.atan2(y1 - y0, x1 - x0)


def align_face(image: np.ndarray, box: Box, margin: float, landmarks: Landmarks) -> np.ndarray:
    """The square ``square_box`` crops (before clipping to the image), turned about its centre by the eyes' angle,
    as a new image.

    Turning the image about the eyes' midpoint to level them and then cropping the box's square around where the
    box's centre went is the same as cropping a square turned about the box's centre, which this warps directly.
    Parts outside the image repeat its edge, as the trainer's rotation augmentation does.
    """
    angle = eye_angle(landmarks)
    if angle is None:
        raise ValueError("aligning needs two distinct, finite eye points")
    left, top, right, bottom = square_edges(box, margin)
    out_width, out_height = max(1, right - left), max(1, bottom - top)
    cos, sin = math.cos(angle), math.sin(angle)
    # Output pixel (u, v) samples the image at centre + R(angle) (u - half_width, v - half_height), pixel centres
    # being at integer coordinates; at angle 0 that is pixel (left + u, top + v), the unaligned crop's.
    half_width, half_height = (out_width - 1) / 2.0, (out_height - 1) / 2.0
    cx, cy = left + half_width, top + half_height
    # Warp from only the part of the image the turned square covers, so the cost follows the face, not the photo.
    reach = max(half_width, half_height) * (abs(cos) + abs(sin)) + 2.0
    height, width = image.shape[:2]
    x0 = min(max(0, math.floor(cx - reach)), width - 1)
    y0 = min(max(0, math.floor(cy - reach)), height - 1)
    x1 = max(min(width, math.ceil(cx + reach) + 1), x0 + 1)
    y1 = max(min(height, math.ceil(cy + reach) + 1), y0 + 1)
    to_source = np.array(
        [
            [cos, -sin, cx - x0 - half_width * cos + half_height * sin],
            [sin, cos, cy - y0 - half_width * sin - half_height * cos],
        ]
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(
        image[y0:y1, x0:x1], to_source, (out_width, out_height), flags=flags, borderMode=cv2.BORDER_REPLICATE
    )


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


def centre_crop(grids: Grids, spec: PreprocessSpec) -> Grids:
    """The input_size centre crop of one grid [R, R] or of a batch [..., R, R]."""
    top, left = centre_offset(spec)
    return grids[..., top : top + spec.input_size, left : left + spec.input_size]


def eight_crops(grids: Grids, spec: PreprocessSpec) -> list[Grids]:
    """The paper's eight input_size crops (``crop_offsets`` order) of one grid [R, R] or of a batch [..., R, R]."""
    size = spec.input_size
    return [grids[..., top : top + size, left : left + size] for top, left in crop_offsets(spec)]


def face_input(gray_face: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One grayscale face as the uint8 input_size x input_size centre crop the model classifies."""
    return centre_crop(to_grid(gray_face, spec), spec)


class ViewCount(IntEnum):
    """Test-time views of one face, whose predictions are averaged."""

    CENTRE = 1
    CENTRE_AND_MIRROR = 2
    EIGHT_AND_MIRRORS = 16  # the paper's eight crops and their mirror images


def face_views(gray_face: np.ndarray, spec: PreprocessSpec, views: ViewCount) -> np.ndarray:
    """One grayscale face as `views` uint8 input_size x input_size crops [views, S, S], mirrors last."""
    grid = to_grid(gray_face, spec)
    crops = [centre_crop(grid, spec)] if views < ViewCount.EIGHT_AND_MIRRORS else eight_crops(grid, spec)
    if views > ViewCount.CENTRE:
        crops += [crop[:, ::-1] for crop in crops]
    return np.stack(crops)


def to_tensor(faces: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 faces [N, H, W] as the model's float32 input [N, 1, H, W]."""
    out = faces.astype(np.float32)[:, None]
    factor = spec.scale / spec.std
    offset = spec.mean / spec.std
    out *= factor
    if offset:
        out -= offset
    return out
