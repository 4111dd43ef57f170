"""New versions are served without a restart; versions that fail verification are refused."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from server_fixture import ServiceProcess, astronaut, encode
from store_factory import publish_student

from model_store.store import ModelStore
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]

IMAGE = encode(astronaut())
NAME = "microexpnet_xxs"


def predict(http: httpx.Client | TestClient, **params: object) -> httpx.Response:
    return http.post(
        "/v1/predict", params={"model": "XXS", **params}, content=IMAGE, headers={"content-type": "image/jpeg"}
    )


def test_version_published_while_running_is_served_next(store_copy: ModelStore, tmp_path: Path) -> None:
    service = ServiceProcess(store_copy.root, tmp_path / "service.log")
    try:
        service.wait_ready()
        stop = threading.Event()
        seen: list[tuple[int, int]] = []  # (status, version) of requests running across the reload

        def keep_asking() -> None:
            with httpx.Client(base_url=service.url, timeout=60) as http:
                while not stop.is_set():
                    response = predict(http)
                    seen.append((response.status_code, response.json().get("model", {}).get("version", 0)))

        worker = threading.Thread(target=keep_asking)
        worker.start()
        try:
            assert publish_student(store_copy, "XXS", seed=1) == 2
            with httpx.Client(base_url=service.url, timeout=60) as http:
                deadline = time.monotonic() + 60
                while predict(http).json()["model"]["version"] != 2:
                    assert time.monotonic() < deadline, "version 2 was not picked up"
                    time.sleep(0.2)
                old, new = predict(http, version=1).json(), predict(http).json()
                served = http.get("/readyz").json()["served"]
        finally:
            stop.set()
            worker.join()
        assert {status for status, _ in seen} == {200}
        assert seen[0][1] == 1 and seen[-1][1] == 2
        assert old["model"]["version"] == 1 and new["model"]["version"] == 2
        assert old["faces"][0]["probabilities"] != new["faces"][0]["probabilities"]  # other weights
        assert served["microexpnet_xxs"] == 2 and served["microexpnet_m"] == 1
        assert service.process.poll() is None
    finally:
        service.stop()


def corrupt_copy(store: ModelStore, source: int, target: int) -> None:
    """Version `target` appears at once (one rename, as the store publishes) with a damaged model file."""
    model_dir = store.root / NAME
    staging = model_dir / f".staging-test-{target}"
    shutil.copytree(model_dir / str(source), staging)
    metadata = json.loads((staging / "metadata.json").read_text())
    metadata["version"] = target
    (staging / "metadata.json").write_text(json.dumps(metadata))
    model = bytearray((staging / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (staging / "model.onnx").write_bytes(bytes(model))
    os.rename(staging, model_dir / str(target))


def test_admin_reload_refuses_a_corrupt_version_and_keeps_serving(store_copy: ModelStore) -> None:
    settings = Settings(store=store_copy.root, reload_interval=0, admin_token="admin")
    with TestClient(create_app(settings), headers={"Authorization": "Bearer admin"}) as local:
        publish_student(store_copy, "XXS", seed=1)
        assert predict(local).json()["model"]["version"] == 1  # no polling: nothing changes by itself
        reloaded = local.post("/admin/reload").json()
        assert reloaded["changed"] is True and reloaded["served"]["microexpnet_xxs"] == 2

        corrupt_copy(store_copy, source=2, target=3)  # the store would now serve 3, the highest
        reloaded = local.post("/admin/reload").json()
        assert reloaded["served"]["microexpnet_xxs"] == 2
        (refused,) = reloaded["refused"]
        assert (refused["name"], refused["version"]) == (NAME, 3) and "sha256" in refused["reason"]
        assert predict(local).json()["model"]["version"] == 2
        response = predict(local, version=3)
        assert response.status_code == 404 and "refused" in response.json()["error"]["message"]
        assert local.get("/v1/models").json()["refused"] == [refused]
        assert local.post("/admin/reload").json()["changed"] is False

        store_copy.promote(NAME, 1)  # the pointer, too, is followed
        assert local.post("/admin/reload").json()["served"]["microexpnet_xxs"] == 1
        assert predict(local).json()["model"]["version"] == 1
