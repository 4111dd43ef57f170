"""One error type, one JSON shape: ``{"error": {"code": ..., "message": ..., "details": ...}}``.

Every failure a client can cause is an ``ApiError`` with a stable code and its HTTP status; FastAPI's
validation errors and Starlette's routing errors are rendered in the same shape.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("microexp.errors")


class ErrorCode(StrEnum):
    INVALID_IMAGE = "invalid_image"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    IMAGE_TOO_LARGE = "image_too_large"
    MISSING_IMAGE = "missing_image"
    UNKNOWN_MODEL_SIZE = "unknown_model_size"
    UNKNOWN_VERSION = "unknown_version"
    DETECTOR_UNAVAILABLE = "detector_unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    NOT_READY = "not_ready"
    VALIDATION_ERROR = "validation_error"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL_ERROR = "internal_error"


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="stable, machine-readable")
    message: str = Field(description="for people; may change")
    details: Any | None = Field(None, description="structured context, e.g. the valid values or the failed fields")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: ErrorCode, message: str, details: Any | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=error.code, message=error.message, details=error.details))
    return JSONResponse(body.model_dump(mode="json"), status_code=error.status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for each status."""
    return {status: {"model": ErrorResponse, "description": HTTPStatus(status).phrase} for status in sorted(statuses)}


_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


# Starlette types handlers as taking any Exception; each is registered for the one type it names.
async def _api_error(_: Request, error: ApiError) -> JSONResponse:
    return error_response(error)


async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    fields = [
        {"location": ".".join(str(part) for part in item["loc"]), "message": item["msg"]} for item in error.errors()
    ]
    summary = "; ".join(f"{field['location']}: {field['message']}" for field in fields)
    return error_response(ApiError(422, ErrorCode.VALIDATION_ERROR, f"invalid request: {summary}", fields))


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(error.status_code, ErrorCode.BAD_REQUEST)
    return error_response(ApiError(error.status_code, code, str(error.detail)), headers=error.headers)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(ApiError(500, ErrorCode.INTERNAL_ERROR, "internal error; see the server log"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
