"""The API's response bodies (errors: service.errors.ErrorResponse)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from model_store.metadata import ModelMetadata
from model_store.preprocess import ViewCount
from model_store.vocabulary import Size
from service.registry import Refusal


class BoxOut(BaseModel):
    x: int = Field(description="left edge, original-image pixels")
    y: int = Field(description="top edge, original-image pixels")
    width: int
    height: int


class FacePrediction(BaseModel):
    box: BoxOut
    score: float | None = Field(
        description="detector confidence (yunet, mtcnn: 0-1; haar: uncalibrated, higher surer); null with detect=false"
    )
    expression: str = Field(description="the most probable label")
    probability: float = Field(ge=0, le=1, description="probability of `expression`")
    probabilities: dict[str, float] = Field(
        description="every label the model predicts, in its output order; the mean over the views"
    )
    aligned: bool = Field(
        description="turned so that the eyes are level before cropping (align=true, detector with landmarks)"
    )


class ModelUsed(BaseModel):
    name: str
    size: Size
    version: int
    architecture: str
    labels: list[str]


class ImageInfo(BaseModel):
    format: str
    width: int
    height: int


class Timing(BaseModel):
    decode_ms: float
    detect_ms: float
    preprocess_ms: float = Field(description="cropping, grayscale and resizing the faces")
    inference_ms: float

    @computed_field(description="decode to inference; excludes receiving the upload")  # type: ignore[prop-decorator]
    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.detect_ms + self.preprocess_ms + self.inference_ms


class PredictResponse(BaseModel):
    request_id: str
    model: ModelUsed
    detector: str | None = Field(description="face detector used; null with detect=false")
    views: ViewCount = Field(
        description="test-time views averaged per face: 1 centre crop, 2 + its mirror, 16 eight crops + mirrors"
    )
    image: ImageInfo
    no_face: bool = Field(description="true when no face was found (faces is then empty)")
    faces: list[FacePrediction] = Field(description="most confident detection first")
    timing: Timing


class RefusedVersion(BaseModel):
    name: str
    version: int | None = Field(description="null when the model as a whole is affected (e.g. its pointer)")
    reason: str


def refused_versions(refusals: Iterable[Refusal]) -> list[RefusedVersion]:
    return [RefusedVersion(name=r.name, version=r.version, reason=r.reason) for r in refusals]


class ModelEntry(BaseModel):
    name: str = Field(description="<family>_<size>; `?model=` takes it")
    family: str = Field(description="`?family=` takes it")
    size: Size
    default: bool = Field(description="answers requests that name this size and no family")
    why_default: str | None = Field(
        None, description="the measurements for which the store made it the size's default, when it did"
    )
    labels: list[str] = Field(description="what the served version answers, in output order")
    dataset: str | None = Field(description="what the served version was trained on")
    default_version: int = Field(description="served when a request names no version")
    versions: list[ModelMetadata]


class ModelsResponse(BaseModel):
    default_size: Size
    families: list[str]
    detectors: list[str]
    default_detector: str
    models: list[ModelEntry] = Field(description="by size (M first), the size's default model first")
    refused: list[RefusedVersion] = Field(description="versions in the store that failed verification")


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ServedModels(BaseModel):
    served: dict[str, int] = Field(description="model name → version served by default")
    defaults: dict[str, str] = Field(description="size → model name answering requests that name no family")


class ReadyResponse(ServedModels):
    status: Literal["ready"] = "ready"


class ReloadResponse(ServedModels):
    changed: bool = Field(description="whether the store had changed since the last load")
    refused: list[RefusedVersion]
