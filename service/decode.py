"""Uploaded bytes to a BGR image, with the pixel limit checked on the header before anything is decoded."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.errors import ApiError, ErrorCode
from service.image_header import HeaderError, read_header


@dataclass(frozen=True)
class DecodedImage:
    bgr: np.ndarray  # uint8 [H, W, 3], EXIF orientation applied
    format: str


def decode(data: bytes, max_pixels: int) -> DecodedImage:
    try:
        header = read_header(data)
    except HeaderError as error:
        raise ApiError(400, ErrorCode.INVALID_IMAGE, f"not a readable image: {error}") from None
    if header.pixels > max_pixels:
        raise ApiError(
            413,
            ErrorCode.IMAGE_TOO_LARGE,
            f"image is {header.width}x{header.height} = {header.pixels} pixels; the limit is {max_pixels}",
            {"width": header.width, "height": header.height, "max_pixels": max_pixels},
        )
    # IMREAD_COLOR applies a JPEG's EXIF orientation and gives 8-bit BGR for every accepted format.
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None:
        raise ApiError(400, ErrorCode.INVALID_IMAGE, f"the {header.format.upper()} image is truncated or corrupt")
    return DecodedImage(bgr, header.format)
