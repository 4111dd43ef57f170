"""Bad input gets a clear JSON error with a stable shape and the right status, and the server stays up."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_fixture import (
    MAX_BODY_BYTES,
    MAX_PIXELS,
    ServiceProcess,
    astronaut,
    encode,
    gradient,
    png_declaring,
)

from model_store.store import ModelStore
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]


def error_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def post(client: httpx.Client, content: bytes, media: str | None = "image/jpeg", **params: object) -> httpx.Response:
    headers = {"content-type": media} if media else {}
    return client.post("/v1/predict", params=params, content=content, headers=headers)


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/annotate"])
def test_not_an_image(client: httpx.Client, path: str) -> None:
    response = client.post(path, content=b"these bytes are no picture", headers={"content-type": "image/png"})
    assert "not a readable image" in error_of(response, 400, "invalid_image")["message"]


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_image(client: httpx.Client, ext: str) -> None:
    data = encode(astronaut(), ext)
    error = error_of(post(client, data[: len(data) * 2 // 3]), 400, "invalid_image")
    assert "truncated or corrupt" in error["message"]


def test_empty_body(client: httpx.Client) -> None:
    error_of(post(client, b""), 400, "invalid_image")


@pytest.mark.parametrize("media", ["text/plain", "application/json", "image/tiff", "image/svg+xml", None])
def test_unsupported_content_type(client: httpx.Client, media: str | None) -> None:
    error = error_of(post(client, encode(astronaut()), media), 415, "unsupported_media_type")
    assert "image/jpeg" in error["message"]


def test_unsupported_type_of_a_multipart_file(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.fromarray(astronaut()).save(buffer, "TIFF")
    files = {"image": ("astronaut.tiff", buffer.getvalue(), "image/tiff")}
    error_of(client.post("/v1/predict", files=files), 415, "unsupported_media_type")


def test_multipart_without_the_image_field(client: httpx.Client) -> None:
    files = {"picture": ("astronaut.jpg", encode(astronaut()), "image/jpeg")}
    assert "'image'" in error_of(client.post("/v1/predict", files=files), 422, "missing_image")["message"]


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(server: ServiceProcess) -> None:
    # Only the headers go out: the server must answer without waiting for (or reading) the body.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", "/v1/predict")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert b'"payload_too_large"' in response.read()
    assert response.getheader("X-Request-ID")
    connection.close()


# The JSON of /v2 is read by FastAPI itself, which must pass the limit's 413 on rather than call it a parse error.
@pytest.mark.parametrize(
    ("path", "media"), [("/v1/predict", "image/jpeg"), ("/v2/models/microexpnet_m/infer", "application/json")]
)
def test_streamed_body_over_the_limit_is_refused(server: ServiceProcess, path: str, media: str) -> None:
    # Chunked, so no Content-Length to check: the server counts while reading and stops at the limit.
    chunk = b"\0" * 65536
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {media}\r\n".encode())
        raw.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may stop listening before the end
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                raw.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        response = http.client.HTTPResponse(raw)
        response.begin()
        assert response.status == 413
        error = json.loads(response.read())["error"]
        message = error if path.startswith("/v2/") else error["message"]  # each API's error shape
        assert f"larger than {MAX_BODY_BYTES} bytes" in message


def test_streamed_body_under_the_limit_is_accepted(client: httpx.Client) -> None:
    data = encode(astronaut())

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 10_000):
            yield data[start : start + 10_000]

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and len(response.json()["faces"]) == 1


def test_image_over_the_pixel_limit(client: httpx.Client) -> None:
    side = int(MAX_PIXELS**0.5) + 10
    image = cv2.resize(gradient(), (side, side))  # a real image, small as a PNG, too many pixels
    error = error_of(post(client, encode(image, ".png"), "image/png"), 413, "image_too_large")
    assert error["details"] == {"width": side, "height": side, "max_pixels": MAX_PIXELS}


def test_decompression_bomb_is_refused_from_its_header(client: httpx.Client) -> None:
    error = error_of(post(client, png_declaring(200_000, 200_000), "image/png"), 413, "image_too_large")
    assert "200000x200000" in error["message"]


@pytest.mark.parametrize("size", ["XL", "L", "xxxs", ""])
def test_unknown_size_lists_the_valid_ones(client: httpx.Client, size: str) -> None:
    error = error_of(post(client, encode(astronaut()), model=size), 422, "unknown_model_size")
    assert error["details"] == {"valid": ["M", "S", "XS", "XXS"]}
    assert "M, S, XS, XXS" in error["message"]


def test_unknown_version(client: httpx.Client) -> None:
    error = error_of(post(client, encode(astronaut()), model="XS", version=42), 404, "unknown_version")
    assert error["details"] == {"versions": [1]}


@pytest.mark.parametrize(
    "params",
    [{"max_faces": 0}, {"version": "latest"}, {"detect": "maybe"}, {"detector": "dlib"}, {"format": "tiff"}],
)
def test_invalid_query_parameters_use_the_error_shape(client: httpx.Client, params: dict) -> None:
    response = client.post(
        "/v1/annotate", params=params, content=encode(astronaut()), headers={"content-type": "image/jpeg"}
    )
    error = error_of(response, 422, "validation_error")
    (field,) = error["details"]
    assert field["location"] == f"query.{next(iter(params))}"


def test_unknown_route_and_method(client: httpx.Client) -> None:
    error_of(client.get("/v1/predictions"), 404, "not_found")
    error_of(client.get("/v1/predict"), 405, "method_not_allowed")


def test_server_survives_bad_input(client: httpx.Client, server: ServiceProcess) -> None:
    broken_gif = b"GIF89a" + struct.pack("<HHB", 10, 10, 0) + b"\0\0,"
    for content in (b"\xff\xd8\xff" + b"\0" * 100, b"\x89PNG\r\n\x1a\n" + b"\xff" * 100, broken_gif):
        assert post(client, content).status_code == 400
    assert server.process.poll() is None
    assert client.get("/healthz").json() == {"status": "ok"}
    assert "Traceback" not in server.log()


def test_no_model_loaded_is_503(tmp_path: Path) -> None:
    empty = tmp_path / "empty-store"
    empty.mkdir()
    with TestClient(create_app(Settings(store=empty, reload_interval=0))) as local:
        error_of(local.get("/readyz"), 503, "not_ready")
        response = local.post("/v1/predict", content=encode(astronaut()), headers={"content-type": "image/jpeg"})
        assert error_of(response, 503, "model_unavailable")["details"] == {"loaded_models": []}
        assert local.get("/healthz").status_code == 200
        assert local.get("/v1/models").json()["models"] == []


def test_missing_store_is_503_not_a_crash(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(store=tmp_path / "absent", reload_interval=0))) as local:
        assert "absent" in error_of(local.get("/readyz"), 503, "not_ready")["message"]


def test_jpeg_output_too_wide_asks_for_png(model_store_root: Path) -> None:
    wide = np.zeros((2, 70_000, 3), np.uint8)
    with TestClient(create_app(Settings(store=model_store_root, reload_interval=0))) as local:
        response = local.post(
            "/v1/annotate?detect=false", content=encode(wide, ".png"), headers={"content-type": "image/png"}
        )
        assert "format=png" in error_of(response, 422, "validation_error")["message"]
        response = local.post(
            "/v1/annotate?detect=false&format=png", content=encode(wide, ".png"), headers={"content-type": "image/png"}
        )
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"


def test_ready_only_when_the_default_size_is_loaded(store_copy: ModelStore) -> None:
    for name in ("microexpnet_m", "microexpnet_s"):
        shutil.rmtree(store_copy.root / name)
    with TestClient(create_app(Settings(store=store_copy.root, reload_interval=0))) as local:
        assert "default size M" in error_of(local.get("/readyz"), 503, "not_ready")["message"]
        response = local.post("/v1/predict", content=encode(astronaut()), headers={"content-type": "image/jpeg"})
        assert error_of(response, 503, "model_unavailable")["details"] == {
            "loaded_models": ["microexpnet_xs", "microexpnet_xxs"]
        }
    with TestClient(create_app(Settings(store=store_copy.root, default_size="xs", reload_interval=0))) as local:
        assert local.get("/readyz").json() == {
            "status": "ready",
            "served": {"microexpnet_xs": 1, "microexpnet_xxs": 1},
            "defaults": {"XS": "microexpnet_xs", "XXS": "microexpnet_xxs"},
        }
