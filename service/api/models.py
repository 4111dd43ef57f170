"""GET /v1/models: every size with its versions and their metadata."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from model_store.metadata import model_name
from service.api.deps import detectors, registry, settings
from service.detect import Detectors
from service.errors import responses
from service.registry import ModelRegistry
from service.schemas import ModelsResponse, SizeModels, refused_versions
from service.settings import Settings

router = APIRouter(prefix="/v1", tags=["models"])


@router.get(
    "/models", summary="The models this server can use", response_model=ModelsResponse, responses=responses(503)
)
async def list_models(
    config: Annotated[Settings, Depends(settings)],
    models: Annotated[ModelRegistry, Depends(registry)],
    available: Annotated[Detectors, Depends(detectors)],
) -> ModelsResponse:
    catalog = models.catalog
    return ModelsResponse(
        default_size=config.default_size,
        detectors=available.names,
        default_detector=available.default,
        sizes=[
            SizeModels(
                size=size,
                name=model_name(config.family, size),
                default_version=catalog.served[size],
                versions=[versions[v].metadata for v in sorted(versions)],
            )
            for size, versions in catalog.models.items()
        ],
        refused=refused_versions(catalog.refused),
    )
