"""POST /v1/predict (JSON), POST /v1/predict/batch (several images) and POST /v1/annotate (the image with the faces
drawn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service.access import ACCESS_STATUSES
from service.annotate import MEDIA_TYPES, ImageFormat, annotate
from service.api.deps import Classifier, classifier, settings
from service.errors import ApiError, responses
from service.inference import LoadedModel
from service.pipeline import Analysis, FaceResult
from service.schemas import (
    BatchError,
    BatchResponse,
    BoxOut,
    FacePrediction,
    ImageInfo,
    ModelUsed,
    PredictResponse,
)
from service.settings import Settings
from service.upload import BATCH_REQUEST_BODY, REQUEST_BODY, Upload, read_batch, read_upload

router = APIRouter(prefix="/v1", tags=["inference"])

INFERENCE_ERRORS = responses(400, 404, 408, 413, 415, 422, 503, *ACCESS_STATUSES)


@dataclass(frozen=True)
class Analysed:
    """The dependency that analyses a request's image. `whole`: decode it at full size even when it is a large JPEG
    (``Settings.decode_min_side``), for an answer drawn on the image itself."""

    whole: bool = False

    async def __call__(
        self,
        request: Request,
        config: Annotated[Settings, Depends(settings)],
        chosen: Annotated[Classifier, Depends(classifier)],
        upload: Annotated[Upload, Depends(read_upload)],
    ) -> Analysis:
        min_side = 0 if self.whole else config.decode_min_side
        # CPU-bound (OpenCV and onnxruntime release the GIL), so off the event loop.
        analysis = await run_in_threadpool(chosen.image, upload.data, config.max_pixels, min_side)
        image = analysis.image
        request.state.log_fields = {
            **request.state.log_fields,
            "detector": analysis.detector,
            "views": int(analysis.views),
            "faces": len(analysis.faces),
            "image": f"{image.format} {image.width}x{image.height}",
        }
        return analysis


def face_prediction(face: FaceResult, labels: list[str]) -> FacePrediction:
    best = int(face.probabilities.argmax())
    x, y, w, h = face.box
    return FacePrediction(
        box=BoxOut(x=x, y=y, width=w, height=h),
        score=face.score,
        expression=labels[best],
        probability=float(face.probabilities[best]),
        probabilities=dict(zip(labels, face.probabilities.tolist(), strict=True)),
        aligned=face.aligned,
    )


def model_used(model: LoadedModel) -> ModelUsed:
    metadata = model.metadata
    return ModelUsed(
        name=metadata.name,
        size=metadata.size,
        version=metadata.version,
        architecture=metadata.architecture,
        labels=metadata.labels,
    )


def to_response(analysis: Analysis, request_id: str) -> PredictResponse:
    image = analysis.image
    faces = [face_prediction(face, analysis.model.metadata.labels) for face in analysis.faces]
    return PredictResponse(
        request_id=request_id,
        model=model_used(analysis.model),
        detector=analysis.detector,
        views=analysis.views,
        image=ImageInfo(format=image.format, width=image.width, height=image.height),
        no_face=not faces,
        faces=faces,
        timing=analysis.timing,
    )


@router.post(
    "/predict",
    summary="Find the faces in an image and classify each face's expression",
    response_model=PredictResponse,
    responses=INFERENCE_ERRORS,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def predict(request: Request, analysis: Annotated[Analysis, Depends(Analysed())]) -> PredictResponse:
    return to_response(analysis, request.state.request_id)


@router.post(
    "/predict/batch",
    summary="Several images at once: each one's faces and expressions, as /v1/predict answers them",
    response_model=BatchResponse,
    responses=INFERENCE_ERRORS,
    openapi_extra={"requestBody": BATCH_REQUEST_BODY},
)
async def predict_batch(
    request: Request,
    config: Annotated[Settings, Depends(settings)],
    chosen: Annotated[Classifier, Depends(classifier)],
) -> BatchResponse:
    """Up to `MICROEXP_BATCH_MAX_IMAGES` images of `MICROEXP_BATCH_MAX_BYTES` together. An image that cannot be
    read gets an error in its place; the faces of all the others are classified in one model run."""
    images = await read_batch(request, config.batch_max_images, config.batch_max_bytes)
    analyses = await run_in_threadpool(chosen.images, images, config.max_pixels, config.decode_min_side)
    results: list[PredictResponse | BatchError] = [
        BatchError(error=analysis.detail_body())
        if isinstance(analysis, ApiError)
        else to_response(analysis, request.state.request_id)
        for analysis in analyses
    ]
    request.state.log_fields = {
        **request.state.log_fields,
        "images": len(results),
        "failed": sum(isinstance(result, BatchError) for result in results),
        "faces": sum(len(result.faces) for result in results if isinstance(result, PredictResponse)),
    }
    return BatchResponse(results=results)


_IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the image with each face's box and top expression drawn",
        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()},
    }
}


@router.post(
    "/annotate",
    summary="The image with each face's box and expression drawn on it",
    response_class=Response,
    responses={**_IMAGE_RESPONSE, **INFERENCE_ERRORS},
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def annotate_image(
    analysis: Annotated[Analysis, Depends(Analysed(whole=True))],
    format: Annotated[ImageFormat, Query(description="encoding of the returned image")] = "jpeg",
) -> Response:
    content = await run_in_threadpool(annotate, analysis, format)
    return Response(content, media_type=MEDIA_TYPES[format])
