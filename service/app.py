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

from service.admission import AdmissionMiddleware
from service.api import health, models, oip, page, predict
from service.api import metrics as metrics_api
from service.api.page import STATIC
from service.body_limit import BodyLimitMiddleware
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
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.detectors = detectors
    app.state.metrics = Metrics()
    install_error_handlers(app)
    for module in (predict, models, health, metrics_api, oip, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Added last = outermost: every response, the refusals of the limits included, gets an id, a log line and
    # metrics; an oversized body is refused before it would take a slot.
    app.add_middleware(
        AdmissionMiddleware,
        max_concurrency=settings.max_concurrency,
        max_queue=settings.max_queue,
        timeout=settings.request_timeout,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestObserver, metrics=app.state.metrics)
    return app
