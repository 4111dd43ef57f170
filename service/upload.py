"""The uploaded image's bytes: a multipart file field ``image`` or a raw body with an image content type."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile

from service.errors import ApiError, ErrorCode

FIELD = "image"
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


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str  # as declared by the client, lower case, without parameters


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _check_type(media: str) -> None:
    if media not in _ACCEPTED:
        shown = media or "none"
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"content type {shown} is not accepted; send {', '.join(IMAGE_TYPES)} or multipart/form-data",
            {"accepted": [*IMAGE_TYPES, "multipart/form-data"]},
        )


async def read_upload(request: Request) -> Upload:
    """FastAPI dependency: the uploaded image's bytes, checked for an accepted content type."""
    media = _media_type(request.headers.get("content-type"))
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=16) as form:
            part = form.get(FIELD)
            if not isinstance(part, UploadFile):
                raise ApiError(422, ErrorCode.MISSING_IMAGE, f"multipart body has no file field named {FIELD!r}")
            # Browsers send application/octet-stream (or nothing) for files they cannot type.
            part_type = _media_type(part.content_type) or "application/octet-stream"
            _check_type(part_type)
            upload = Upload(await part.read(), part_type)
    else:
        _check_type(media)
        upload = Upload(await request.body(), media)
    if not upload.data:
        raise ApiError(400, ErrorCode.INVALID_IMAGE, "the image is empty")
    return upload
