"""Whole request bodies, received before a request takes an inference slot.

A client that sends its body slowly, or never finishes it, must not hold one of the few slots that complete
requests need, so the body is read here, before admission, within three limits:

- size: a declared Content-Length over ``max_bytes`` (or the path's own limit in ``limits``: videos) is refused
  (413) before any of the body is read; a body without one (chunked) is refused as soon as it passes the limit;
- time: a client has ``timeout`` seconds from its request's arrival to send the whole body (408 past it);
- memory: the bodies held at once, all requests together, never pass ``budget`` bytes. Each request counts what it
  has received, from its first byte until its response ends; one that would pass the budget is refused with 503.
  So a slow client holds only what it has sent, and complete requests waiting for a slot are bounded too.

The app then reads the body from memory in the chunks it arrived in (no copy).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import RETRY_AFTER_SECONDS
from service.errors import ApiError, ErrorCode, error_response
from service.metrics import Metrics
from service.observability import CLIENT_GONE

# The rest of a refused body may never come (or is not wanted): the connection cannot carry another request.
_CLOSE = {"Connection": "close"}


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"request body is larger than {limit} bytes",
        {"max_bytes": limit},
        headers=_CLOSE,
    )


class _Refused(Exception):
    def __init__(self, error: ApiError) -> None:
        self.error = error


class BodyBufferMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        limits: Mapping[str, int],
        budget: int,
        timeout: float,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = dict(limits)
        self.budget = budget
        self.timeout = timeout
        self.metrics = metrics
        self.held = 0  # bytes of bodies held now; the event loop is one thread, so no lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(too_large(limit), scope["path"])(scope, receive, send)
            return
        chunks: deque[bytes] = deque()
        received = 0
        try:
            try:
                with anyio.fail_after(self.timeout):
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            scope.setdefault("state", {})[CLIENT_GONE] = True
                            return  # nobody is left to answer
                        body = message.get("body", b"")
                        received += len(body)
                        self._hold(len(body))
                        self._check(received, limit)
                        chunks.append(body)
                        if not message.get("more_body", False):
                            break
            except TimeoutError:
                raise _Refused(self._late()) from None
            await self.app(scope, self._replay(chunks, receive), send)
        except _Refused as refused:
            await error_response(refused.error, scope["path"])(scope, receive, send)
        finally:
            self._hold(-received)

    def _hold(self, change: int) -> None:
        self.held += change
        self.metrics.body_bytes_held.set(self.held)

    def _check(self, received: int, limit: int) -> None:
        if received > limit:
            raise _Refused(too_large(limit))
        if self.held > self.budget:
            raise _Refused(
                ApiError(
                    503,
                    ErrorCode.OVERLOADED,
                    "the server holds as many request bodies as it may; retry shortly",
                    {"retry_after_seconds": RETRY_AFTER_SECONDS},
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS), **_CLOSE},
                )
            )

    def _late(self) -> ApiError:
        return ApiError(
            408,
            ErrorCode.UPLOAD_TIMEOUT,
            f"the request body did not arrive within {self.timeout:g} s",
            {"timeout_seconds": self.timeout},
            headers=_CLOSE,
        )

    @staticmethod
    def _replay(chunks: deque[bytes], receive: Receive) -> Receive:
        async def replay() -> Message:
            if chunks:
                body = chunks.popleft()
                return {"type": "http.request", "body": body, "more_body": bool(chunks)}
            return await receive()  # after the body: the wait for a disconnect

        return replay
