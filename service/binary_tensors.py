"""Triton's binary tensor data extension on requests: input tensors sent as raw bytes after the JSON.

tritonclient sends inputs this way unless told ``binary_data=False``: the header
``Inference-Header-Content-Length`` gives the length of the JSON part, and each input whose parameters carry
``binary_data_size`` takes that many bytes, in order, from what follows. Here the bytes become the input's JSON
``data`` before FastAPI reads the body, so that every request goes through the one validation path. Responses
are always JSON, which tritonclient reads whatever it asked for.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import Request, Response
from fastapi.routing import APIRoute

from service.errors import ApiError, ErrorCode

HEADER = "inference-header-content-length"
_DTYPES = {"FP32": np.dtype("<f4")}  # the store's contract fixes model inputs at float32, little-endian on the wire


def _invalid(message: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_TENSOR, f"binary tensor data: {message}")


def inline_binary_tensors(body: bytes, json_length: str) -> bytes:
    """The request as plain JSON, each binary input's bytes turned into its `data`."""
    if not json_length.isdecimal() or int(json_length) > len(body):
        raise _invalid(f"{HEADER} is {json_length!r}, the body has {len(body)} bytes")
    offset = int(json_length)
    try:
        request = json.loads(body[:offset])
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _invalid(f"the first {offset} bytes are not JSON") from None
    inputs = request.get("inputs") if isinstance(request, dict) else None
    for tensor in inputs if isinstance(inputs, list) else []:
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        offset = _inline(tensor, parameters.pop("binary_data_size"), body, offset)
    if offset != len(body):
        raise _invalid(f"{len(body) - offset} bytes after the JSON belong to no input's binary_data_size")
    return json.dumps(request).encode()


def _inline(tensor: dict[str, Any], size: Any, body: bytes, offset: int) -> int:
    dtype = _DTYPES.get(tensor.get("datatype"))
    if dtype is None:
        raise _invalid(f"input {tensor.get('name')!r}: only {', '.join(_DTYPES)} is accepted as binary data")
    if type(size) is not int or size < 0 or size % dtype.itemsize or offset + size > len(body):
        raise _invalid(f"input {tensor.get('name')!r}: binary_data_size {size!r} does not fit the body")
    tensor["data"] = np.frombuffer(body, dtype, size // dtype.itemsize, offset).tolist()
    return offset + size


class BinaryTensorRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_inlined"):
            raw = await super().body()
            json_length = self.headers.get(HEADER)
            self._inlined = raw if json_length is None else inline_binary_tensors(raw, json_length)
        return self._inlined


class BinaryTensorRoute(APIRoute):
    """A route whose handlers read binary tensor requests as the equivalent JSON (FastAPI's custom route class)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def inlining_handler(request: Request) -> Response:
            scope = request.scope
            if HEADER in request.headers:
                # FastAPI reads the JSON made of the body, whatever type the client declared (aiohttp: octet-stream).
                headers = [(key, value) for key, value in scope["headers"] if key != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
            return await handler(BinaryTensorRequest(scope, request.receive))

        return inlining_handler
