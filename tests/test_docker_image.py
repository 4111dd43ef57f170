"""The container image, built from the unmodified Dockerfile and run for real.

Needs a Docker engine. Where `docker info` fails and ../shared/tools/local-docker.sh exists (it starts an engine
with locally built stand-ins for the base images), the module starts one and stops it afterwards; without an
engine the tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from conftest import REPO, SHARED
from server_fixture import ASTRONAUT_FACE, astronaut, centre, encode, inside

from model_store.labels import CANONICAL_LABELS
from model_store.store import ModelStore

pytest_plugins = ["server_fixture"]
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

LOCAL_DOCKER = SHARED / "tools" / "local-docker.sh"
IMAGE = "microexp:test"
IMAGE_BUDGET_BYTES = 500_000_000  # the size the image is meant to stay well under (docs/deploy.md)
HEALTHY_WITHIN_S = 120
# Kubernetes' restrictions (deploy/kubernetes/deployment.yaml), applied to every container the tests start.
RESTRICTED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def engine_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    started = False
    if not engine_running():
        if not LOCAL_DOCKER.is_file() or os.geteuid() != 0:
            pytest.skip(f"no Docker engine: `docker info` fails and {LOCAL_DOCKER} (run as root) cannot start one")
        start = subprocess.run(["bash", str(LOCAL_DOCKER), "start"], capture_output=True, text=True, timeout=1200)
        if start.returncode != 0 or not engine_running():
            pytest.skip(f"no Docker engine: {LOCAL_DOCKER} start failed:\n{start.stderr[-2000:]}")
        started = True
    yield
    if started:
        subprocess.run(["bash", str(LOCAL_DOCKER), "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def image(engine: None) -> dict[str, Any]:
    """`docker build` of the repository as it is; returns `docker image inspect`'s record."""
    docker("build", "--tag", IMAGE, str(REPO), timeout=1500)
    (record,) = json.loads(docker("image", "inspect", IMAGE).stdout)
    return record


@dataclass(frozen=True)
class Container:
    name: str
    url: str

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *command, check=False)


