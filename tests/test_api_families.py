"""Several architecture families at one size: the most accurate on validation answers by default, `?family=` and
model names reach the others, and a configured family pins the default."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_fixture import astronaut, encode
from store_factory import publish_student
from test_api_errors import error_of

from model_store.store import ModelStore
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]
JPEG = {"content-type": "image/jpeg"}


@pytest.fixture
def two_families(store_copy: ModelStore) -> ModelStore:
    """The session store (MicroExpNet at every size, no validation figures) plus a dsresnet XXS that is better on
    validation and a dsresnet S that is worse than a MicroExpNet S published with a validation figure."""
    publish_student(store_copy, "XXS", family="dsresnet", metrics={"val_accuracy": 0.6})
    publish_student(store_copy, "S", family="dsresnet", metrics={"val_accuracy": 0.5})
    publish_student(store_copy, "S", seed=1, metrics={"val_accuracy": 0.55})  # microexpnet_s version 2
    return store_copy


def architecture(client: TestClient, query: str) -> tuple[str, int]:
    response = client.post(f"/v1/predict?detect=false&{query}", content=encode(astronaut()), headers=JPEG)
    assert response.status_code == 200, response.text
    model = response.json()["model"]
    return model["architecture"], model["version"]


def test_the_most_accurate_family_on_validation_is_each_sizes_default(two_families: ModelStore) -> None:
    with TestClient(create_app(Settings(store=two_families.root, reload_interval=0))) as client:
        assert architecture(client, "model=xxs") == ("dsresnet_xxs", 1)
        assert architecture(client, "model=s") == ("microexpnet_s", 2)
        assert architecture(client, "model=m") == ("microexpnet_m", 1)  # the only family at M
        ready = client.get("/readyz").json()
        assert ready["defaults"] == {
            "M": "microexpnet_m", "S": "microexpnet_s", "XS": "microexpnet_xs", "XXS": "dsresnet_xxs"
        }  # fmt: skip
        assert ready["served"]["dsresnet_s"] == 1 and ready["served"]["microexpnet_s"] == 2

        listing = client.get("/v1/models").json()
        assert listing["families"] == ["dsresnet", "microexpnet"]
        xxs = [(entry["name"], entry["default"]) for entry in listing["models"] if entry["size"] == "XXS"]
        assert xxs == [("dsresnet_xxs", True), ("microexpnet_xxs", False)]


def test_family_its_alias_arch_and_model_names_reach_every_family(two_families: ModelStore) -> None:
    with TestClient(create_app(Settings(store=two_families.root, reload_interval=0))) as client:
        assert architecture(client, "model=xxs&family=microexpnet") == ("microexpnet_xxs", 1)
        assert architecture(client, "model=xxs&arch=microexpnet") == ("microexpnet_xxs", 1)
        assert architecture(client, "model=xxs&family=dsresnet&arch=dsresnet") == ("dsresnet_xxs", 1)
        assert architecture(client, "model=microexpnet_xxs") == ("microexpnet_xxs", 1)
        assert architecture(client, "model=dsresnet_s") == ("dsresnet_s", 1)
        assert architecture(client, "model=s&arch=microexpnet&version=1") == ("microexpnet_s", 1)
        response = client.post("/v2/models/dsresnet_xxs/infer", json={"inputs": []})
        assert response.status_code == 400  # found (an empty request is the client's error, not a 404)

        missing = client.post("/v1/predict?model=m&arch=dsresnet", content=encode(astronaut()), headers=JPEG)
        assert "dsresnet_m" in error_of(missing, 404, "unknown_model")["message"]
        unknown = client.post("/v1/predict?arch=nosuch", content=encode(astronaut()), headers=JPEG)
        assert error_of(unknown, 404, "unknown_model")["details"]["families"] == ["dsresnet", "microexpnet"]
        for query in (
            "arch=../models", "family=DS%20RESNET", "model=dsresnet_xxs&family=microexpnet",
            "family=dsresnet&arch=microexpnet",
        ):  # fmt: skip
            response = client.post(f"/v1/predict?{query}", content=encode(astronaut()), headers=JPEG)
            error_of(response, 422, "validation_error")


def test_a_configured_family_pins_the_default(two_families: ModelStore) -> None:
    settings = Settings(store=two_families.root, family="microexpnet", reload_interval=0)
    with TestClient(create_app(settings)) as client:
        assert architecture(client, "model=xxs") == ("microexpnet_xxs", 1)
        assert architecture(client, "model=xxs&arch=dsresnet") == ("dsresnet_xxs", 1)


def test_the_stores_decision_answers_a_size_and_says_why(two_families: ModelStore) -> None:
    two_families.set_default("XXS", "microexpnet_xxs", why="more accurate on photographs (measured)")
    with TestClient(create_app(Settings(store=two_families.root, reload_interval=0))) as client:
        assert architecture(client, "model=xxs") == ("microexpnet_xxs", 1)  # not the better one on validation
        assert architecture(client, "model=s") == ("microexpnet_s", 2)  # sizes without a decision: the fallback
        xxs = {entry["name"]: entry for entry in client.get("/v1/models").json()["models"] if entry["size"] == "XXS"}
        assert xxs["microexpnet_xxs"]["default"] and xxs["microexpnet_xxs"]["why_default"].startswith("more accurate")
        assert xxs["dsresnet_xxs"]["why_default"] is None and len(xxs["dsresnet_xxs"]["labels"]) == 7
    pinned = Settings(store=two_families.root, family="dsresnet", reload_interval=0)
    with TestClient(create_app(pinned)) as client:
        assert architecture(client, "model=xxs") == ("dsresnet_xxs", 1)  # a configured family outranks the store


def test_a_broken_defaults_file_is_reported_and_the_fallback_serves(two_families: ModelStore) -> None:
    (two_families.root / "defaults.json").write_text('{"sizes": {"XXS": {"model": "../etc", "why": "x"}}}')
    assert any("defaults.json" in str(problem) for problem in two_families.verify())
    with TestClient(create_app(Settings(store=two_families.root, reload_interval=0))) as client:
        assert architecture(client, "model=xxs") == ("dsresnet_xxs", 1)
        refused = client.get("/v1/models").json()["refused"]
        assert [entry["name"] for entry in refused] == ["defaults"]
