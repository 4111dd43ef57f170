"""GET /v1/models: every model (family x size) with its versions and their metadata."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from model_store.vocabulary import SIZES, split_model_name
from service.access import ACCESS_STATUSES
from service.api.deps import detectors, registry, settings
from service.detect import Detectors
from service.errors import responses
from service.registry import Catalog, ModelRegistry
from service.schemas import ModelEntry, ModelsResponse, refused_versions
from service.settings import Settings

router = APIRouter(prefix="/v1", tags=["models"])


def _entry(catalog: Catalog, name: str) -> ModelEntry:
    family, size = split_model_name(name)
    served = catalog.models[name][catalog.served[name]].metadata
    default = catalog.defaults.get(size) == name
    decision = catalog.decisions.get(size)
    return ModelEntry(
        name=name,
        family=family,
        size=size,
        default=default,
        why_default=decision.why if default and decision is not None and decision.model == name else None,
        labels=served.labels,
        dataset=served.provenance.dataset,
        default_version=catalog.served[name],
        versions=[catalog.models[name][v].metadata for v in sorted(catalog.models[name])],
    )


@router.get(
    "/models",
    summary="The models this server can use",
    response_model=ModelsResponse,
    responses=responses(503, *ACCESS_STATUSES),
)
async def list_models(
    config: Annotated[Settings, Depends(settings)],
    models: Annotated[ModelRegistry, Depends(registry)],
    available: Annotated[Detectors, Depends(detectors)],
) -> ModelsResponse:
    catalog = models.catalog

    def order(name: str) -> tuple[int, bool, str]:
        size = split_model_name(name)[1]
        return SIZES.index(size), catalog.defaults.get(size) != name, name

    return ModelsResponse(
        default_size=config.default_size,
        families=catalog.families,
        detectors=available.names,
        default_detector=available.default,
        models=[_entry(catalog, name) for name in sorted(catalog.models, key=order)],
        refused=refused_versions(catalog.refused),
    )
