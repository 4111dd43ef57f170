"""The Open Inference Protocol (KServe v2) for preprocessed tensors: models found by name, their metadata, and
inference on tensors sent as JSON, checked against the model's metadata before the model runs.

Model names are the store's folder names, looked up in the loaded catalog (built from the store's listing), so
no text from a request ever becomes a path. The routes are in service.api.oip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store.metadata import TensorSpec
from model_store.triton import MAX_BATCH_SIZE, PLATFORM, TRITON_TYPES
from service.errors import ApiError, ErrorCode
from service.inference import LoadedModel, softmax
from service.oip_schemas import (
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadataResponse,
    RequestInput,
    RequestOutput,
    ResponseOutput,
)
from service.registry import Catalog
from service.tensor_data import TensorDataError, float32_tensor

# An output this server adds to the model's own: softmax of the logits, as /v1/predict reports them.
PROBABILITIES = "probabilities"


@dataclass(frozen=True)
class ModelTarget:
    name: str
    versions: list[int]  # every loaded version of the model
    model: LoadedModel  # the version asked for, else the served one


def datatype(spec: TensorSpec) -> str:
    """The protocol's name for a tensor's element type: Triton's, without its TYPE_ prefix."""
    return TRITON_TYPES[spec.dtype].removeprefix("TYPE_")


def find_model(catalog: Catalog, name: str, version: str | None) -> ModelTarget:
    """The loaded model called `name` (and the `version` given, else the served one), or a 404 / 503."""
    if version is None:
        loaded = catalog.named(name)
    elif version.isascii() and version.isdecimal() and str(int(version)) == version:
        loaded = catalog.named(name, int(version))
    else:
        raise ApiError(
            404, ErrorCode.UNKNOWN_VERSION, f"version {version!r} is not a version number (1, 2, ...) of {name}"
        )
    return ModelTarget(name, sorted(catalog.models[name]), loaded)


def metadata_response(target: ModelTarget) -> ModelMetadataResponse:
    metadata = target.model.metadata
    return ModelMetadataResponse(
        name=target.name,
        versions=[str(version) for version in target.versions],
        platform=PLATFORM,
        inputs=[
            MetadataTensor(name=metadata.input.name, datatype=datatype(metadata.input), shape=metadata.input.shape)
        ],
        outputs=[
            MetadataTensor(name=metadata.output.name, datatype=datatype(metadata.output), shape=metadata.output.shape)
        ],
    )


def _invalid(message: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_TENSOR, message)


def input_tensor(spec: TensorSpec, inputs: list[RequestInput]) -> np.ndarray:
    """The request's one input as the array the model runs on, checked against the model's input spec."""
    if [given.name for given in inputs] != [spec.name]:
        raise _invalid(f"the model takes one input, {spec.name!r}; the request has {[given.name for given in inputs]}")
    (given,) = inputs
    if given.parameters and "binary_data_size" in given.parameters:
        raise _invalid(
            f"input {spec.name!r} has a binary_data_size, but the request has no Inference-Header-Content-Length"
        )
    if given.datatype != datatype(spec):
        raise _invalid(f"input {spec.name!r} is {datatype(spec)}, not {given.datatype}")
    # -1 in the spec is the batch: any size up to the batch the store's Triton config allows.
    fits = len(given.shape) == len(spec.shape) and all(
        1 <= size <= MAX_BATCH_SIZE if wanted == -1 else size == wanted
        for size, wanted in zip(given.shape, spec.shape, strict=True)
    )
    if not fits:
        wanted = ", ".join("N" if size == -1 else str(size) for size in spec.shape)
        raise _invalid(
            f"input {spec.name!r} must have shape [{wanted}] with N from 1 to {MAX_BATCH_SIZE}; got {given.shape}"
        )
    try:
        return float32_tensor(given.data, tuple(given.shape))
    except TensorDataError as error:
        raise _invalid(f"input {spec.name!r}: {error}") from None


def output_names(model_output: str, requested: list[RequestOutput] | None) -> list[str]:
    if not requested:
        return [model_output]
    names = [output.name for output in requested]
    unknown = [name for name in names if name not in (model_output, PROBABILITIES)]
    if unknown or len(set(names)) != len(names):
        raise _invalid(f"outputs must be distinct names from {model_output!r} and {PROBABILITIES!r}; got {names}")
    return names


def infer(target: ModelTarget, request: InferenceRequest) -> InferenceResponse:
    metadata = target.model.metadata
    tensor = input_tensor(metadata.input, request.inputs)
    names = output_names(metadata.output.name, request.outputs)
    logits = target.model.logits(tensor)
    if not np.isfinite(logits).all():
        raise _invalid("the model's output is not finite for these values; send values as its preprocessing makes them")
    values = {metadata.output.name: logits, PROBABILITIES: softmax(logits)}
    return InferenceResponse(
        model_name=target.name,
        model_version=str(metadata.version),
        id=request.id,
        outputs=[
            ResponseOutput(
                name=name,
                datatype=datatype(metadata.output),
                shape=list(values[name].shape),
                data=values[name].ravel().tolist(),
            )
            for name in names
        ],
    )
