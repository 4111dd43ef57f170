"""POST /v1/predict (JSON) and POST /v1/annotate (the image with the faces drawn)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from model_store.faces import FaceDetector
from model_store.preprocess import ViewCount
from service.annotate import MEDIA_TYPES, ImageFormat, annotate
from service.api.deps import chosen_detector, chosen_model, settings
from service.errors import responses
from service.inference import LoadedModel
from service.pipeline import Analysis, analyse
from service.schemas import BoxOut, FacePrediction, ImageInfo, ModelUsed, PredictResponse
from service.settings import Settings
from service.upload import REQUEST_BODY, Upload, read_upload

router = APIRouter(prefix="/v1", tags=["inference"])

_ERRORS = responses(400, 404, 408, 413, 415, 422, 503)


async def analysed(
    request: Request,
    config: Annotated[Settings, Depends(settings)],
    model: Annotated[LoadedModel, Depends(chosen_model)],
    detector: Annotated[FaceDetector | None, Depends(chosen_detector)],
    upload: Annotated[Upload, Depends(read_upload)],
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
) -> Analysis:
    limit = min(max_faces or config.max_faces, config.max_faces)
    # CPU-bound (OpenCV and onnxruntime release the GIL), so off the event loop.
    analysis = await run_in_threadpool(
        analyse,
        upload.data,
        model,
        detector,
        limit,
        config.max_pixels,
        align=config.align if align is None else align,
        views=config.views_for(model.metadata.size) if views is None else views,
    )
    request.state.log_fields = {
        **request.state.log_fields,
        "detector": analysis.detector,
        "views": int(analysis.views),
        "faces": len(analysis.faces),
        "image": f"{analysis.image.format} {analysis.image.bgr.shape[1]}x{analysis.image.bgr.shape[0]}",
    }
    return analysis


def to_response(analysis: Analysis, request_id: str) -> PredictResponse:
    metadata = analysis.model.metadata
    faces = []
    for face in analysis.faces:
        best = int(face.probabilities.argmax())
        x, y, w, h = face.box
        faces.append(
            FacePrediction(
                box=BoxOut(x=x, y=y, width=w, height=h),
                score=face.score,
                expression=metadata.labels[best],
                probability=float(face.probabilities[best]),
                probabilities=dict(zip(metadata.labels, face.probabilities.tolist(), strict=True)),
                aligned=face.aligned,
            )
        )
    height, width = analysis.image.bgr.shape[:2]
    return PredictResponse(
        request_id=request_id,
        model=ModelUsed(
            name=metadata.name,
            size=metadata.size,
            version=metadata.version,
            architecture=metadata.architecture,
            labels=metadata.labels,
        ),
        detector=analysis.detector,
        views=analysis.views,
        image=ImageInfo(format=analysis.image.format, width=width, height=height),
        no_face=not faces,
        faces=faces,
        timing=analysis.timing,
    )


@router.post(
    "/predict",
    summary="Find the faces in an image and classify each face's expression",
    response_model=PredictResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def predict(request: Request, analysis: Annotated[Analysis, Depends(analysed)]) -> PredictResponse:
    return to_response(analysis, request.state.request_id)


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
    responses={**_IMAGE_RESPONSE, **_ERRORS},
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def annotate_image(
    analysis: Annotated[Analysis, Depends(analysed)],
    format: Annotated[ImageFormat, Query(description="encoding of the returned image")] = "jpeg",
) -> Response:
    content = await run_in_threadpool(annotate, analysis, format)
    return Response(content, media_type=MEDIA_TYPES[format])