def wait_healthy(container: Container) -> None:
    """Until Docker reports the image's HEALTHCHECK passing."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container.name).stdout)
        if not state["Running"]:
            raise AssertionError(f"container exited with {state['ExitCode']}:\n{container.logs()}")
        health = state["Health"]["Status"]
        if health == "healthy":
            return
        if health == "unhealthy":
            raise AssertionError(f"HEALTHCHECK failed: {state['Health']['Log'][-1:]}\n{container.logs()}")
        time.sleep(1)
    raise AssertionError(f"not healthy after {HEALTHY_WITHIN_S} s:\n{container.logs()}")


@contextlib.contextmanager
def running(name: str, *options: str) -> Iterator[Container]:
    """The image, started detached with its port published on 127.0.0.1, healthy; removed afterwards."""
    docker("rm", "--force", name, check=False)  # left over from an interrupted run
    docker("run", "--detach", "--name", name, "--publish", "127.0.0.1::8000", *RESTRICTED, *options, IMAGE)
    try:
        host_port = docker("port", name, "8000/tcp").stdout.split()[0]  # "127.0.0.1:PORT"
        container = Container(name=name, url=f"http://{host_port}")
        wait_healthy(container)
        yield container
    finally:
        docker("rm", "--force", name, check=False)


def predict(container: Container, image: bytes, filename: str, size: str) -> dict[str, Any]:
    response = httpx.post(
        f"{container.url}/v1/predict", params={"model": size}, files={"image": (filename, image)}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_finds_the_astronaut(answer: dict[str, Any], size: str, scale: float = 1.0) -> None:
    assert answer["model"]["size"] == size
    assert answer["detector"] == "yunet"  # the default, from the store, with no configuration
    (face,) = answer["faces"]
    x, y, w, h = (value * scale for value in ASTRONAUT_FACE)
    assert inside(centre(face["box"]), (x, y, w, h))
    assert set(face["probabilities"]) == set(answer["model"]["labels"]) <= set(CANONICAL_LABELS)
    assert face["expression"] == max(face["probabilities"], key=face["probabilities"].get)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_the_image_is_configured_for_a_non_root_service_with_a_healthcheck(
    image: dict[str, Any], capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    config = image["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] and config["User"].split(":")[0] not in ("0", "root")
    assert list(config["ExposedPorts"]) == [f"{env['MICROEXP_PORT']}/tcp"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert env["MICROEXP_STORE"] == "/app/models"

    record_property("image_bytes", image["Size"])
    with capsys.disabled():
        print(
            f"\n{IMAGE}: {image['Size'] / 1e6:.0f} MB ({image['Size']} bytes), {len(image['RootFS']['Layers'])} layers"
        )
    assert image["Size"] < IMAGE_BUDGET_BYTES


def test_the_runtime_holds_only_what_serving_needs(image: dict[str, Any]) -> None:
    # Python's own view from inside the image: no torch or trainer, no pip, no compilers, no tests.
    probe = (
        "import importlib.util as u, json, os, shutil;"
        "print(json.dumps({"
        "'modules': [m for m in ('torch', 'trainer', 'pip', 'setuptools', 'onnx') if u.find_spec(m)],"
        "'tools': [t for t in ('gcc', 'cc', 'c++', 'make') if shutil.which(t)],"
        "'tests': [p for p in ('/app/tests', '/opt/app/tests') if os.path.exists(p)],"
        "'serving': [m for m in ('service', 'model_store', 'onnxruntime', 'cv2') if u.find_spec(m)]}))"
    )
    result = docker("run", "--rm", *RESTRICTED, IMAGE, "python", "-c", probe)

    assert json.loads(result.stdout) == {
        "modules": [],
        "tools": [],
        "tests": [],
        "serving": ["service", "model_store", "onnxruntime", "cv2"],
    }


def test_the_image_serves_a_mounted_store_as_a_non_root_user(image: dict[str, Any], model_store_root: Path) -> None:
    store = ModelStore(model_store_root)
    with running("microexp-test-mounted", "--volume", f"{model_store_root}:/app/models:ro") as container:
        ready = httpx.get(f"{container.url}/readyz", timeout=10).json()
        assert ready["served"] == {name: store.served_version(name) for name in store.models()}

        assert_finds_the_astronaut(predict(container, encode(astronaut()), "astronaut.jpg", "XXS"), "XXS")
        # Over 1 MB, so the upload is spooled to /tmp: the tmpfs a read-only root needs.
        large = encode(cv2.resize(astronaut(), None, fx=2, fy=2), ".png")
        assert len(large) > 1024 * 1024
        assert_finds_the_astronaut(predict(container, large, "astronaut.png", "M"), "M", scale=2)

        # onnxruntime's telemetry is off: it would otherwise call out and warn that it cannot store a device id.
        assert "telemetry" not in container.logs()

        status = container.exec("cat", "/proc/1/status").stdout
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == [image["Config"]["User"].split(":")[0]] * 4  # real, effective, saved, filesystem
        assert uids[0] != "0"


def test_the_image_bakes_in_the_repositorys_store(image: dict[str, Any]) -> None:
    repository = ModelStore(REPO / "models")
    expected = {
        name: {version: repository.metadata(name, version).sha256 for version in repository.versions(name)}
        for name in repository.models()
    }
    with running("microexp-test-baked") as container:
        listing = httpx.get(f"{container.url}/v1/models", timeout=10).json()
        assert_finds_the_astronaut(predict(container, encode(astronaut()), "astronaut.jpg", "XXS"), "XXS")
        # The one OpenCV cascade the image keeps is the one Haar loads.
        haar = httpx.post(
            f"{container.url}/v1/predict",
            params={"model": "XXS", "detector": "haar"},
            files={"image": ("astronaut.jpg", encode(astronaut()))},
            timeout=60,
        )
        assert haar.status_code == 200 and haar.json()["detector"] == "haar" and len(haar.json()["faces"]) == 1

    # MTCNN is an extra the image leaves out.
    assert (listing["detectors"], listing["default_detector"]) == (["yunet", "haar"], "yunet")

    served = {
        entry["name"]: {version["version"]: version["sha256"] for version in entry["versions"]}
        for entry in listing["models"]
    }
    assert served == expected
    assert listing["refused"] == []
