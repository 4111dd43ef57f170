"""Uploads: an image's bytes (a multipart file field ``image`` or a raw body with an image content type), a batch's
(repeated multipart file fields ``images``), a video in a temporary file (the multipart file field ``video``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.errors import ApiError, ErrorCode

FIELD = "image"
BATCH_FIELD = "images"
VIDEO_FIELD = "video"
VIDEO_TYPES: tuple[str, ...] = ("video/mp4", "video/webm", "video/x-msvideo")
_VIDEO_ACCEPTED = {*VIDEO_TYPES, "video/avi", "video/msvideo", "video/quicktime", "application/octet-stream"}
IMAGE_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp")
# Spellings clients send for the same formats, and the type for "the server should look at the bytes".
_ACCEPTED = {*IMAGE_TYPES, "image/jpg", "image/pjpeg", "image/x-png", "image/x-ms-bmp", "application/octet-stream"}

# OpenAPI description of the request body, which the endpoints read themselves (to stream-limit it).
REQUEST_BODY = {
    "required": True,
    "description": f"the image ({', '.join(IMAGE_TYPES)}) as a multipart file field `{FIELD}` or as the raw body",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {FIELD: {"type": "string", "format": "binary"}},
                "required": [FIELD],
            }
        },
        **{media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_TYPES},
    },
}


BATCH_REQUEST_BODY = {
    "required": True,
    "description": f"the images ({', '.join(IMAGE_TYPES)}) as repeated multipart file fields `{BATCH_FIELD}`",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {BATCH_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
                "required": [BATCH_FIELD],
            }
        }
    },
}


VIDEO_REQUEST_BODY = {
    "required": True,
    "description": f"the video ({', '.join(VIDEO_TYPES)}) as the multipart file field `{VIDEO_FIELD}`",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {VIDEO_FIELD: {"type": "string", "format": "binary"}},
                "required": [VIDEO_FIELD],
            }
        }
    },
}


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str  # as declared by the client, lower case, without parameters


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _check_type(media: str) -> None:
    check_type(media, _ACCEPTED, IMAGE_TYPES)


def check_type(media: str, accepted: set[str], named: tuple[str, ...]) -> None:
    """415 unless `media` is one of `accepted` (the types `named` to the client and their other spellings)."""
    if media not in accepted:
        shown = media or "none"
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"content type {shown} is not accepted; send {', '.join(named)} or multipart/form-data",
            {"accepted": [*named, "multipart/form-data"]},
        )


async def read_upload(request: Request) -> Upload:
    """FastAPI dependency: the uploaded image's bytes, checked for an accepted content type."""
    media = _media_type(request.headers.get("content-type"))
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=16) as form:
            part = form.get(FIELD)
            if not isinstance(part, UploadFile):
                raise ApiError(422, ErrorCode.MISSING_IMAGE, f"multipart body has no file field named {FIELD!r}")
            part_type = _part_type(part)
            _check_type(part_type)
            upload = Upload(await part.read(), part_type)
    else:
        _check_type(media)
        upload = Upload(await request.body(), media)
    if not upload.data:
        raise ApiError(400, ErrorCode.INVALID_IMAGE, "the image is empty")
    return upload


def _part_type(part: UploadFile) -> str:
    # Browsers send application/octet-stream (or nothing) for files they cannot type.
    return _media_type(part.content_type) or "application/octet-stream"


def multipart_only(request: Request, field: str) -> None:
    """415 unless the request is multipart/form-data (whose file fields `field` hold the uploads)."""
    media = _media_type(request.headers.get("content-type"))
    if media != "multipart/form-data":
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"content type {media or 'none'} is not accepted; send multipart/form-data with file fields {field!r}",
            {"accepted": ["multipart/form-data"]},
        )


async def read_batch(request: Request, max_images: int, max_bytes: int) -> list[bytes | ApiError]:
    """FastAPI dependency body: each image of a batch in upload order, or the error that image alone gets."""
    multipart_only(request, BATCH_FIELD)
    async with request.form(max_files=max_images, max_fields=16) as form:
        parts = [part for part in form.getlist(BATCH_FIELD) if isinstance(part, UploadFile)]
        if not parts:
            raise ApiError(422, ErrorCode.MISSING_IMAGE, f"multipart body has no file field named {BATCH_FIELD!r}")
        total = sum(part.size or 0 for part in parts)
        if total > max_bytes:
            raise ApiError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the batch's images are {total} bytes together; the limit is {max_bytes}",
                {"max_bytes": max_bytes, "max_images": max_images},
            )
        images: list[bytes | ApiError] = []
        for part in parts:
            try:
                _check_type(_part_type(part))
                data = await part.read()
                if not data:
                    raise ApiError(400, ErrorCode.INVALID_IMAGE, "the image is empty")
                images.append(data)
            except ApiError as error:
                images.append(error)
    return images


async def read_video(request: Request) -> AsyncIterator[Path]:
    """FastAPI dependency: the uploaded video in a temporary file (OpenCV reads videos from paths), deleted after."""
    multipart_only(request, VIDEO_FIELD)
    async with request.form(max_files=1, max_fields=16) as form:
        part = form.get(VIDEO_FIELD)
        if not isinstance(part, UploadFile):
            raise ApiError(422, ErrorCode.MISSING_IMAGE, f"multipart body has no file field named {VIDEO_FIELD!r}")
        check_type(_part_type(part), _VIDEO_ACCEPTED, VIDEO_TYPES)
        if not part.size:
            raise ApiError(400, ErrorCode.INVALID_VIDEO, "the video is empty")
        # The parser spooled the part to an unnamed file; FFmpeg wants a name.
        with tempfile.NamedTemporaryFile(prefix="microexp-video-", delete=False) as file:
            path = Path(file.name)
            try:
                await run_in_threadpool(shutil.copyfileobj, part.file, file, 1024 * 1024)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
