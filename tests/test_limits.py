"""The limits that protect the box, on real servers: a saturated worker refuses with 503 and Retry-After instead
of queueing without bound, slow uploads and long waits are cut by the request timeout, probes still answer, and
faces per image are capped. (Body bytes and pixels: test_api_errors.)"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import pytest
from server_fixture import ServiceProcess, astronaut, encode, two_faces

pytest_plugins = ["server_fixture"]

UPLOAD_TIMEOUT = 2.0
PROBES = ["/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"]


def start(request: pytest.FixtureRequest, store: Path, log: Path, **env: str) -> ServiceProcess:
    service = ServiceProcess(store, log, env={f"MICROEXP_{key.upper()}": value for key, value in env.items()})
    request.addfinalizer(service.stop)
    service.wait_ready()
    return service


@pytest.fixture(scope="module")
def one_slot(
    request: pytest.FixtureRequest, model_store_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    """One request at a time and none waiting; at most one face per image."""
    log = tmp_path_factory.mktemp("one-slot") / "service.log"
    limits = {"max_concurrency": "1", "max_queue": "0", "request_timeout": str(UPLOAD_TIMEOUT), "max_faces": "1"}
    return start(request, model_store_root, log, **limits)


@contextlib.contextmanager
def stalled_upload(service: ServiceProcess, path: str, media: str, body: bytes) -> Iterator[socket.socket]:
    """A client that sends the headers and part of the body, then nothing."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as raw:
        head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {media}\r\nContent-Length: {len(body)}\r\n\r\n"
        raw.sendall(head.encode() + body[: len(body) // 2])
        yield raw


def response_on(raw: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(raw)
    response.begin()
    return response


def first(request: Callable[[], httpx.Response], status: int, within: float = 20.0) -> httpx.Response:
    """Repeat `request` until it answers `status` (the server has taken in what came before); 200 until then."""
    deadline = time.monotonic() + within
    while (response := request()).status_code != status:
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, f"never answered {status}"
        time.sleep(0.05)
    return response


def test_a_saturated_worker_refuses_at_once_and_probes_still_answer(one_slot: ServiceProcess) -> None:
    with (
        stalled_upload(one_slot, "/v1/predict", "image/jpeg", encode(astronaut())) as slow,
        httpx.Client(base_url=one_slot.url, timeout=30) as client,
    ):
        # The stalled upload holds the only slot, and there is no queue.
        refused = first(lambda: client.get("/v1/models"), 503)
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused.json()["error"]["details"] == {"retry_after_seconds": 1}
        oip = client.post("/v2/models/microexpnet_m/infer", json={"inputs": []})
        assert oip.status_code == 503 and oip.headers["retry-after"] == "1"
        assert set(oip.json()) == {"error"} and "busy" in oip.json()["error"]
        for probe in PROBES:
            assert client.get(probe).status_code == 200, probe
        # The stalled client is cut off at the request timeout, and its slot is free again.
        cut = response_on(slow)
        assert cut.status == 408 and cut.getheader("connection") == "close"
        assert json.loads(cut.read())["error"]["code"] == "upload_timeout"
        assert client.get("/v1/models").status_code == 200
    assert one_slot.process.poll() is None


def test_a_stalled_json_upload_gets_408_in_the_protocols_shape(one_slot: ServiceProcess) -> None:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 84, 84], "datatype": "FP32", "data": [0] * 7056}]})
    with stalled_upload(one_slot, "/v2/models/microexpnet_m/infer", "application/json", body.encode()) as slow:
        cut = response_on(slow)
        assert cut.status == 408
        assert f"within {UPLOAD_TIMEOUT:g} s" in json.loads(cut.read())["error"]


def test_faces_per_image_are_capped_by_the_server(one_slot: ServiceProcess) -> None:
    image = encode(two_faces(), ".png")
    with httpx.Client(base_url=one_slot.url, timeout=60) as client:
        for params in ({}, {"max_faces": 5}):
            response = client.post("/v1/predict", params=params, content=image, headers={"content-type": "image/png"})
            assert response.status_code == 200 and len(response.json()["faces"]) == 1


@pytest.fixture(scope="module")
def slow_worker(
    request: pytest.FixtureRequest, model_store_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    """One slot, one place in the queue, a short wait, and a Haar detector slow on large images."""
    log = tmp_path_factory.mktemp("slow-worker") / "service.log"
    limits = {
        "max_concurrency": "1",
        "max_queue": "1",
        "request_timeout": "0.5",
        "detector": "haar",
        "haar_max_side": "4096",
    }
    return start(request, model_store_root, log, **limits)


def test_a_queued_request_gets_503_when_no_slot_frees_in_time(slow_worker: ServiceProcess) -> None:
    # Haar over 5.8 megapixels takes seconds: far longer than the half second a queued request may wait.
    large = encode(cv2.resize(astronaut(), (2400, 2400)))
    results: list[httpx.Response] = []

    def hold_the_slot() -> None:
        with httpx.Client(base_url=slow_worker.url, timeout=120) as http:
            results.append(http.post("/v1/predict?model=xxs", content=large, headers={"content-type": "image/jpeg"}))

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        with httpx.Client(base_url=slow_worker.url, timeout=30) as client:
            waited = first(lambda: client.get("/v1/models"), 503)
            assert not results, "the slow request ended before a queued one timed out"
            assert waited.json()["error"]["code"] == "timeout" and waited.headers["retry-after"] == "1"
    finally:
        holder.join()
    # Work that had its slot is not interrupted: the slow request is answered in full.
    (answer,) = results
    assert answer.status_code == 200 and answer.json()["faces"]
