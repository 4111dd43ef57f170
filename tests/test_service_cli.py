"""``python -m service`` and its settings: flags, MICROEXP_* variables and refusing a wrong configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO, YUNET
from server_fixture import ServiceProcess, astronaut, encode

from model_store.store import ModelStore, yunet_file
from model_store.vocabulary import SIZES
from service.settings import DEFAULT_STORE, Settings

pytest_plugins = ["server_fixture"]


def run_service(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [name for name in os.environ if name.startswith("MICROEXP_")]:
        monkeypatch.delenv(variable)
    settings = Settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.store == DEFAULT_STORE == REPO / "models"
    assert (settings.detector, settings.yunet_path) == ("yunet", YUNET)


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MICROEXP_STORE", str(tmp_path))
    monkeypatch.setenv("MICROEXP_DEFAULT_SIZE", "xxs")
    monkeypatch.setenv("MICROEXP_PORT", "9123")
    monkeypatch.setenv("MICROEXP_ORT_THREADS", "2")
    settings = Settings()
    assert (settings.store, settings.default_size, settings.port, settings.ort_threads) == (tmp_path, "XXS", 9123, 2)


def test_yunet_is_read_from_the_store_unless_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings(store=tmp_path).yunet_path == yunet_file(tmp_path)
    assert Settings(store=tmp_path, yunet_model=YUNET).yunet_path == YUNET
    monkeypatch.setenv("MICROEXP_DETECTOR", "haar")
    assert Settings().detector == "haar"


def test_wrong_yunet_file_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    wrong = tmp_path / "face_detection_yunet_2023mar.onnx"
    wrong.write_bytes(b"\0" * 1000)
    result = run_service("--yunet-model", str(wrong), "--port", "0")
    assert result.returncode != 0
    assert "invalid configuration" in result.stderr and "sha256" in result.stderr
    assert "opencv_zoo" in result.stderr and "Traceback" not in result.stderr


def test_unknown_default_size_stops_the_server(tmp_path: Path) -> None:
    result = run_service("--default-size", "XL", "--store", str(tmp_path))
    assert result.returncode != 0 and "M, S, XS, XXS" in result.stderr


def test_help_lists_the_flags() -> None:
    result = run_service("--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--store", "--workers", "--yunet-model", "--detector", "--reload-interval"):
        assert flag in result.stdout


def test_several_workers_share_their_metrics(model_store_root: Path, tmp_path: Path) -> None:
    service = ServiceProcess(model_store_root, tmp_path / "service.log", env={"MICROEXP_WORKERS": "2"})
    try:
        service.wait_ready()
        image = encode(astronaut())
        for _ in range(8):  # a new connection each time, so both workers get some
            response = httpx.post(
                f"{service.url}/v1/predict?model=XXS", content=image, headers={"content-type": "image/jpeg"}
            )
            assert response.status_code == 200
        metrics = httpx.get(f"{service.url}/metrics").text
        line = 'microexp_requests_total{endpoint="/v1/predict",model="microexpnet_xxs",size="XXS",status="200"}'
        (count,) = [float(row.rsplit(" ", 1)[1]) for row in metrics.splitlines() if row.startswith(line)]
        assert count == 8
        assert len({row for row in service.log().splitlines() if "Started server process" in row}) == 2
    finally:
        service.stop()


def test_service_never_imports_torch_tensorflow_or_onnx(model_store_root: Path, tmp_path: Path) -> None:
    # Serving must work where none is installed (MTCNN included; the image has no onnx package): make importing
    # them fail, then build and use the app.
    image = tmp_path / "astronaut.jpg"
    image.write_bytes(encode(astronaut()))
    script = f"""
import sys
sys.modules.update(dict.fromkeys(["torch", "tensorflow", "onnx"]))
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import Settings
with TestClient(create_app(Settings(store={str(model_store_root)!r}, reload_interval=0))) as client:
    assert client.get("/readyz").status_code == 200
    for detector in ("yunet", "haar", "mtcnn"):
        answer = client.post("/v1/predict", params={{"detector": detector}}, content=open({str(image)!r}, "rb").read(),
                             headers={{"content-type": "image/jpeg"}})
        assert answer.status_code == 200 and len(answer.json()["faces"]) == 1, answer.text
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_shipped_models_serve_from_the_default_store(tmp_path: Path) -> None:
    shipped = REPO / "models"
    if not (shipped.is_dir() and ModelStore(shipped).models()):
        pytest.skip(f"no models shipped in {shipped} yet")
    # No store, detector or YuNet setting, as `make serve` in a fresh clone.
    service = ServiceProcess(None, tmp_path / "service.log")
    try:
        service.wait_ready()
        image = encode(astronaut())
        for size in SIZES:
            response = httpx.post(
                f"{service.url}/v1/predict?model={size}", content=image, headers={"content-type": "image/jpeg"}
            )
            assert response.json()["detector"] == "yunet"
            (face,) = response.json()["faces"]
            if size == "M":
                assert face["expression"] == "happiness"  # the astronaut smiles broadly
    finally:
        service.stop()
