"""FastAPI dependencies: the app's long-lived objects, and the model and detector a request asks for.

All are ``async`` because none blocks: FastAPI would run plain functions in its thread pool, one hop each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Query, Request

from model_store.faces import FaceDetector
from model_store.preprocess import ViewCount
from model_store.vocabulary import MODEL_NAME_PATTERN, SIZES, check_family, parse_size, split_model_name
from service.detect import Detectors
from service.errors import ApiError, ErrorCode
from service.inference import LoadedModel
from service.metrics import Metrics
from service.pipeline import Analysis, analyse, analyse_batch
from service.registry import ModelRegistry
from service.settings import DetectorName, Settings
from service.video import Progress, VideoAnalysis, VideoLimits, analyse_video


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def detectors(request: Request) -> Detectors:
    return request.app.state.detectors


async def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def chosen_model(
    request: Request,
    config: Annotated[Settings, Depends(settings)],
    models: Annotated[ModelRegistry, Depends(registry)],
    model: Annotated[
        str | None,
        Query(
            description=f"model size ({', '.join(SIZES)}, any case) or model name (e.g. microexpnet_xxs); "
            "default: the server's default size"
        ),
    ] = None,
    family: Annotated[
        str | None,
        Query(description="model family, e.g. microexpnet; default: the size's default family (see /v1/models)"),
    ] = None,
    arch: Annotated[str | None, Query(description="the older name of `family`, still accepted")] = None,
    version: Annotated[int | None, Query(ge=1, description="model version; default: the served version")] = None,
) -> LoadedModel:
    family, size = family_and_size(model, _family(family, arch), config.default_size)
    request.state.model_size = size
    loaded = models.catalog.model(size, version, family)
    request.state.log_fields = {"model": loaded.metadata.name, "version": loaded.metadata.version}
    return loaded


def _family(family: str | None, arch: str | None) -> str | None:
    if family is not None and arch is not None and family != arch:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"family {family!r} and arch {arch!r} (its alias) disagree")
    return family if family is not None else arch


def family_and_size(model: str | None, family: str | None, default_size: str) -> tuple[str | None, str]:
    if model is not None and MODEL_NAME_PATTERN.match(model):
        named_family, size = split_model_name(model)
        if family is not None and family != named_family:
            raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"model {model!r} is not of family {family!r}")
        return named_family, size
    if family is not None:
        try:
            check_family(family)
        except ValueError as error:
            raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"family: {error}") from None
    try:
        return family, default_size if model is None else parse_size(model)
    except ValueError:
        raise ApiError(
            422,
            ErrorCode.UNKNOWN_MODEL_SIZE,
            f"unknown model {model!r}; valid sizes: {', '.join(SIZES)}, or a model name such as microexpnet_m",
            {"valid": list(SIZES)},
        ) from None


async def chosen_detector(
    available: Annotated[Detectors, Depends(detectors)],
    detect: Annotated[
        bool, Query(description="find faces first; false: the whole image is one (already cropped) face")
    ] = True,
    detector: Annotated[
        DetectorName | None, Query(description="face detector: yunet, haar or mtcnn; default: the server's")
    ] = None,
) -> FaceDetector | None:
    return available.get(detector) if detect else None


@dataclass(frozen=True)
class Classifier:
    """What a request asked for: the model, the detector, and how each face is cropped and classified."""

    model: LoadedModel
    detector: FaceDetector | None
    max_faces: int
    align: bool
    views: ViewCount

    def image(self, data: bytes, max_pixels: int, min_side: int) -> Analysis:
        return analyse(
            data,
            self.model,
            self.detector,
            self.max_faces,
            max_pixels,
            align=self.align,
            views=self.views,
            min_side=min_side,
        )

    def images(self, uploads: Sequence[bytes | ApiError], max_pixels: int, min_side: int) -> list[Analysis | ApiError]:
        return analyse_batch(
            uploads,
            self.model,
            self.detector,
            self.max_faces,
            max_pixels,
            align=self.align,
            views=self.views,
            min_side=min_side,
        )

    def video(
        self,
        path: Path,
        limits: VideoLimits,
        fps: float | None,
        track: bool,
        smoothing: float,
        progress: Progress | None = None,
    ) -> VideoAnalysis:
        return analyse_video(
            path,
            self.model,
            self.detector,
            limits,
            max_faces=self.max_faces,
            align=self.align,
            views=self.views,
            fps=fps,
            track=track,
            smoothing=smoothing,
            progress=progress,
        )


async def classifier(
    config: Annotated[Settings, Depends(settings)],
    model: Annotated[LoadedModel, Depends(chosen_model)],
    detector: Annotated[FaceDetector | None, Depends(chosen_detector)],
    max_faces: Annotated[
        int | None, Query(ge=1, description="classify at most this many faces, most confident first")
    ] = None,
    align: Annotated[
        bool | None,
        Query(
            description="turn each face so that its eyes are level before cropping (needs a detector that gives "
            "landmarks: yunet, mtcnn; haar's faces stay as they are); default: the server's"
        ),
    ] = None,
    views: Annotated[
        ViewCount | None,
        Query(
            description="test-time views per face, their probabilities averaged: 1 the centre crop, 2 it and its "
            "mirror, 16 the eight corner and side crops and their mirrors; default: the server's for the model's size"
        ),
    ] = None,
) -> Classifier:
    return resolve_classifier(config, model, detector, max_faces, align, views)


def resolve_classifier(
    config: Settings,
    model: LoadedModel,
    detector: FaceDetector | None,
    max_faces: int | None,
    align: bool | None,
    views: ViewCount | None,
) -> Classifier:
    """A request's choices completed by the server's defaults."""
    return Classifier(
        model=model,
        detector=detector,
        max_faces=min(max_faces or config.max_faces, config.max_faces),
        align=config.align if align is None else align,
        views=config.views_for(model.metadata.size) if views is None else views,
    )
