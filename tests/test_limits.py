"""The limits that protect the box, on real servers: a saturated worker refuses with 503 and Retry-After instead
of queueing without bound, long waits are cut by the request timeout, slow uploads hold no slot and are cut by the
body timeout, the bodies held in memory are bounded, probes still answer, and faces per image are capped. (Body
bytes and pixels: test_api_errors.)"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import pytest
from pydantic import ValidationError
from server_fixture import ServiceProcess, astronaut, encode, started, two_faces

from service.settings import Settings

pytest_plugins = ["server_fixture"]

UPLOAD_TIMEOUT = 2.0
PROBES = ["/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"]


def start(request: pytest.FixtureRequest, store: Path, log: Path, **env: str) -> ServiceProcess:
    return started(request, store, log, {f"MICROEXP_{key.upper()}": value for key, value in env.items()})


@pytest.fixture(scope="module")
def one_slot(
    request: pytest.FixtureRequest, model_store_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    """One request at a time and none waiting; at most one face per image; a Haar detector slow on large images."""
    log = tmp_path_factory.mktemp("one-slot") / "service.log"
    limits = {
        "max_concurrency": "1",
        "max_queue": "0",
        "body_timeout": str(UPLOAD_TIMEOUT),
        "max_faces": "1",
        "detector": "haar",
        "haar_max_side": "4096",
    }
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


@contextlib.contextmanager
def slot_held(service: ServiceProcess) -> Iterator[list[httpx.Response]]:
    """A request that holds a slot for seconds (Haar over 5.8 megapixels); its answer is in the list afterwards."""
    large = encode(cv2.resize(astronaut(), (2400, 2400)))
    results: list[httpx.Response] = []

    def hold_the_slot() -> None:
        with httpx.Client(base_url=service.url, timeout=120) as http:
            results.append(http.post("/v1/predict?model=xxs", content=large, headers={"content-type": "image/jpeg"}))

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        yield results
    finally:
        holder.join()


def test_a_saturated_worker_refuses_at_once_and_probes_still_answer(one_slot: ServiceProcess) -> None:
    with slot_held(one_slot) as results, httpx.Client(base_url=one_slot.url, timeout=30) as client:
        # The slow request holds the only slot, and there is no queue.
        refused = first(lambda: client.get("/v1/models"), 503)
        assert not results, "the slow request ended before the worker was seen saturated"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused.json()["error"]["details"] == {"retry_after_seconds": 1}
        oip = client.post("/v2/models/microexpnet_m/infer", json={"inputs": []})
        assert oip.status_code == 503 and oip.headers["retry-after"] == "1"
        assert set(oip.json()) == {"error"} and "busy" in oip.json()["error"]
        for probe in PROBES:
            assert client.get(probe).status_code == 200, probe
    assert results[0].status_code == 200
    assert one_slot.process.poll() is None


def test_a_stalled_upload_holds_no_slot_and_is_cut_at_the_body_timeout(one_slot: ServiceProcess) -> None:
    image = encode(astronaut())
    with (
        stalled_upload(one_slot, "/v1/predict", "image/jpeg", image) as slow,
        httpx.Client(base_url=one_slot.url, timeout=30) as client,
    ):
        # The only slot is free for complete requests while the stalled body is still awaited.
        answer = client.post("/v1/predict", content=image, headers={"content-type": "image/jpeg"})
        assert answer.status_code == 200 and answer.json()["faces"]
        cut = response_on(slow)
        assert cut.status == 408 and cut.getheader("connection") == "close"
        assert json.loads(cut.read())["error"]["code"] == "upload_timeout"
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
    with slot_held(slow_worker) as results, httpx.Client(base_url=slow_worker.url, timeout=30) as client:
        waited = first(lambda: client.get("/v1/models"), 503)
        assert not results, "the slow request ended before a queued one timed out"
        assert waited.json()["error"]["code"] == "timeout" and waited.headers["retry-after"] == "1"
    # Work that had its slot is not interrupted: the slow request is answered in full.
    (answer,) = results
    assert answer.status_code == 200 and answer.json()["faces"]


@contextlib.contextmanager
def trickling_uploads(service: ServiceProcess, count: int, first_bytes: int) -> Iterator[list[socket.socket]]:
    """`count` clients that declare a 1 MB JPEG upload, send `first_bytes` of it, then a byte every half second."""
    connections = []
    stop = threading.Event()
    head = b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
    try:
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", service.port), timeout=30)
            raw.sendall(head + b"\xff" * first_bytes)
            connections.append(raw)

        def trickle() -> None:
            while not stop.wait(0.5):
                for raw in connections:
                    with contextlib.suppress(OSError):  # the server may have cut it
                        raw.send(b"\xff")

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            yield connections
        finally:
            stop.set()
            trickler.join()
    finally:
        for raw in connections:
            raw.close()


@pytest.fixture(scope="module")
def default_limits(
    request: pytest.FixtureRequest, model_store_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    """The shipped limits (8 slots, 32 waiting, 30 s for a body), with 1 MB bodies allowed, 2.5 MB held at most."""
    log = tmp_path_factory.mktemp("default-limits") / "service.log"
    limits = {"max_body_bytes": "1000000", "video_max_bytes": "1000000", "max_buffered_bytes": "2500000"}
    return start(request, model_store_root, log, **limits)


def test_48_slow_uploads_do_not_hold_up_normal_requests(default_limits: ServiceProcess) -> None:
    image = encode(astronaut())
    with trickling_uploads(default_limits, 48, 100), httpx.Client(base_url=default_limits.url, timeout=30) as client:
        for _ in range(10):
            start_time = time.monotonic()
            answer = client.post("/v1/predict", content=image, headers={"content-type": "image/jpeg"})
            waited = time.monotonic() - start_time
            assert answer.status_code == 200 and answer.json()["faces"], answer.text
            assert waited < 2.0, f"a normal request waited {waited:.1f} s behind 48 slow uploads"
    assert default_limits.process.poll() is None


def held_bytes(client: httpx.Client) -> float:
    metric = re.search(r"^microexp_request_body_bytes_held (\S+)$", client.get("/metrics").text, re.M)
    assert metric is not None
    return float(metric[1])


def test_bodies_held_in_memory_are_bounded(default_limits: ServiceProcess) -> None:
    image = encode(astronaut())
    assert len(image) > 40_000
    with httpx.Client(base_url=default_limits.url, timeout=30) as client:
        # Three partial bodies of 820 kB hold 2.46 of the 2.5 MB: no 99 kB image fits beside them.
        with trickling_uploads(default_limits, 3, 820_000):
            # Once the server holds all three (else the image could arrive first and the last upload be refused).
            deadline = time.monotonic() + 20
            while held_bytes(client) < 3 * 820_000:
                assert time.monotonic() < deadline, f"the server holds {held_bytes(client)} bytes"
                time.sleep(0.05)
            refused = first(
                lambda: client.post("/v1/predict", content=image, headers={"content-type": "image/jpeg"}), 503
            )
            assert refused.json()["error"]["code"] == "overloaded" and refused.headers["retry-after"] == "1"
        # Their clients gone, what they held is free again (once the server has seen them go).
        deadline = time.monotonic() + 10
        while (
            answer := client.post("/v1/predict", content=image, headers={"content-type": "image/jpeg"})
        ).status_code == 503:
            assert time.monotonic() < deadline, "the memory held by closed uploads was not freed"
            time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["faces"]


def test_a_body_limit_the_buffer_could_never_hold_stops_the_server_at_start() -> None:
    with pytest.raises(ValidationError, match="smaller than the largest body accepted"):
        Settings(max_buffered_bytes=50_000_000)  # the default video limit is 200 MiB
