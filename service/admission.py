"""Admission: how many requests a worker handles at once, how many may wait, and how long they may wait.

A request comes here with its whole body already received (``service/body_buffer.py``), so a slow client never
holds a slot. It takes one of ``max_concurrency`` slots for as long as it runs. Up to ``max_queue`` more wait for a
slot; beyond that a request is refused at once with 503 and ``Retry-After`` rather than queued without bound.
Waiting is bounded by ``request_timeout``: a request still without a slot then gets 503. Work already running is
not interrupted (onnxruntime and OpenCV calls cannot be); the size limits bound it. Probes and metrics bypass the
slots so that they answer while the worker is busy.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ApiError, ErrorCode, error_response

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
RETRY_AFTER_SECONDS = 1


def _busy(code: ErrorCode, message: str) -> ApiError:
    return ApiError(
        503,
        code,
        message,
        {"retry_after_seconds": RETRY_AFTER_SECONDS},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, max_concurrency: int, max_queue: int, timeout: float) -> None:
        self.app = app
        self.capacity = max_concurrency + max_queue
        self.timeout = timeout
        self._slots = anyio.Semaphore(max_concurrency)
        self._admitted = 0  # running plus waiting; the event loop is one thread, so no lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self._admitted >= self.capacity:
            message = f"the server is busy ({self.capacity} requests running or waiting); retry shortly"
            await error_response(_busy(ErrorCode.OVERLOADED, message), scope["path"])(scope, receive, send)
            return
        self._admitted += 1
        try:
            acquired = False
            with anyio.move_on_after(self.timeout):
                await self._slots.acquire()
                acquired = True
            if not acquired:
                message = f"no slot came free within {self.timeout:g} s; retry shortly"
                await error_response(_busy(ErrorCode.TIMEOUT, message), scope["path"])(scope, receive, send)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self._slots.release()
        finally:
            self._admitted -= 1
