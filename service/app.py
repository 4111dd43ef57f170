"""The FastAPI application: ``create_app(settings)``; the lifespan loads the store and polls it for changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from service.access import AccessMiddleware, KeyRing, RateLimiter
from service.admission import AdmissionMiddleware
from service.api import admin, health, models, oip, page, predict, video
from service.api import metrics as metrics_api
from service.api.page import DOCS_ASSETS, OPENAPI_URL, STATIC
from service.body_buffer import BodyBufferMiddleware
from service.detect import Detectors
from service.errors import install_error_handlers
from service.metrics import Metrics
from service.observability import RequestObserver
from service.registry import ModelRegistry
from service.settings import Settings

log = logging.getLogger("microexp.app")

DESCRIPTION = """Facial-expression recognition with MicroExpNet students.

Upload an image to `/v1/predict`: faces are found (YuNet, the Haar cascade or MTCNN), cropped as in training and
classified by the model size you pick. Errors have the shape `{"error": {"code", "message", "details"}}`.

When the server has API keys, `/v1` and `/v2` need one: `Authorization: Bearer KEY` or `X-API-Key: KEY`.

Clients of Triton or KServe can send preprocessed tensors to the Open Inference Protocol endpoints under
`/v2`, whose errors have the protocol's shape `{"error": "message"}`.
"""


async def _poll_store(registry: ModelRegistry, detectors: Detectors, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(registry.reload)
            await run_in_threadpool(detectors.refresh)
        except Exception:  # a failed check must not end polling; the next one retries
            log.exception("model store reload failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = ModelRegistry(settings.store, settings.family, settings.ort_threads)
    detectors = Detectors(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(registry.reload)
        poller = None
        if settings.reload_interval > 0:
            poller = asyncio.create_task(_poll_store(registry, detectors, settings.reload_interval))
        yield
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    app = FastAPI(
        title="MicroExp expression recognition",
        version=version("microexp"),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by service/api/page.py from local files, under a Content-Security-Policy
        redoc_url=None,
    )
    app.state.settings = settings
    admin_token = settings.admin_secret
    app.state.admin_token = None if admin_token is None else KeyRing([admin_token])
    app.state.registry = registry
    app.state.detectors = detectors
    app.state.metrics = Metrics()
    install_error_handlers(app)
    for module in (predict, models, health, metrics_api, oip, admin, page, video):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    # Added last = outermost, so a request meets them in the reverse order: every response, the refusals included,
    # gets an id, a log line and metrics (RequestObserver); a request without a valid API key or past its client's
    # rate is refused before anything else is spent on it (AccessMiddleware); its whole body is received, within
    # size, time and memory limits, before it may take a slot (BodyBufferMiddleware), so a slow client never
    # holds one; then it waits for a slot (AdmissionMiddleware).
    app.add_middleware(
        AdmissionMiddleware,
        max_concurrency=settings.max_concurrency,
        max_queue=settings.max_queue,
        timeout=settings.request_timeout,
    )
    app.add_middleware(
        BodyBufferMiddleware,
        max_bytes=settings.max_body_bytes,
        limits={video.PATH: settings.video_max_bytes},
        budget=settings.max_buffered_bytes,
        timeout=settings.body_timeout,
        metrics=app.state.metrics,
    )
    api_keys = settings.api_key_list
    app.add_middleware(
        AccessMiddleware,
        api_keys=KeyRing(api_keys) if api_keys else None,
        limiter=None if settings.rate_limit_per_client is None else RateLimiter(settings.rate_limit_per_client),
        metrics=app.state.metrics,
    )
    app.add_middleware(RequestObserver, metrics=app.state.metrics)
    return app
