"""The ``microexp`` command: files and folders in-process on the shipped store, or sent to a server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import cv2
import httpx
import pytest
from conftest import REPO
from server_fixture import ServiceProcess, astronaut, face_clip, free_port, gradient, serving

pytest_plugins = ["server_fixture"]

MICROEXP = Path(sys.executable).parent / "microexp"


def microexp(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MICROEXP, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    cv2.imwrite(str(root / "photo.jpg"), astronaut())
    (root / "nested").mkdir()
    cv2.imwrite(str(root / "nested" / "blank.png"), gradient())
    face_clip(root / "nested" / "clip.avi", faces=4, blanks=2)
    (root / "nested" / "notes.txt").write_text("not an input")
    return root


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_in_process_on_the_shipped_store(folder: Path) -> None:
    result = microexp("predict", folder / "photo.jpg", "--model", "xxs")
    assert result.returncode == 0, result.stderr
    (entry,) = lines(result)
    assert entry["file"] == str(folder / "photo.jpg")
    (face,) = entry["result"]["faces"]
    # The shipped FER+ XXS model calls the astronaut's smile happiness (README).
    assert face["expression"] == "happiness" and entry["result"]["model"]["name"] == "dsvgg5-ferplus_xxs"


def test_folders_recursively_images_and_videos_as_a_table(folder: Path) -> None:
    result = microexp("predict", folder, "--format", "table", "--model", "xxs", "--track", "--progress")
    assert result.returncode == 0, result.stderr
    assert "[3/3] photo.jpg" in result.stderr and "[2/3] clip.avi [" in result.stderr  # a video's frames, of 6
    rows = [row.split("\t") for row in result.stdout.splitlines()]
    assert {row[0].split("@")[0] for row in rows} == {
        str(folder / "nested" / "blank.png"),
        str(folder / "nested" / "clip.avi"),
        str(folder / "photo.jpg"),
    }
    assert [row[1:3] for row in rows if row[0].endswith("blank.png")] == [["-", "no face"]]
    video_rows = [row for row in rows if "clip.avi@" in row[0]]
    assert len(video_rows) == 4 and {row[1] for row in video_rows} == {"track 1"}
    assert [row[2] for row in rows if row[0].endswith("photo.jpg")] == ["happiness"]


def test_exit_codes(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    some_failed = microexp("predict", folder / "photo.jpg", bad, "--model", "xxs")
    assert some_failed.returncode == 1
    good, failed = lines(some_failed)
    assert "result" in good and failed == {"file": str(bad), "error": failed["error"]}
    assert failed["error"]["code"] == "invalid_image"
    assert microexp("predict", tmp_path / "missing.jpg").returncode == 2
    assert microexp("predict", folder / "photo.jpg", "--format", "xml").returncode == 2
    unreachable = microexp("predict", folder / "photo.jpg", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    help_text = microexp("predict", "--help")
    assert help_text.returncode == 0 and "exit codes" in help_text.stdout


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with serving(None, tmp_path_factory.mktemp("cli") / "service.log") as service:
        yield service


def test_against_a_server_the_same_answer(shipped_server: ServiceProcess, folder: Path) -> None:
    photo, clip = folder / "photo.jpg", folder / "nested" / "clip.avi"
    result = microexp("predict", photo, clip, "--url", shipped_server.url, "--model", "xxs", "--fps", "15")
    assert result.returncode == 0, result.stderr
    image, video = lines(result)
    assert image["result"]["faces"][0]["expression"] == "happiness"
    local = lines(microexp("predict", photo, "--model", "xxs"))[0]["result"]
    assert image["result"]["faces"] == local["faces"]
    assert [frame["index"] for frame in video["result"]["frames"]] == [0, 2, 4]
    direct = httpx.post(
        f"{shipped_server.url}/v1/video", params={"model": "xxs", "fps": 15}, files={"video": clip.open("rb")}
    ).json()
    assert video["result"]["frames"] == direct["frames"]


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.seen.append(dict(self.headers))
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"error": {"code": "unauthorized", "message": "no", "details": None}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_api_key_is_sent_as_a_bearer_token(folder: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = microexp("predict", folder / "photo.jpg", "--url", url, "--api-key", "s3cret")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert lines(result)[0]["error"]["code"] == "unauthorized"
    assert _Recorder.seen[-1]["Authorization"] == "Bearer s3cret"
