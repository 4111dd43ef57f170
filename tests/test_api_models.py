"""GET /v1/models, health, readiness, metrics, request ids and logs, and the OpenAPI document."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from server_fixture import ServiceProcess, astronaut, detectors, encode

from model_store.store import ModelStore
from model_store.vocabulary import SIZES

pytest_plugins = ["server_fixture"]


def test_models_lists_every_size_with_its_metadata(client: httpx.Client, model_store_root: Path) -> None:
    body = client.get("/v1/models").json()
    assert body["default_size"] == "M"
    assert body["detectors"] == detectors()
    assert body["default_detector"] == "yunet"
    assert body["refused"] == []
    assert body["families"] == ["microexpnet"]
    assert [entry["size"] for entry in body["models"]] == list(SIZES)
    assert all(entry["default"] and entry["family"] == "microexpnet" for entry in body["models"])
    store = ModelStore(model_store_root)
    for entry in body["models"]:
        assert entry["default_version"] == 1
        (version,) = entry["versions"]
        metadata = store.metadata(entry["name"], 1)
        assert version["sha256"] == metadata.sha256
        assert version["file_bytes"] == metadata.file_bytes
        assert version["parameters"] == metadata.parameters > 0
        assert version["labels"] == metadata.labels
        assert "metrics" in version and "preprocess" in version
    parameters = [entry["versions"][0]["parameters"] for entry in body["models"]]
    assert parameters == sorted(parameters, reverse=True)  # M > S > XS > XXS


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    names = {size: f"microexpnet_{size.lower()}" for size in SIZES}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "served": dict.fromkeys(names.values(), 1),
        "defaults": names,
    }


def test_request_id_header_matches_the_body_and_echoes_a_callers_id(client: httpx.Client) -> None:
    image = encode(astronaut())
    response = client.post("/v1/predict", content=image, headers={"content-type": "image/jpeg"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]
    mine = client.post("/v1/predict", content=image, headers={"content-type": "image/jpeg", "x-request-id": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42" == mine.json()["request_id"]
    unsafe = client.get("/healthz", headers={"x-request-id": "no spaces\tor tabs"})
    assert unsafe.headers["x-request-id"] != "no spaces\tor tabs"
    assert client.get("/v2/nothing").headers["x-request-id"]  # errors carry one too


def test_one_json_log_line_per_request(client: httpx.Client, server: ServiceProcess) -> None:
    response = client.post("/v1/predict?model=xxs", content=encode(astronaut()), headers={"content-type": "image/jpeg"})
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 10  # written just after the response is sent
    while not (lines := [json.loads(line) for line in server.log().splitlines() if request_id in line]):
        assert time.monotonic() < deadline, "no log line for the request"
        time.sleep(0.05)
    (line,) = lines
    assert line["message"] == "request" and line["request_id"] == request_id
    assert line["endpoint"] == "/v1/predict" and line["status"] == 200
    assert line["model"] == "microexpnet_xxs" and line["version"] == 1 and line["faces"] == 1
    assert line["duration_ms"] > 0


def _sample(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_and_latency_by_endpoint_size_and_status(client: httpx.Client) -> None:
    before = client.get("/metrics").text
    image = encode(astronaut())
    for _ in range(3):
        client.post("/v1/predict?model=XS", content=image, headers={"content-type": "image/jpeg"})
    client.post("/v1/predict?model=XS", content=b"junk", headers={"content-type": "image/jpeg"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    ok = {"endpoint": "/v1/predict", "model": "microexpnet_xs", "size": "XS", "status": "200"}
    bad = {**ok, "status": "400"}
    assert _sample(after, "microexp_requests_total", **ok) - _sample(before, "microexp_requests_total", **ok) == 3
    assert _sample(after, "microexp_requests_total", **bad) - _sample(before, "microexp_requests_total", **bad) == 1
    count = "microexp_request_duration_seconds_count"
    assert _sample(after, count, **ok) - _sample(before, count, **ok) == 3
    assert _sample(after, "microexp_request_duration_seconds_bucket", **ok, le="+Inf") >= 3


def test_openapi_documents_every_response_and_error(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in (
        "PredictResponse",
        "ModelsResponse",
        "ErrorResponse",
        "ErrorDetail",
        "ReadyResponse",
        "ReloadResponse",
    ):
        assert name in schemas
    assert schemas["ErrorDetail"]["properties"]["code"]["$ref"].endswith("/ErrorCode")
    assert {"invalid_image", "payload_too_large", "image_too_large", "unknown_model_size"} <= set(
        schemas["ErrorCode"]["enum"]
    )
    error_ref = "#/components/schemas/ErrorResponse"
    predict = document["paths"]["/v1/predict"]["post"]
    for status in ("400", "404", "413", "415", "422", "503"):
        assert predict["responses"][status]["content"]["application/json"]["schema"]["$ref"] == error_ref
    assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictResponse")
    body = predict["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"} <= set(body)
    parameters = {parameter["name"] for parameter in predict["parameters"]}
    assert parameters == {"model", "family", "arch", "version", "detect", "detector", "max_faces", "align", "views"}
    annotate = document["paths"]["/v1/annotate"]["post"]
    assert {"image/jpeg", "image/png"} <= set(annotate["responses"]["200"]["content"])
    assert annotate["responses"]["415"]["content"]["application/json"]["schema"]["$ref"] == error_ref
    for path in ("/v1/models", "/healthz", "/readyz", "/metrics", "/admin/reload"):
        (operation,) = document["paths"][path].values()
        assert "200" in operation["responses"]
    assert (
        document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]["$ref"]
        == error_ref
    )
    assert "/" not in document["paths"]  # the page is not part of the API
    assert "HTTPValidationError" not in schemas  # validation errors, too, are documented as ErrorResponse
