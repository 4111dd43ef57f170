"""POST /v1/video: a video's frames decoded one by one, their faces classified, tracked and smoothed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from server_fixture import face_clip, serving

from service.tracking import IouTracker

pytest_plugins = ["server_fixture"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "avi": face_clip(folder / "clip.avi", "MJPG"),
        "mp4": face_clip(folder / "clip.mp4", "mp4v"),
        "long": face_clip(folder / "long.avi", "MJPG", faces=5, blanks=55),  # 2 s
        "medium": face_clip(folder / "medium.avi", "MJPG", faces=20, blanks=25),  # 1.5 s, 45 frames
    }


def post(client: httpx.Client, path: Path, media: str = "video/x-msvideo", **params: object) -> httpx.Response:
    return client.post("/v1/video", params=params, files={"video": (path.name, path.read_bytes(), media)})


def test_opencv_decodes_video_with_ffmpeg() -> None:
    assert cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG)
    assert cv2.videoio_registry.getBackendName(cv2.CAP_FFMPEG) == "FFMPEG"


@pytest.mark.parametrize("kind", ["avi", "mp4"])
def test_frames_with_and_without_a_face(client: httpx.Client, clips: dict[str, Path], kind: str) -> None:
    response = post(client, clips[kind], "video/mp4" if kind == "mp4" else "video/x-msvideo", model="xxs")
    assert response.status_code == 200, response.text
    answer = response.json()
    frames = answer["frames"]
    assert [frame["index"] for frame in frames] == list(range(30))
    assert frames[1]["time_s"] == pytest.approx(1 / 30)
    with_face = [bool(frame["faces"]) for frame in frames]
    assert sum(with_face[:20]) >= 15 and not any(with_face[20:])
    assert answer["video"] == {"width": 640, "height": 480, "fps": 30.0, "frames": 30, "duration_s": 1.0}
    summary = answer["summary"]
    assert (summary["frames_decoded"], summary["frames_sampled"]) == (30, 30)
    assert summary["frames_with_faces"] == sum(with_face)
    assert sum(summary["expressions"].values()) == summary["faces"] == sum(len(f["faces"]) for f in frames)
    assert summary["tracks"] is None and all(face["track"] is None for f in frames for face in f["faces"])
    assert answer["model"]["size"] == "XXS" and answer["detector"] == "yunet"


def test_one_person_keeps_one_track(client: httpx.Client, clips: dict[str, Path]) -> None:
    answer = post(client, clips["avi"], track="true").json()
    ids = {face["track"] for frame in answer["frames"] for face in frame["faces"]}
    assert ids == {1}
    (track,) = answer["summary"]["tracks"]
    assert track["frames"] == answer["summary"]["faces"] and track["first_s"] == 0.0
    assert sum(track["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_smoothing_averages_along_the_track(client: httpx.Client, clips: dict[str, Path]) -> None:
    raw = post(client, clips["avi"], track="true").json()["frames"]
    smooth = post(client, clips["avi"], track="true", smoothing=0.8).json()["frames"]
    expected = None
    for raw_frame, smooth_frame in zip(raw, smooth, strict=True):
        if not raw_frame["faces"]:
            continue
        current = np.array(list(raw_frame["faces"][0]["probabilities"].values()))
        expected = current if expected is None else 0.8 * expected + 0.2 * current
        got = np.array(list(smooth_frame["faces"][0]["probabilities"].values()))
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_fps_samples_the_frames(client: httpx.Client, clips: dict[str, Path]) -> None:
    answer = post(client, clips["avi"], fps=10).json()
    assert [frame["index"] for frame in answer["frames"]] == list(range(0, 30, 3))
    assert answer["sample_fps"] == 10 and answer["summary"]["frames_decoded"] == 30


def test_smoothing_needs_tracking(client: httpx.Client, clips: dict[str, Path]) -> None:
    response = post(client, clips["avi"], smoothing=0.5)
    assert response.status_code == 422 and "track=true" in response.json()["error"]["message"]


def test_corrupt_truncated_and_wrong_uploads_are_client_errors(
    client: httpx.Client, clips: dict[str, Path], tmp_path: Path
) -> None:
    data = clips["avi"].read_bytes()
    cases = {
        "garbage.avi": (b"RIFF" + bytes(range(256)) * 40, "video/x-msvideo", 400, "invalid_video"),
        "truncated.avi": (data[: len(data) // 2], "video/x-msvideo", 400, "invalid_video"),
        "truncated.mp4": (clips["mp4"].read_bytes()[:-5000], "video/mp4", 400, "invalid_video"),
        "empty.avi": (b"", "video/x-msvideo", 400, "invalid_video"),
        "notes.txt": (b"hello", "text/plain", 415, "unsupported_media_type"),
    }
    for name, (content, media, status, code) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        response = post(client, path, media)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), name
    missing = client.post("/v1/video", files={"image": ("a.avi", data, "video/x-msvideo")})
    assert missing.status_code == 422


@pytest.fixture(scope="module")
def limited(model_store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    temporary = tmp_path_factory.mktemp("video-tmp")
    env = {
        "MICROEXP_VIDEO_MAX_FRAMES": "40",
        "MICROEXP_VIDEO_MAX_SECONDS": "1.9",
        "MICROEXP_VIDEO_MAX_BYTES": "3000000",
        "MICROEXP_MAX_PIXELS": str(640 * 480),
        "TMPDIR": str(temporary),
    }
    with (
        serving(model_store_root, tmp_path_factory.mktemp("video") / "service.log", env) as service,
        httpx.Client(base_url=service.url, timeout=60) as http,
    ):
        yield http, temporary


def test_limits_on_duration_frames_bytes_and_pixels(limited: tuple[httpx.Client, Path], clips: dict[str, Path]) -> None:
    client, temporary = limited
    long = post(client, clips["long"], fps=5)
    assert long.status_code == 413 and long.json()["error"]["code"] == "video_too_long"
    assert long.json()["error"]["details"] == {"max_seconds": 1.9, "max_frames": 40}
    many = post(client, clips["medium"])
    assert many.status_code == 413 and "lower fps" in many.json()["error"]["message"]
    assert post(client, clips["medium"], fps=20).status_code == 200
    large = client.post("/v1/video", files={"video": ("big.avi", b"\0" * 3_100_000, "video/x-msvideo")})
    assert large.status_code == 413 and large.json()["error"]["code"] == "payload_too_large"
    wide = post(client, face_clip(temporary.parent / "wide.avi", faces=1, blanks=0, size=(800, 480))).json()
    assert wide["error"]["code"] == "image_too_large" and wide["error"]["details"]["max_pixels"] == 640 * 480
    assert list(temporary.iterdir()) == []  # every upload's temporary file deleted


def test_a_video_may_be_larger_than_other_bodies(client: httpx.Client, tmp_path: Path) -> None:
    # The test server's body limit is 4 MB (server_fixture.MAX_BODY_BYTES); videos have their own, 200 MB.
    path = face_clip(tmp_path / "big.avi", faces=1, blanks=0)
    padded = tmp_path / "padded.avi"
    padded.write_bytes(path.read_bytes() + b"\0" * 5_000_000)
    response = post(client, padded)
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["frames_with_faces"] == 1


def test_tracker_keeps_each_person_and_forgets_after_a_gap() -> None:
    tracker = IouTracker(min_iou=0.3, max_gap_s=1.0)
    left, right = (0, 0, 100, 100), (300, 0, 100, 100)
    assert tracker.assign([left, right], 0.0) == [1, 2]
    # Moved a little, listed in the other order: each keeps its id.
    assert tracker.assign([(310, 5, 100, 100), (10, 5, 100, 100)], 0.1) == [2, 1]
    assert tracker.assign([(20, 5, 100, 100)], 0.2) == [1]
    assert tracker.assign([(310, 5, 100, 100)], 0.9) == [2]  # gone for 0.8 s: within the gap
    assert tracker.assign([(20, 5, 100, 100)], 1.5) == [3]  # gone for 1.3 s: a new track
