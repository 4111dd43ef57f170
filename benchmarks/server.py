"""The real service (``python -m service``) on a free loopback port, for the benchmarks and the load run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
YUNET = SHARED / "reference" / "face_detection" / "yunet_2023mar.onnx"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor); empty with a single worker."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        # multiprocessing's resource tracker is a child too; workers are the ones running uvicorn's target.
        return [pid for pid in pids if b"multiprocessing.spawn" in _cmdline(pid)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"service not ready after {timeout} s:\n{log_path.read_text(errors='replace')}")


@contextmanager
def running_service(
    store: Path,
    log_path: Path,
    *,
    workers: int = 1,
    ort_threads: int = 1,
    yunet: bool = True,
    reload_interval: float | None = 5.0,
    log_level: str | None = "warning",
    env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """The service with `workers` uvicorn workers and `ort_threads` onnxruntime threads each, stopped after;
    `reload_interval` and `log_level` None keep the service's defaults."""
    port = free_port()
    args = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), "--store", str(store)]
    args += ["--workers", str(workers)]
    if reload_interval is not None:
        args += ["--reload-interval", str(reload_interval)]
    if log_level is not None:
        args += ["--log-level", log_level]
    if yunet:
        args += ["--yunet-model", str(YUNET)]
    environment = {**os.environ, "MICROEXP_ORT_THREADS": str(ort_threads), **(env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process, log_path)
            if workers > 1:  # /readyz answered by one worker; give the others time to load their models
                _wait_workers(url, process, log_path, workers)
            yield Service(process, url, log_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_workers(url: str, process: subprocess.Popen[bytes], log_path: Path, workers: int) -> None:
    # Each new connection lands on whichever worker accepts first; a run of ready answers from fresh
    # connections is good evidence that every worker is up.
    for _ in range(4 * workers):
        wait_ready(url, process, log_path)
