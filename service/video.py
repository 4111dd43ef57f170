"""A video through the service, frame by frame: decode (OpenCV's FFmpeg backend), sample, detect, crop, classify.

Frames are decoded one at a time and only the sampled ones' face crops are kept until their model run, which
classifies the faces of up to ``CHUNK_FRAMES`` frames at once. YuNet looks once per frame: its second look at a
larger size (service/settings.py) would double the cost of every frame without a face, and the next frame is
another look. Tracking (service.tracking) gives each face the id of the person it continues; smoothing averages a
track's probabilities over its past frames, exponentially: p'(t) = smoothing * p'(t-1) + (1 - smoothing) * p(t).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from model_store.faces import Face, FaceDetector, YuNetDetector
from model_store.preprocess import ViewCount
from service.errors import ApiError, ErrorCode
from service.inference import LoadedModel
from service.pipeline import FaceResult, FoundFaces, classify, find_faces
from service.schemas import VideoInfo, VideoTiming
from service.tracking import IouTracker

CHUNK_FRAMES = 32
# Containers that estimate their frame count from the duration (WebM) may declare a frame or two more than they hold.
_DECLARED_SLACK = 2

Progress = Callable[[int, int | None], None]  # frames sampled so far, of how many (None: unknown)


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float
    max_frames: int  # sampled frames
    max_fps: float
    max_pixels: int  # a frame's width x height


@dataclass(frozen=True)
class FrameFaces:
    index: int  # in the video, from 0
    time_s: float
    faces: list[FaceResult]  # probabilities smoothed along their track when smoothing was asked for
    tracks: list[int] | None  # each face's track id; None: tracking off


@dataclass(frozen=True)
class VideoAnalysis:
    info: VideoInfo
    model: LoadedModel
    detector: str | None
    views: ViewCount
    sample_fps: float
    frames_decoded: int
    frames: list[FrameFaces]
    timing: VideoTiming


class _FirstLook:
    """YuNet without its second look."""

    def __init__(self, yunet: YuNetDetector) -> None:
        self.name = yunet.name
        self._yunet = yunet

    def detect(self, image: np.ndarray) -> list[Face]:
        return self._yunet.first_look(image)


def _invalid(message: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_VIDEO, message)


def _too_long(message: str, limits: VideoLimits) -> ApiError:
    details = {"max_seconds": limits.max_seconds, "max_frames": limits.max_frames}
    return ApiError(413, ErrorCode.VIDEO_TOO_LONG, message, details)


def open_video(path: Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise _invalid("not a readable video (MP4, WebM or AVI), or truncated before its first frame")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not 0 < fps < 10_000:
        capture.release()
        raise _invalid(f"the video declares no usable frame rate ({fps})")
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = declared if declared > 0 else None
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    duration_s = None if frames is None else frames / fps
    return capture, VideoInfo(width=width, height=height, fps=fps, frames=frames, duration_s=duration_s)


def _check_header(info: VideoInfo, sample_fps: float, limits: VideoLimits) -> None:
    if info.width * info.height > limits.max_pixels:
        raise ApiError(
            413,
            ErrorCode.IMAGE_TOO_LARGE,
            f"frames are {info.width}x{info.height} = {info.width * info.height} pixels; "
            f"the limit is {limits.max_pixels}",
            {"width": info.width, "height": info.height, "max_pixels": limits.max_pixels},
        )
    if info.duration_s is not None and info.duration_s > limits.max_seconds:
        raise _too_long(f"the video lasts {info.duration_s:.1f} s; the limit is {limits.max_seconds:g} s", limits)
    if info.duration_s is not None and math.ceil(info.duration_s * sample_fps) > limits.max_frames:
        raise _too_long(
            f"{math.ceil(info.duration_s * sample_fps)} frames at {sample_fps:g} frames/s; the limit is "
            f"{limits.max_frames} frames (ask for a lower fps)",
            limits,
        )


def _sampled_frames(
    capture: cv2.VideoCapture, info: VideoInfo, sample_fps: float, limits: VideoLimits, counts: list[float]
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time, BGR frame) of the frames sampled at `sample_fps`; counts: [frames decoded, decode ms]."""
    step = 1 / sample_fps
    next_time = 0.0
    sampled = 0
    index = 0
    while True:
        start = time.perf_counter()
        if not capture.grab():  # decodes without converting; only sampled frames are converted
            break
        time_s = index / info.fps
        frame = None
        # Half a frame's slack, so that sampling at the video's own rate takes every frame despite rounding.
        if time_s + 0.5 / info.fps >= next_time:
            ok, frame = capture.retrieve()
            if not ok:
                break
        counts[0] += 1
        counts[1] += (time.perf_counter() - start) * 1000
        if time_s > limits.max_seconds:
            raise _too_long(f"the video lasts more than the limit of {limits.max_seconds:g} s", limits)
        if frame is not None:
            sampled += 1
            if sampled > limits.max_frames:
                raise _too_long(f"more than {limits.max_frames} frames at {sample_fps:g} frames/s", limits)
            next_time += step
            yield index, time_s, frame
        index += 1


