"""POST /v1/video: every sampled frame's faces and expressions, tracks and a summary (service.video)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from service.api.deps import Classifier, classifier, settings
from service.api.predict import INFERENCE_ERRORS, face_prediction, model_used
from service.errors import ApiError, ErrorCode
from service.schemas import TrackSummary, VideoFace, VideoFrame, VideoResponse, VideoSummary
from service.settings import Settings
from service.upload import VIDEO_REQUEST_BODY, read_video
from service.video import VideoAnalysis, VideoLimits

router = APIRouter(prefix="/v1", tags=["inference"])
PATH = "/v1/video"


def video_limits(config: Settings) -> VideoLimits:
    return VideoLimits(config.video_max_seconds, config.video_max_frames, config.video_max_fps, config.max_pixels)


def to_video_response(analysis: VideoAnalysis, track: bool, smoothing: float, request_id: str) -> VideoResponse:
    labels = analysis.model.metadata.labels
    frames: list[VideoFrame] = []
    expressions: Counter[str] = Counter()
    tracked: dict[int, list[tuple[float, np.ndarray]]] = {}
    for frame in analysis.frames:
        ids = frame.tracks or [None] * len(frame.faces)
        faces = []
        for face, tid in zip(frame.faces, ids, strict=True):
            faces.append(VideoFace(**face_prediction(face, labels).model_dump(), track=tid))
            expressions[faces[-1].expression] += 1
            if tid is not None:
                tracked.setdefault(tid, []).append((frame.time_s, face.probabilities))
        frames.append(VideoFrame(index=frame.index, time_s=frame.time_s, faces=faces))
    return VideoResponse(
        request_id=request_id,
        model=model_used(analysis.model),
        detector=analysis.detector,
        views=analysis.views,
        video=analysis.info,
        sample_fps=analysis.sample_fps,
        smoothing=smoothing,
        frames=frames,
        summary=VideoSummary(
            frames_decoded=analysis.frames_decoded,
            frames_sampled=len(frames),
            frames_with_faces=sum(bool(frame.faces) for frame in frames),
            faces=sum(len(frame.faces) for frame in frames),
            expressions=dict(expressions.most_common()),
            tracks=[_track(tid, seen, labels) for tid, seen in tracked.items()] if track else None,
            timing=analysis.timing,
        ),
    )


def _track(tid: int, seen: list[tuple[float, np.ndarray]], labels: list[str]) -> TrackSummary:
    mean = np.mean([probabilities for _, probabilities in seen], axis=0)
    return TrackSummary(
        id=tid,
        first_s=seen[0][0],
        last_s=seen[-1][0],
        frames=len(seen),
        expression=labels[int(mean.argmax())],
        probabilities=dict(zip(labels, mean.tolist(), strict=True)),
    )


@dataclass(frozen=True)
class Tracking:
    track: bool
    smoothing: float


async def tracking_options(
    track: Annotated[
        bool, Query(description="follow each face across frames by box overlap: one person keeps one `track` id")
    ] = False,
    smoothing: Annotated[
        float,
        Query(
            ge=0,
            lt=1,
            description="weight of a track's past in each face's probabilities: p'(t) = s p'(t-1) + (1 - s) p(t); "
            "0: none; needs track=true",
        ),
    ] = 0.0,
) -> Tracking:
    # A dependency of its own, so that it is checked before the upload is read.
    if smoothing > 0 and not track:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "smoothing follows a face along its track: add track=true")
    return Tracking(track, smoothing)


@router.post(
    "/video",
    summary="Find and classify the faces in a video's frames, optionally tracked and smoothed over time",
    response_model=VideoResponse,
    responses=INFERENCE_ERRORS,
    openapi_extra={"requestBody": VIDEO_REQUEST_BODY},
)
async def video(
    request: Request,
    config: Annotated[Settings, Depends(settings)],
    chosen: Annotated[Classifier, Depends(classifier)],
    tracking: Annotated[Tracking, Depends(tracking_options)],
    path: Annotated[Path, Depends(read_video)],
    fps: Annotated[
        float | None,
        Query(gt=0, description="frames per second to classify; default: every frame, up to the server's cap"),
    ] = None,
) -> VideoResponse:
    """An MP4, WebM or AVI of up to `MICROEXP_VIDEO_MAX_BYTES`, `MICROEXP_VIDEO_MAX_SECONDS` and (after sampling)
    `MICROEXP_VIDEO_MAX_FRAMES` frames, decoded frame by frame."""
    analysis = await run_in_threadpool(
        chosen.video, path, video_limits(config), fps, tracking.track, tracking.smoothing
    )
    response = to_video_response(analysis, tracking.track, tracking.smoothing, request.state.request_id)
    request.state.log_fields = {
        **request.state.log_fields,
        "detector": analysis.detector,
        "frames": response.summary.frames_sampled,
        "faces": response.summary.faces,
        "video": f"{analysis.info.width}x{analysis.info.height} {analysis.info.fps:g} fps",
    }
    return response
