"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.api.deps import detectors, registry, settings
from service.detect import Detectors
from service.errors import ApiError, ErrorCode, responses
from service.registry import Catalog, ModelRegistry
from service.schemas import HealthResponse, ReadyResponse
from service.settings import Settings

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    return HealthResponse()


def ready_catalog(config: Settings, models: ModelRegistry) -> Catalog:
    """The loaded models, or 503 until the default size is served (shared with the OIP's server-ready)."""
    catalog = models.catalog
    if config.default_size not in catalog.defaults:
        loaded = ", ".join(catalog.models) or "none"
        raise ApiError(
            503,
            ErrorCode.NOT_READY,
            f"the default size {config.default_size} is not loaded from {models.root} (loaded: {loaded})",
        )
    return catalog


@router.get(
    "/readyz",
    summary="Models are loaded and verified",
    response_model=ReadyResponse,
    responses=responses(503),
)
async def readyz(
    config: Annotated[Settings, Depends(settings)],
    models: Annotated[ModelRegistry, Depends(registry)],
    available: Annotated[Detectors, Depends(detectors)],
) -> ReadyResponse:
    """Ready when the default size and the default detector are served: requests that name neither would fail
    otherwise."""
    catalog = ready_catalog(config, models)
    problem = available.default_problem()
    if problem is not None:
        raise ApiError(503, ErrorCode.NOT_READY, f"the default detector {available.default} is unavailable: {problem}")
    return ReadyResponse(served=dict(catalog.served), defaults=dict(catalog.defaults))
