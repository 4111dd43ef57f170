"""An analysed image with each face's box and top expression drawn on it."""

from __future__ import annotations

from typing import Literal

import cv2

from service.errors import ApiError, ErrorCode
from service.pipeline import Analysis

ImageFormat = Literal["jpeg", "png"]
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png"}

# BGR, one distinct colour per canonical label.
_COLOURS: dict[str, tuple[int, int, int]] = {
    "neutral": (200, 200, 200),
    "anger": (40, 40, 220),
    "contempt": (160, 60, 160),
    "disgust": (40, 150, 40),
    "fear": (200, 120, 30),
    "happiness": (30, 200, 240),
    "sadness": (180, 80, 30),
    "surprise": (30, 140, 250),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_MAX_SIDE = 65535


def annotate(analysis: Analysis, fmt: ImageFormat) -> bytes:
    """The image encoded as `fmt`, drawn over in place (the analysis owns its decoded image)."""
    canvas = analysis.image.bgr
    if fmt == "jpeg" and max(canvas.shape[:2]) > JPEG_MAX_SIDE:
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            f"JPEG holds at most {JPEG_MAX_SIDE} pixels per side; ask for format=png",
            {"width": canvas.shape[1], "height": canvas.shape[0]},
        )
    labels = analysis.model.metadata.labels
    # Line and text sizes follow the image so that labels stay readable on large photographs.
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    scale = thickness * 0.5
    for face in analysis.faces:
        best = int(face.probabilities.argmax())
        label = labels[best]
        colour = _COLOURS.get(label, (255, 255, 255))
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness, cv2.LINE_AA)
        text = f"{label} {face.probabilities[best]:.0%}"
        (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
        top = y - text_h - baseline - 2 * thickness
        if top < 0:  # no room above the box: write inside it
            top = y
        cv2.rectangle(
            canvas, (x, top), (x + text_w + 2 * thickness, top + text_h + baseline + 2 * thickness), colour, -1
        )
        cv2.putText(
            canvas, text, (x + thickness, top + text_h + thickness), _FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA
        )
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if fmt == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", canvas, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {canvas.shape} image as {fmt}")
    return encoded.tobytes()
