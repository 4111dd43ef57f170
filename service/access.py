"""Who may call the API, and how often: API keys, the admin token and the per-client rate limit.

API keys and the rate limit are checked by a middleware that runs before a request's body is read or a slot is
taken (a FastAPI dependency would run only once admission has given the request a slot), so a flood of requests
without a key, or past their client's rate, costs only this check. The admin token guards a few rare endpoints and
is a FastAPI dependency (``service/api/admin.py``).

Secrets are compared as SHA-256 digests with ``hmac.compare_digest``, against every key, so neither a key's
content nor which key matched shows in the time an answer takes.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from service.admission import EXEMPT_PATHS
from service.errors import ApiError, ErrorCode, error_response, speaks_oip
from service.metrics import Metrics

API_KEY_HEADER = "X-API-Key"
# What the middleware may answer on a protected path: no or a wrong key, and past the client's rate.
ACCESS_STATUSES = (401, 429)
# Clients the rate limiter remembers at most (~100 bytes each); past it the least recently seen is forgotten, which
# gives that client a full bucket again.
MAX_TRACKED_CLIENTS = 65_536


def protected(path: str) -> bool:
    """Needs an API key (when keys are configured) and counts against the rate limit: the API, not its probes."""
    api = path.startswith("/v1/") or speaks_oip(path)
    return api and path not in EXEMPT_PATHS


class KeyRing:
    """A set of secrets, matched in constant time."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(secret.encode()).digest() for secret in secrets]
        if not self._digests:
            raise ValueError("a key ring needs at least one secret")

    def match(self, offered: str) -> str | None:
        """A short id of the secret `offered` is (for logs and per-key limits, not the secret), else None."""
        digest = hashlib.sha256(offered.encode()).digest()
        found = None
        for known in self._digests:  # all of them: the time taken does not say which matched
            if hmac.compare_digest(digest, known):
                found = known
        return None if found is None else found.hex()[:12]


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def offered_key(headers: Mapping[bytes, bytes]) -> str | None:
    """The API key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    if token is not None:
        return token
    key = headers.get(API_KEY_HEADER.lower().encode(), b"").decode("latin-1").strip()
    return key or None


def unauthorized(message: str) -> ApiError:
    return ApiError(401, ErrorCode.UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


class RateLimiter:
    """A token bucket per client: ``rate`` requests per second, bursts of up to ``max(rate, 1)``."""

    def __init__(self, rate: float, max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (tokens, when counted)

    def wait(self, client: str, now: float) -> float:
        """Takes a token for `client` and returns 0, or returns the seconds until it would have one."""
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class AccessMiddleware:
    """API keys (when configured), then the per-client rate limit (when configured), for the protected paths.

    The client is the API key when keys are on, else the peer address (uvicorn has already replaced it by the
    X-Forwarded-For client when the peer is a trusted proxy).
    """

    def __init__(self, app: ASGIApp, api_keys: KeyRing | None, limiter: RateLimiter | None, metrics: Metrics) -> None:
        self.app = app
        self.api_keys = api_keys
        self.limiter = limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        error = self._refusal(scope)
        if error is not None:
            await error_response(error, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ApiError | None:
        client = "address:" + (scope.get("client") or ("unknown", 0))[0]
        if self.api_keys is not None:
            offered = offered_key(dict(scope["headers"]))
            if offered is None:
                return unauthorized(f"an API key is required: send Authorization: Bearer KEY or {API_KEY_HEADER}: KEY")
            key_id = self.api_keys.match(offered)
            if key_id is None:
                return unauthorized("the API key is not valid")
            client = "key:" + key_id
        if self.limiter is None:
            return None
        wait = self.limiter.wait(client, time.monotonic())
        if wait == 0:
            return None
        self.metrics.rate_limited.inc()
        retry_after = max(1, math.ceil(wait))
        return ApiError(
            429,
            ErrorCode.RATE_LIMITED,
            f"more than {self.limiter.rate:g} requests per second from this client; retry in {retry_after} s",
            {"rate_per_second": self.limiter.rate, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
