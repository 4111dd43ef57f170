"""A video end to end over HTTP: POST /v1/video with a 640x480 clip to the real service with its default settings.

Each clip is 300 frames at 30 frames/s (10 s), written by OpenCV: the astronaut photograph drifting a pixel a frame
over a photograph of a coffee cup (``one face``), or the coffee cup alone, drifting (``no face``), as MJPG in AVI and as
MPEG-4 part 2 in MP4. The figure is frames per second of the whole request as a client sees it: upload, writing
the temporary file, decoding, YuNet, cropping, XXS, the JSON answer. The server's own frames/s (its answer's
``summary.timing``) leaves out the upload and the answer.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from benchmarks.images import fitted, one_face_photo, place
from benchmarks.server import running_service
from service.cli import multipart
from service.upload import VIDEO_FIELD

FRAMES = 300
FPS = 30.0
SIZE = (640, 480)
CODECS = {"mjpg-avi": ("MJPG", ".avi", "video/x-msvideo"), "mp4v-mp4": ("mp4v", ".mp4", "video/mp4")}
MODEL = "xxs"


def write_clip(path: Path, fourcc: str, face: bool) -> Path:
    width, height = SIZE
    photo = one_face_photo(width - 40, height).bgr  # 40 pixels to drift in
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} to {path}")
    background = fitted(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), width, height)  # no face in it
    for index in range(FRAMES):
        frame = background.copy()
        if face:
            place(frame, photo, index % 40, 0)
        else:
            frame = np.roll(frame, index % 40, axis=1)
        writer.write(frame)
    writer.release()
    return path


def post(url: str, path: Path, media: str) -> tuple[float, dict]:
    body, content_type = multipart(VIDEO_FIELD, path.name, media, path.read_bytes())
    request = urllib.request.Request(f"{url}/v1/video?model={MODEL}", data=body, headers={"Content-Type": content_type})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    return time.perf_counter() - start, answer


def run(store: Path, logs: Path, repeats: int) -> dict[str, object]:
    clips = []
    with running_service(store, logs / "video-service.log") as service:
        for codec, (fourcc, suffix, media) in CODECS.items():
            for face in (True, False):
                path = write_clip(logs / f"{'face' if face else 'none'}-{codec}{suffix}", fourcc, face)
                post(service.url, path, media)  # warm-up
                walls, served = [], []
                for _ in range(repeats):
                    wall, answer = post(service.url, path, media)
                    frames = answer["summary"]["frames_sampled"]
                    walls.append(frames / wall)
                    served.append(answer["summary"]["timing"]["frames_per_second"])
                clips.append(
                    {
                        "clip": "one face" if face else "no face",
                        "codec": codec,
                        "frames": frames,
                        "frames_with_faces": answer["summary"]["frames_with_faces"],
                        "bytes": path.stat().st_size,
                        "frames_per_s": {"best": max(walls), "median": statistics.median(walls)},
                        "server_frames_per_s": statistics.median(served),
                        "timing_ms": answer["summary"]["timing"],
                    }
                )
    return {"size": list(SIZE), "model": MODEL, "detector": answer["detector"], "repeats": repeats, "clips": clips}
