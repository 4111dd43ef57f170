"""The Open Inference Protocol's (KServe v2 REST) request and response bodies, as the protocol names them.

Errors: service.errors.OipErrorResponse. Unknown fields in requests are ignored, as other servers of the
protocol do, so that clients sending server-specific extras still work.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Strict: the protocol's JSON has numbers where numbers belong; "84" or true is no dimension.
Dimension = Annotated[int, Field(strict=True)]
Parameters = dict[str, Any]


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(description="protocol extensions this server supports")


class ServerLiveResponse(BaseModel):
    live: bool


class ServerReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str = Field(description="e.g. FP32")
    shape: list[int] = Field(description="-1 marks a variable dimension (the batch)")


class ModelMetadataResponse(BaseModel):
    name: str = Field(description="the store's folder name, e.g. microexpnet_m")
    versions: list[str] = Field(description="versions that can be asked for by /versions/{version}")
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True)


class RequestInput(_Request):
    name: str
    shape: list[Dimension]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] = Field(description="the values, flat in row-major order or nested as the shape")


class RequestOutput(_Request):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Request):
    id: str | None = Field(None, description="returned in the response")
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(None, description="default: the model's own outputs")


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float] = Field(description="flat, row-major")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = Field(None, description="the request's id, when it had one")
    outputs: list[ResponseOutput]
