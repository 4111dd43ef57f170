"""One error type, rendered in the JSON shape of the API the request was for.

Every failure a client can cause is an ``ApiError`` with a stable code and its HTTP status; FastAPI's
validation errors and Starlette's routing errors are rendered the same way. Requests under ``/v2`` speak the
Open Inference Protocol, whose error body is ``{"error": message}``; every other request gets
``{"error": {"code": ..., "message": ..., "details": ...}}``.
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
    INVALID_VIDEO = "invalid_video"
    VIDEO_TOO_LONG = "video_too_long"
    UNKNOWN_MODEL_SIZE = "unknown_model_size"
    UNKNOWN_VERSION = "unknown_version"
    DETECTOR_UNAVAILABLE = "detector_unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    NOT_READY = "not_ready"
    UNKNOWN_MODEL = "unknown_model"
    INVALID_TENSOR = "invalid_tensor"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    UPLOAD_TIMEOUT = "upload_timeout"
    TIMEOUT = "timeout"
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


class OipErrorResponse(BaseModel):
    """The Open Inference Protocol's error body."""

    error: str = Field(description="what went wrong, for people")


OIP_PREFIX = "/v2"


def speaks_oip(path: str) -> bool:
    return path == OIP_PREFIX or path.startswith(f"{OIP_PREFIX}/")


class ApiError(StarletteHTTPException):
    """A failure the client caused, with its stable code.

    An HTTPException so that FastAPI passes it on unchanged when it is raised while FastAPI reads a JSON body
    (the body limit and the upload timeout raise it from ``receive``); otherwise FastAPI would answer 400.
    """

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        details: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def detail_body(self) -> ErrorDetail:
        return ErrorDetail(code=self.code, message=self.message, details=self.details)


def error_response(error: ApiError, path: str) -> JSONResponse:
    """`error` in the shape of the API that `path` belongs to."""
    body: BaseModel = (
        OipErrorResponse(error=error.message) if speaks_oip(path) else ErrorResponse(error=error.detail_body())
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=error.status, headers=error.headers)


def responses(*statuses: int, model: type[BaseModel] = ErrorResponse) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for each status."""
    return {status: {"model": model, "description": HTTPStatus(status).phrase} for status in sorted(statuses)}


_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


# Starlette types handlers as taking any Exception; each is registered for the one type it names.
async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error, request.url.path)


def _field_message(item: dict[str, Any]) -> str:
    # pydantic names the valid values of an enum or a literal but not the words a boolean takes.
    if item["type"] == "bool_parsing":
        return "Input should be a boolean: true or false (also 1/0, yes/no, on/off)"
    return item["msg"]


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    fields = [
        {"location": ".".join(str(part) for part in item["loc"]), "message": _field_message(item)}
        for item in error.errors()
    ]
    summary = "; ".join(f"{field['location']}: {field['message']}" for field in fields)
    # The Open Inference Protocol answers every malformed request with 400.
    status = 400 if speaks_oip(request.url.path) else 422
    return error_response(
        ApiError(status, ErrorCode.VALIDATION_ERROR, f"invalid request: {summary}", fields), request.url.path
    )


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(error.status_code, ErrorCode.BAD_REQUEST)
    return error_response(ApiError(error.status_code, code, str(error.detail), headers=error.headers), request.url.path)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(
        ApiError(500, ErrorCode.INTERNAL_ERROR, "internal error; see the server log"), request.url.path
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
