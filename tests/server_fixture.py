"""The real service under uvicorn on a loopback port, its model store, and the test images.

Test modules use the fixtures through ``pytest_plugins = ["server_fixture"]`` so that the session-scoped
server is started once for all of them. They also import the helpers below before pytest loads the module as a
plugin, so pytest could not rewrite its asserts anyway: PYTEST_DONT_REWRITE (it has none) avoids the warning.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import REPO
from skimage import data
from store_factory import make_store

from model_store.store import ModelStore

# Small limits so that the limit tests need no large uploads; every legitimate test image fits.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 6_000_000
# The astronaut's face in skimage.data.astronaut() (x, y, width, height), as every detector finds it.
ASTRONAUT_FACE = (178, 65, 92, 100)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """``python -m service`` as a subprocess; its log (JSON lines) is kept in a file for the tests to read."""

    def __init__(self, store: Path | None, log_path: Path, *, env: dict[str, str] | None = None) -> None:
        """`store` None: the service's default, the repository's models/."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            **os.environ,
            "MICROEXP_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "MICROEXP_MAX_PIXELS": str(MAX_PIXELS),
            **(env or {}),
        }
        args = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--reload-interval", "0.5"] + (["--store", str(store)] if store is not None else [])
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(args, cwd=REPO, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"service not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def detectors() -> list[str]:
    """Every detector, the default first: the store holds YuNet's file and the dev install has MTCNN's extra."""
    return ["yunet", "haar", "mtcnn"]


@pytest.fixture(scope="session")
def model_store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with every size, version 1, published through the real export path; tests must not modify it."""
    root = tmp_path_factory.mktemp("service") / "store"
    make_store(root)
    return root


@pytest.fixture
def store_copy(model_store_root: Path, tmp_path: Path) -> ModelStore:
    """A private copy of the session store, for tests that publish or break versions."""
    return ModelStore(shutil.copytree(model_store_root, tmp_path / "store"))


@contextmanager
def serving(store: Path | None, log_path: Path, env: dict[str, str] | None = None) -> Iterator[ServiceProcess]:
    """A ServiceProcess (`store` None: the shipped models), ready, stopped afterwards."""
    service = ServiceProcess(store, log_path, env=env)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def started(request: pytest.FixtureRequest, store: Path, log_path: Path, env: dict[str, str]) -> ServiceProcess:
    """A ready ServiceProcess, stopped when `request`'s fixture or test ends."""
    service = ServiceProcess(store, log_path, env=env)
    request.addfinalizer(service.stop)
    service.wait_ready()
    return service


# Every access setting on, as an exposed deployment would have them; the rate is far above what one test sends.
API_KEY = "api-key-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"
LOCKED_DOWN = {
    "MICROEXP_API_KEYS": API_KEY,
    "MICROEXP_ADMIN_TOKEN": ADMIN_TOKEN,
    "MICROEXP_RATE_LIMIT_PER_CLIENT": "1000",
    "MICROEXP_TRUSTED_PROXIES": "192.0.2.0/24",
}


@pytest.fixture(scope="session")
def locked_server(model_store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The session server's twin with every access setting on; requests need ``API_KEY``."""
    service = ServiceProcess(model_store_root, tmp_path_factory.mktemp("logs") / "locked.log", env=LOCKED_DOWN)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def server(model_store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with serving(model_store_root, tmp_path_factory.mktemp("logs") / "service.log") as service:
        yield service


@pytest.fixture(scope="session")
def client(server: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


# Images ---------------------------------------------------------------------------------------------------


def astronaut() -> np.ndarray:
    """A real photograph with one frontal face, BGR."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, encoded = cv2.imencode(ext, image)
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {image.shape} image as {ext}")
    return encoded.tobytes()


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header (valid CRC) declaring any size, with one tiny data chunk: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    )  # fmt: skip


def two_faces() -> np.ndarray:
    """Two astronaut head crops side by side (the right one mirrored, so they are not pixel twins)."""
    head = astronaut()[0:300, 100:350]
    return np.hstack([head, cv2.flip(head, 1)])


def gradient(width: int = 640, height: int = 480) -> np.ndarray:
    """A smooth colour gradient: no face anywhere."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.dstack([np.broadcast_to(x, (height, width)), (x + y) / 2, np.broadcast_to(y, (height, width))]).astype(
        np.uint8
    )


def centre(box: dict[str, int]) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def inside(point: tuple[float, float], region: tuple[float, float, float, float]) -> bool:
    x, y, w, h = region
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def face_clip(
    path: Path, fourcc: str = "MJPG", faces: int = 20, blanks: int = 10, size: tuple[int, int] = (640, 480)
) -> Path:
    """A 30 frames/s video written by OpenCV: `faces` frames of the astronaut (drifting right a pixel a frame, so
    that frames differ), then `blanks` frames of a gradient; 640x480 unless `size` says otherwise."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 30.0, size)
    if not writer.isOpened():
        raise ValueError(f"OpenCV cannot write {fourcc} to {path}")
    photo = cv2.resize(astronaut(), (height, height))
    for index in range(faces):
        frame = gradient(width, height)
        frame[:, 40 + index : 40 + index + height] = photo
        writer.write(frame)
    for _ in range(blanks):
        writer.write(gradient(width, height))
    writer.release()
    return path
