"""Per request: an id (``X-Request-ID``), one JSON log line and the Prometheus metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

log = logging.getLogger("microexp.access")
# A caller's own id is kept (to follow a request through several services) when it is safe to log.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_HEADER = "X-Request-ID"
# Set in a request's state by a middleware that saw the client leave before an answer could be sent.
CLIENT_GONE = "client_gone"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for it: not the server's failure


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        offered = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500  # what the client gets if the app fails before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            if state.get(CLIENT_GONE) and status == 500:
                status = CLIENT_CLOSED_REQUEST
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            model = state.get("log_fields", {}).get("model", "")  # set once a model is resolved
            self.metrics.observe(endpoint, model, state.get("model_size", ""), status, seconds)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "endpoint": endpoint,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": (scope.get("client") or ("", 0))[0],
                **state.get("log_fields", {}),
            }
            log.info("request", extra={"fields": fields})
