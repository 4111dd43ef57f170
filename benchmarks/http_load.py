"""End to end over HTTP: Debian's ``wrk`` against the real service on loopback, beside the same work in-process.

Two requests, both multipart uploads as a browser sends them: (a) a 640x480 JPEG with one face, detected and
classified; (b) an already-cropped 48x48 face with ``detect=false``. Each is run for two model sizes at 1, 8 and
64 connections. The in-process figure runs the service's own ``analyse`` (decode, detect, crop, classify) on
the same bytes in as many processes as the server has workers: what the HTTP layer costs is the difference.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.images import cropped_face, encode_jpeg, one_face_photo
from benchmarks.server import running_service
from service.settings import Settings

LUA = Path(__file__).resolve().parent / "multipart.lua"
BOUNDARY = "microexp-benchmark-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
CONNECTIONS = (1, 8, 64)
DETECTOR_CONNECTIONS = 8
DETECTOR_VIEWS = (2, 16)
# YuNet's working sizes tried as the default server's (MICROEXP_YUNET_MAX_SIDE), each on a server of its own.
YUNET_SIDES = (320, 480, 640)
SIZES = ("XXS", "M")
WRK_TIMEOUT_S = 30
# The admission queue sized for the 64-connection runs: by default a worker takes 8 requests at once and
# queues 32 more, and connections do not spread evenly over the workers, so 64 could overflow one worker's
# queue and be refused with 503 (by design: it sheds load rather than queue without bound).
SERVER_ENV = {"MICROEXP_MAX_QUEUE": str(max(CONNECTIONS))}


@dataclass(frozen=True)
class Workload:
    key: str
    description: str
    query: str  # besides model=
    detector: str | None  # None: detect=false

    def data(self) -> bytes:
        if self.detector is None:
            return encode_jpeg(cropped_face(48))
        return encode_jpeg(one_face_photo(640, 480).bgr)


WORKLOADS = {
    "a_yunet": Workload("a_yunet", "640x480 JPEG, one face, YuNet", "detector=yunet", "yunet"),
    "a_haar": Workload("a_haar", "640x480 JPEG, one face, Haar", "detector=haar", "haar"),
    "b_crop": Workload("b_crop", "48x48 cropped face, detect=false", "detect=false", None),
}


def one_face_body(folder: Path) -> Path:
    path = folder / "one_face.body"
    path.write_bytes(multipart(encode_jpeg(one_face_photo(640, 480).bgr)))
    return path


def multipart(data: bytes, filename: str = "image.jpg") -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def wrk(url: str, body: Path, connections: int, seconds: float) -> dict[str, object]:
    """One closed-loop wrk run (one thread: the load generator shares the machine with the server)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={WRK_TIMEOUT_S}s"]
    command += ["-s", str(LUA), url, "--", str(body), CONTENT_TYPE]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}\n{result.stderr}")
    raw = json.loads(lines[0].removeprefix("WRK_JSON "))
    latency = {key: value / 1000 for key, value in raw["latency_us"].items()}
    return {
        "connections": connections,
        "requests": raw["requests"],
        "seconds": raw["duration_us"] / 1e6,
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "latency_ms": latency,
        "errors": raw["errors"],
        "error_count": sum(raw["errors"].values()),
    }


def _inprocess_worker(
    store: str, size: str, detector: str | None, data: bytes, seconds: float, ort_threads: int
) -> float:
    """Requests per second of the service pipeline in this process (one loop, the same objects the app uses)."""
    from benchmarks.detection import default_size, make_detector
    from model_store.store import ModelStore
    from service.inference import load_model
    from service.pipeline import analyse

    model = load_model(ModelStore(Path(store)).resolve(size), ort_threads)
    face_detector = None if detector is None else make_detector(detector, default_size(detector), Path(store))
    for _ in range(5):
        analyse(data, model, face_detector, 20, 40_000_000)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        analyse(data, model, face_detector, 20, 40_000_000)
        count += 1
    return count / (time.perf_counter() - start)


def in_process(store: Path, size: str, workload: Workload, processes: int, ort_threads: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(_inprocess_worker, str(store), size, workload.detector, workload.data(), seconds, ort_threads)
            for _ in range(processes)
        ]
        return sum(future.result() for future in futures)


def bodies(folder: Path) -> dict[str, Path]:
    paths = {}
    for key, workload in WORKLOADS.items():
        paths[key] = folder / f"{key}.body"
        paths[key].write_bytes(multipart(workload.data()))
    return paths


def url_for(base: str, workload: Workload, size: str) -> str:
    return f"{base}/v1/predict?model={size}&{workload.query}"


