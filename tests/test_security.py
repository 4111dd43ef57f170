"""Access control on real servers: the admin token, API keys, the per-client rate limit and which address is the
client, and the last good version served after a restart. (Slow clients: test_limits; offline docs: test_page.)"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from server_fixture import ServiceProcess, astronaut, encode, started
from store_factory import publish_student

from model_store.store import ModelStore
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]

ADMIN_TOKEN = "admin-token-for-tests"
KEYS = ("first-key", "second-key")
PROBES = ["/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"]
IMAGE = encode(astronaut())


@pytest.fixture(scope="module")
def locked(
    request: pytest.FixtureRequest, model_store_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    """Admin token and API keys from files (as Kubernetes mounts secrets), 2 requests/s per client."""
    folder = tmp_path_factory.mktemp("locked")
    (folder / "admin").write_text(ADMIN_TOKEN + "\n")
    (folder / "keys").write_text(f"# one key a line\n{KEYS[0]}\n{KEYS[1]}\n")
    env = {
        "MICROEXP_ADMIN_TOKEN_FILE": str(folder / "admin"),
        "MICROEXP_API_KEYS_FILE": str(folder / "keys"),
        "MICROEXP_RATE_LIMIT_PER_CLIENT": "2",
    }
    return started(request, model_store_root, folder / "service.log", env)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_admin_endpoints_are_off_without_a_token(client: httpx.Client) -> None:
    response = client.post("/admin/reload", headers=bearer("anything"))
    assert response.status_code == 403
    assert (
        response.json()["error"]["code"] == "forbidden"
        and "MICROEXP_ADMIN_TOKEN" in response.json()["error"]["message"]
    )


def test_admin_needs_the_right_token(locked: ServiceProcess) -> None:
    with httpx.Client(base_url=locked.url, timeout=30) as http:
        for headers in ({}, bearer("wrong"), bearer(KEYS[0]), {"Authorization": f"Basic {ADMIN_TOKEN}"}):
            refused = http.post("/admin/reload", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthorized" and refused.headers["www-authenticate"] == "Bearer"
        accepted = http.post("/admin/reload", headers=bearer(ADMIN_TOKEN))
        assert accepted.status_code == 200 and "served" in accepted.json()


def test_inference_needs_a_valid_api_key(locked: ServiceProcess) -> None:
    with httpx.Client(base_url=locked.url, timeout=30) as http:
        calls = [
            ("POST", "/v1/predict", {"content": IMAGE, "headers": {"content-type": "image/jpeg"}}),
            ("GET", "/v1/models", {}),
            ("POST", "/v2/models/microexpnet_m/infer", {"json": {"inputs": []}}),
        ]
        for method, path, kwargs in calls:
            missing = http.request(method, path, **kwargs)
            assert missing.status_code == 401, path
            wrong = http.request(method, path, **{**kwargs, "headers": {**kwargs.get("headers", {}), "X-API-Key": "x"}})
            assert wrong.status_code == 401, path
        assert "API key" in missing.json()["error"]  # the last call's, in the OIP's shape
        for headers in (bearer(KEYS[0]), {"X-API-Key": KEYS[1]}):
            answer = http.post("/v1/predict", content=IMAGE, headers={"content-type": "image/jpeg", **headers})
            assert answer.status_code == 200 and len(answer.json()["faces"]) == 1
        for probe in PROBES:  # probes and metrics need no key
            assert http.get(probe).status_code == 200, probe


def test_past_its_rate_a_client_gets_429_and_others_do_not(locked: ServiceProcess) -> None:
    with httpx.Client(base_url=locked.url, timeout=30) as http:
        time.sleep(1.0)  # both keys' buckets full again (2 requests) after the tests before
        statuses = [http.get("/v1/models", headers=bearer(KEYS[0])).status_code for _ in range(12)]
        assert 2 <= statuses.count(200) <= 5 and statuses.count(429) >= 7, statuses
        refused = http.get("/v1/models", headers=bearer(KEYS[0]))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "rate_limited"
        assert http.get("/v1/models", headers=bearer(KEYS[1])).status_code == 200  # a bucket per key
        counted = re.search(r"^microexp_rate_limited_total (\S+)$", http.get("/metrics").text, re.M)
        assert counted is not None and float(counted[1]) >= 7


@pytest.mark.parametrize("trusted", [False, True])
def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    request: pytest.FixtureRequest, model_store_root: Path, tmp_path: Path, trusted: bool
) -> None:
    env = {"MICROEXP_RATE_LIMIT_PER_CLIENT": "1"}
    if trusted:
        env["MICROEXP_TRUSTED_PROXIES"] = "127.0.0.0/8"
    service = started(request, model_store_root, tmp_path / "service.log", env)
    with httpx.Client(base_url=service.url, timeout=30) as http:
        # Each request claims another client; the peer (this test, on loopback) is the same.
        statuses = [http.get("/v1/models", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(6)]
    if trusted:
        assert statuses == [200] * 6
    else:
        assert statuses.count(429) >= 4, statuses


def test_a_restarted_worker_serves_the_last_good_version_not_the_highest(store_copy: ModelStore) -> None:
    name = "microexpnet_xxs"
    for seed in (1, 2, 3):
        publish_student(store_copy, "XXS", seed=seed)  # versions 2, 3, 4
    store_copy.promote(name, 2)
    store_copy.promote(name, 4)  # served before it: 2
    model = store_copy.root / name / "4" / "model.onnx"
    damaged = bytearray(model.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    model.write_bytes(bytes(damaged))
    # A fresh app is what a restarted (or a new) worker builds: it has no memory of what it served before.
    with TestClient(create_app(Settings(store=store_copy.root, reload_interval=0))) as restarted:
        served = restarted.get("/v1/models").json()
        (entry,) = [model for model in served["models"] if model["name"] == name]
        assert entry["default_version"] == 2  # not 3, the highest version that loads
        assert [(r["name"], r["version"]) for r in served["refused"]] == [(name, 4)]


def test_a_keys_file_without_a_key_stops_the_server_at_start(tmp_path: Path) -> None:
    # A file of comments only would otherwise leave inference open.
    keys = tmp_path / "keys"
    keys.write_text("# the keys go here\n\n")
    with pytest.raises(ValidationError, match="holds no secret"):
        Settings(api_keys_file=keys)