def analyse_video(
    path: Path,
    model: LoadedModel,
    detector: FaceDetector | None,
    limits: VideoLimits,
    *,
    max_faces: int,
    align: bool,
    views: ViewCount,
    fps: float | None = None,
    track: bool = False,
    smoothing: float = 0.0,
    progress: Progress | None = None,
) -> VideoAnalysis:
    """Every sampled frame's faces with their expressions; `fps` None: every frame, up to ``limits.max_fps``."""
    start = time.perf_counter()
    capture, info = open_video(path)
    try:
        sample_fps = min(fps or info.fps, info.fps, limits.max_fps)
        _check_header(info, sample_fps, limits)
        frame_detector = _FirstLook(detector) if isinstance(detector, YuNetDetector) else detector
        tracker = IouTracker() if track else None
        smoothed: dict[int, np.ndarray] = {}
        expected = None if info.duration_s is None else math.ceil(info.duration_s * sample_fps)
        counts = [0.0, 0.0]
        costs = [0.0, 0.0, 0.0]  # detect, preprocess, inference ms
        frames: list[FrameFaces] = []
        pending: list[tuple[int, float, FoundFaces]] = []

        def flush() -> None:
            began = time.perf_counter()
            results = classify(model, [found for _, _, found in pending], views)
            costs[2] += (time.perf_counter() - began) * 1000
            for (index, time_s, _), faces in zip(pending, results, strict=True):
                ids = None if tracker is None else tracker.assign([face.box for face in faces], time_s)
                if ids is not None and smoothing > 0:
                    faces = [_smooth(face, smoothed, tid, smoothing) for face, tid in zip(faces, ids, strict=True)]
                frames.append(FrameFaces(index, time_s, faces, ids))
            pending.clear()
            if progress is not None:
                progress(len(frames), expected)

        for index, time_s, bgr in _sampled_frames(capture, info, sample_fps, limits, counts):
            found = find_faces(bgr, model, frame_detector, max_faces, align, views)
            costs[0] += found.detect_ms
            costs[1] += found.preprocess_ms
            pending.append((index, time_s, found))
            if len(pending) == CHUNK_FRAMES:
                flush()
        if pending:
            flush()
    finally:
        capture.release()
    decoded = int(counts[0])
    total_ms = (time.perf_counter() - start) * 1000
    if decoded == 0:
        raise _invalid("the video has no frame that can be decoded")
    if info.frames is not None and decoded + _DECLARED_SLACK < info.frames:
        raise _invalid(
            f"the video is truncated or corrupt: it declares {info.frames} frames, {decoded} could be decoded"
        )
    return VideoAnalysis(
        info=info,
        model=model,
        detector=None if detector is None else detector.name,
        views=views,
        sample_fps=sample_fps,
        frames_decoded=decoded,
        frames=frames,
        timing=VideoTiming(
            decode_ms=counts[1],
            detect_ms=costs[0],
            preprocess_ms=costs[1],
            inference_ms=costs[2],
            total_ms=total_ms,
            frames_per_second=len(frames) / total_ms * 1000,
        ),
    )


def _smooth(face: FaceResult, smoothed: dict[int, np.ndarray], tid: int, weight: float) -> FaceResult:
    previous = smoothed.get(tid)
    probabilities = face.probabilities if previous is None else weight * previous + (1 - weight) * face.probabilities
    smoothed[tid] = probabilities
    return FaceResult(face.box, face.score, face.aligned, probabilities)