def layouts(store: Path, seconds: float, logs: Path) -> list[dict[str, object]]:
    """Workers x onnxruntime threads on this machine: (a) and (b) with XXS at 8 connections for each layout."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = bodies(Path(tmp))
        for workers, threads in ((1, 1), (1, 2), (2, 1), (2, 2)):
            with running_service(
                store, logs / f"layout-{workers}x{threads}.log", workers=workers, ort_threads=threads, env=SERVER_ENV
            ) as svc:
                row: dict[str, object] = {"workers": workers, "ort_threads": threads}
                for key in ("a_yunet", "b_crop"):
                    url = url_for(svc.url, WORKLOADS[key], "XXS")
                    wrk(url, paths[key], 8, 2)  # warm-up: every worker, every pooled detector
                    row[key] = wrk(url, paths[key], 8, seconds)
                results.append(row)
    return results


def best_layout(rows: list[dict[str, object]]) -> tuple[int, int]:
    """The layout with the highest sum of (a) and (b) throughputs, each relative to its best layout."""
    best_a = max(row["a_yunet"]["requests_per_s"] for row in rows)
    best_b = max(row["b_crop"]["requests_per_s"] for row in rows)
    chosen = max(rows, key=lambda r: r["a_yunet"]["requests_per_s"] / best_a + r["b_crop"]["requests_per_s"] / best_b)
    return int(chosen["workers"]), int(chosen["ort_threads"])


def run(store: Path, seconds: float, logs: Path, workers: int, ort_threads: int) -> dict[str, object]:
    points = []
    comparisons = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = bodies(Path(tmp))
        with running_service(store, logs / "http.log", workers=workers, ort_threads=ort_threads, env=SERVER_ENV) as svc:
            for size in SIZES:
                for key in ("a_yunet", "b_crop"):
                    url = url_for(svc.url, WORKLOADS[key], size)
                    wrk(url, paths[key], 8, 2)
                    for connections in CONNECTIONS:
                        points.append({"workload": key, "size": size, **wrk(url, paths[key], connections, seconds)})
            url = url_for(svc.url, WORKLOADS["a_haar"], "XXS")
            wrk(url, paths["a_haar"], 8, 2)
            for connections in (1, 8):
                points.append({"workload": "a_haar", "size": "XXS", **wrk(url, paths["a_haar"], connections, seconds)})
        # After the server stopped, so the two never compete for the cores.
        for size in SIZES:
            for key in ("a_yunet", "b_crop"):
                rate = in_process(store, size, WORKLOADS[key], workers, ort_threads, seconds)
                http = next(p for p in points if p["workload"] == key and p["size"] == size and p["connections"] == 8)
                comparisons.append(
                    {
                        "workload": key,
                        "size": size,
                        "in_process_per_s": rate,
                        "http_per_s": http["requests_per_s"],
                        "http_share_of_in_process": http["requests_per_s"] / rate,
                    }
                )
    return {
        "workers": workers,
        "ort_threads": ort_threads,
        "server_env": SERVER_ENV,
        "workloads": {key: w.description for key, w in WORKLOADS.items()},
        "points": points,
        "in_process": comparisons,
    }


def answer(url: str, body: Path) -> dict[str, object]:
    """One request's JSON answer. It waits behind every request the server had already taken (its slots are
    handed out in turn), so it also tells when work abandoned by the previous run is done: a closed loop at 8
    connections leaves up to 8 requests running when wrk stops, 2-3 s of Haar on this machine, and the next run
    would start behind them."""
    request = urllib.request.Request(url, data=body.read_bytes(), headers={"Content-Type": CONTENT_TYPE})
    with urllib.request.urlopen(request, timeout=WRK_TIMEOUT_S) as response:
        return json.load(response)


def detectors(store: Path, seconds: float, logs: Path, names: list[str]) -> dict[str, object]:
    """The 640x480 one-face JPEG at 8 connections against a server with every default setting (one worker, the
    default size, detector, alignment and views), as it answers a request naming nothing, then naming each
    detector, then each number of test-time views (the candidates for a size's default); then servers alike but
    for YuNet's working size (the candidates for its default): one run, so the rates compare as ratios."""
    queries = {"default": "", **{name: f"detector={name}" for name in names}}
    queries.update({f"views={views}": f"views={views}" for views in DETECTOR_VIEWS})
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        body = one_face_body(Path(tmp))
        with running_service(store, logs / "detectors.log", yunet=False, reload_interval=None, log_level=None) as svc:
            default = answer(f"{svc.url}/v1/predict", body)["detector"]
            for label, query in queries.items():
                url = f"{svc.url}/v1/predict" + (f"?{query}" if query else "")
                wrk(url, body, DETECTOR_CONNECTIONS, 2)  # warm-up: the pooled detector objects, the first calls
                answer(url, body)
                points.append({"detector": label, **wrk(url, body, DETECTOR_CONNECTIONS, seconds)})
                answer(url, body)
        for side in (side for side in YUNET_SIDES if side != Settings().yunet_max_side):
            env = {"MICROEXP_YUNET_MAX_SIDE": str(side)}
            log = logs / f"detectors-yunet-{side}.log"
            with running_service(store, log, yunet=False, reload_interval=None, log_level=None, env=env) as svc:
                url = f"{svc.url}/v1/predict?detector=yunet"
                wrk(url, body, DETECTOR_CONNECTIONS, 2)
                answer(url, body)
                points.append({"detector": f"yunet at {side} px", **wrk(url, body, DETECTOR_CONNECTIONS, seconds)})
                answer(url, body)
    return {"default_detector": default, "connections": DETECTOR_CONNECTIONS, "points": points}
