"""The Open Inference Protocol (KServe v2 REST) under /v2, so that Triton and KServe clients work unchanged.

Errors are ``{"error": message}`` (service.errors). The infer endpoints take tensors already preprocessed as
the model's metadata says (service.oip); /v1/predict takes images.
"""

# No `from __future__ import annotations` here: the routes are declared in a function, and FastAPI resolves
# string annotations in the module's globals, where that function's local lookup dependency is not.

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from service.api.deps import registry, settings
from service.api.health import ready_catalog
from service.binary_tensors import BinaryTensorRoute
from service.errors import OipErrorResponse, responses
from service.oip import ModelTarget, find_model, infer, metadata_response
from service.oip_schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from service.registry import ModelRegistry
from service.settings import Settings

# tritonclient sends its JSON without a Content-Type, which FastAPI would otherwise refuse to parse (a guard
# against browsers posting to a local server; inference changes nothing, so nothing is lost by lifting it),
# and its tensors as binary data after the JSON unless told otherwise (service.binary_tensors).
router = APIRouter(
    prefix="/v2", tags=["open inference protocol"], strict_content_type=False, route_class=BinaryTensorRoute
)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    # "4XX" also keeps FastAPI from documenting its own 422 body: the protocol answers a malformed request with 400.
    client_error = {"model": OipErrorResponse, "description": "Client Error"}
    return {**responses(*statuses, model=OipErrorResponse), "4XX": client_error}


_UNAVAILABLE = responses(503, model=OipErrorResponse)
_MODEL_ERRORS = _errors(404, 503)
_INFER_ERRORS = _errors(400, 404, 408, 413, 503)


def _target(request: Request, models: ModelRegistry, name: str, version: str | None) -> ModelTarget:
    target = find_model(models.catalog, name, version)
    metadata = target.model.metadata
    request.state.model_size = metadata.size
    request.state.log_fields = {"model": metadata.name, "version": metadata.version}
    return target


ModelName = Annotated[str, Path(description="the store's folder name", examples=["microexpnet_m"])]


async def served_model(
    request: Request, models: Annotated[ModelRegistry, Depends(registry)], name: ModelName
) -> ModelTarget:
    return _target(request, models, name, None)


async def model_version(
    request: Request,
    models: Annotated[ModelRegistry, Depends(registry)],
    name: ModelName,
    version: Annotated[str, Path(description="a version number in the store", examples=["1"])],
) -> ModelTarget:
    return _target(request, models, name, version)


@router.get("", summary="Server metadata", response_model=ServerMetadataResponse, responses=_UNAVAILABLE)
async def server_metadata(request: Request) -> ServerMetadataResponse:
    return ServerMetadataResponse(name="microexp", version=request.app.version, extensions=[])


@router.get("/health/live", summary="The server is alive", response_model=ServerLiveResponse)
async def server_live() -> ServerLiveResponse:
    return ServerLiveResponse(live=True)


@router.get(
    "/health/ready",
    summary="The default model size is loaded",
    response_model=ServerReadyResponse,
    responses=_UNAVAILABLE,
)
async def server_ready(
    config: Annotated[Settings, Depends(settings)], models: Annotated[ModelRegistry, Depends(registry)]
) -> ServerReadyResponse:
    ready_catalog(config, models)
    return ServerReadyResponse(ready=True)


def _model_routes(path: str, lookup: Callable[..., Awaitable[ModelTarget]]) -> None:
    """The model endpoints at `path`, for the served version or the one in the path."""
    target_dependency = Depends(lookup)

    @router.get(path, summary="Model metadata", response_model=ModelMetadataResponse, responses=_MODEL_ERRORS)
    async def model_metadata(target: Annotated[ModelTarget, target_dependency]) -> ModelMetadataResponse:
        return metadata_response(target)

    @router.get(f"{path}/ready", summary="Model ready", response_model=ModelReadyResponse, responses=_MODEL_ERRORS)
    async def model_ready(target: Annotated[ModelTarget, target_dependency]) -> ModelReadyResponse:
        return ModelReadyResponse(name=target.name, ready=True)

    @router.post(
        f"{path}/infer",
        summary="Run the model on preprocessed tensors",
        response_model=InferenceResponse,
        response_model_exclude_none=True,
        responses=_INFER_ERRORS,
    )
    async def model_infer(
        target: Annotated[ModelTarget, target_dependency], body: InferenceRequest
    ) -> InferenceResponse:
        # Checking the values and running the model are CPU-bound, so off the event loop.
        return await run_in_threadpool(infer, target, body)


_model_routes("/models/{name}", served_model)
_model_routes("/models/{name}/versions/{version}", model_version)
