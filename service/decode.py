"""Uploaded bytes to a BGR image, with the pixel limit checked on the header before anything is decoded.

A large JPEG may be decoded at 1/2, 1/4 or 1/8 scale: libjpeg then skips most of the inverse DCT, so a
12-megapixel phone photograph decodes in about a third of the time, and the detector's downscale that follows
starts from a smaller image too (benchmarks: ``large_photos``). Detection works on a copy of a few hundred pixels
and a face is classified at 48, so nothing a face needs is lost while the longer side stays above ``min_side``.
Faces are still reported in the upload's pixels (``DecodedImage.to_upload``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model_store.preprocess import Box
from service.errors import ApiError, ErrorCode
from service.image_header import HeaderError, ImageHeader, read_header

# IMREAD_COLOR and its reduced variants apply a JPEG's EXIF orientation and give 8-bit BGR for every accepted format.
_READ_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True)
class DecodedImage:
    bgr: np.ndarray  # uint8 [H, W, 3], EXIF orientation applied; a large JPEG's at a reduced scale (``reduction``)
    format: str
    width: int  # the upload's own size, as shown (EXIF orientation applied): what boxes are reported in
    height: int

    def to_upload(self, box: Box) -> Box:
        """A box in ``bgr``'s pixels as a box in the upload's."""
        if self.bgr.shape[:2] == (self.height, self.width):
            return box
        sx, sy = self.width / self.bgr.shape[1], self.height / self.bgr.shape[0]
        x, y, w, h = box
        left, top = min(round(x * sx), self.width - 1), min(round(y * sy), self.height - 1)
        right, bottom = min(round((x + w) * sx), self.width), min(round((y + h) * sy), self.height)
        return left, top, max(1, right - left), max(1, bottom - top)


def reduction(header: ImageHeader, min_side: int) -> int:
    """The scale divisor a JPEG is decoded at: the largest of 8, 4 and 2 leaving its longer side at least
    `min_side` (libjpeg rounds up), else 1; always 1 for other formats and for `min_side` 0."""
    if header.format != "jpeg" or min_side <= 0:
        return 1
    longer = max(header.width, header.height)
    return next((d for d in (8, 4, 2) if -(-longer // d) >= min_side), 1)


def decode(data: bytes, max_pixels: int, min_side: int = 0) -> DecodedImage:
    """The upload as BGR pixels; a JPEG whose longer side is at least twice `min_side` at a reduced scale
    (``reduction``; 0: every image whole)."""
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
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _READ_FLAGS[reduction(header, min_side)])
    except cv2.error:
        bgr = None
    if bgr is None:
        raise ApiError(400, ErrorCode.INVALID_IMAGE, f"the {header.format.upper()} image is truncated or corrupt")
    # An EXIF quarter turn swaps the stored width and height; the decoded image shows which way it went.
    height, width = bgr.shape[:2]
    turned = (width > height) != (header.width > header.height) and header.width != header.height
    shown = (header.height, header.width) if turned else (header.width, header.height)
    return DecodedImage(bgr, header.format, *shown)
