"""The API's response bodies (errors: service.errors.ErrorResponse)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from model_store.metadata import ModelMetadata
from model_store.preprocess import ViewCount
from model_store.vocabulary import Size
from service.errors import ErrorDetail
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
    inference_ms: float = Field(description="the model run; in a batch or a video, the one run shared by its images")

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


class BatchError(BaseModel):
    error: ErrorDetail = Field(description="why this image has no answer; the other images are unaffected")


class BatchResponse(BaseModel):
    results: list[PredictResponse | BatchError] = Field(description="one per uploaded image, in upload order")


class VideoFace(FacePrediction):
    track: int | None = Field(
        description="the id of the person this face continues from earlier frames (track=true); null: not tracked"
    )


class VideoFrame(BaseModel):
    index: int = Field(description="the frame's position in the video, from 0")
    time_s: float = Field(description="seconds from the start")
    faces: list[VideoFace] = Field(description="most confident detection first")


class VideoInfo(BaseModel):
    width: int
    height: int
    fps: float = Field(description="frames per second, as the container declares")
    frames: int | None = Field(description="frames the container declares; null when it does not say")
    duration_s: float | None


class TrackSummary(BaseModel):
    id: int
    first_s: float
    last_s: float
    frames: int = Field(description="sampled frames the face is in")
    expression: str = Field(description="the most probable label of `probabilities`")
    probabilities: dict[str, float] = Field(
        description="the mean over the track's frames (of the smoothed answers with smoothing)"
    )


class VideoTiming(BaseModel):
    decode_ms: float = Field(description="reading and decoding every frame, sampled or not")
    detect_ms: float
    preprocess_ms: float
    inference_ms: float = Field(description="the model runs, each over the faces of up to 32 frames")
    total_ms: float = Field(description="opening the video to the last frame's answer; excludes the upload")
    frames_per_second: float = Field(description="sampled frames per second of total_ms")


class VideoSummary(BaseModel):
    frames_decoded: int
    frames_sampled: int = Field(description="frames classified: the entries of `frames`")
    frames_with_faces: int
    faces: int = Field(description="faces over all sampled frames")
    expressions: dict[str, int] = Field(description="faces by their most probable label, over all sampled frames")
    tracks: list[TrackSummary] | None = Field(description="each tracked person; null: tracking off")
    timing: VideoTiming


class VideoResponse(BaseModel):
    request_id: str
    model: ModelUsed
    detector: str | None = Field(description="face detector used; null with detect=false")
    views: ViewCount
    video: VideoInfo
    sample_fps: float = Field(description="frames per second classified")
    smoothing: float = Field(description="the weight of a track's past in each face's probabilities (0: none)")
    frames: list[VideoFrame]
    summary: VideoSummary


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
