"""POST /v1/predict/batch: several images in one request, each answered as /v1/predict answers it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_fixture import astronaut, encode, gradient, png_declaring, serving

pytest_plugins = ["server_fixture"]

FILES = list[tuple[str, tuple[str, bytes, str]]]


def images(*members: tuple[bytes, str]) -> FILES:
    return [("images", (f"{n}.img", data, media)) for n, (data, media) in enumerate(members)]


FACE = (encode(astronaut()), "image/jpeg")
BLANK = (encode(gradient(), ".png"), "image/png")
TINY = (encode(gradient(64, 48), ".png"), "image/png")
LIMIT = len(FACE[0]) + len(TINY[0])


def test_faces_of_each_image_in_upload_order(client: httpx.Client) -> None:
    response = client.post("/v1/predict/batch", params={"model": "xxs"}, files=images(FACE, BLANK, FACE))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [len(result["faces"]) for result in results] == [1, 0, 1]
    assert [result["no_face"] for result in results] == [False, True, False]
    single = client.post("/v1/predict", params={"model": "xxs"}, files={"image": ("a.jpg", *FACE)}).json()
    for result in results:
        assert result.keys() == single.keys()
        assert result["model"] == single["model"] and result["image"]["format"] in {"jpeg", "png"}
    # The same face classified in a batch of three and alone: the same answer.
    assert results[0]["faces"][0]["box"] == single["faces"][0]["box"]
    for label, probability in single["faces"][0]["probabilities"].items():
        assert results[2]["faces"][0]["probabilities"][label] == pytest.approx(probability, abs=1e-5)
    # One model run for the batch: every image reports the same one.
    assert results[0]["timing"]["inference_ms"] == results[2]["timing"]["inference_ms"]


def test_a_bad_image_gets_an_error_in_its_place(client: httpx.Client) -> None:
    members = images(FACE, (b"not an image", "image/jpeg"), (png_declaring(50_000, 50_000), "image/png"), FACE)
    members.append(("images", ("notes.txt", b"hello", "text/plain")))
    response = client.post("/v1/predict/batch", files=members)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 5
    assert len(results[0]["faces"]) == 1 and len(results[3]["faces"]) == 1
    assert [result.get("error", {}).get("code") for result in results] == [
        None,
        "invalid_image",
        "image_too_large",
        None,
        "unsupported_media_type",
    ]
    assert all(result["error"]["message"] for result in results[1:3])


def test_a_batch_must_be_multipart_with_images(client: httpx.Client) -> None:
    raw = client.post("/v1/predict/batch", content=FACE[0], headers={"content-type": "image/jpeg"})
    assert raw.status_code == 415 and raw.json()["error"]["code"] == "unsupported_media_type"
    other_field = client.post("/v1/predict/batch", files={"image": ("a.jpg", *FACE)})
    assert other_field.status_code == 422 and other_field.json()["error"]["code"] == "missing_image"


@pytest.fixture(scope="module")
def limited(model_store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    env = {"MICROEXP_BATCH_MAX_IMAGES": "2", "MICROEXP_BATCH_MAX_BYTES": str(LIMIT)}
    with (
        serving(model_store_root, tmp_path_factory.mktemp("batch") / "service.log", env) as service,
        httpx.Client(base_url=service.url, timeout=60) as http,
    ):
        yield http


def test_limits_on_images_and_bytes(limited: httpx.Client) -> None:
    assert limited.post("/v1/predict/batch", files=images(FACE, TINY)).status_code == 200
    too_many = limited.post("/v1/predict/batch", files=images(TINY, TINY, TINY))
    assert too_many.status_code == 400
    assert too_many.json()["error"]["message"] == "Too many files. Maximum number of files is 2."
    too_large = limited.post("/v1/predict/batch", files=images(FACE, FACE))
    assert too_large.status_code == 413
    assert too_large.json()["error"]["details"] == {"max_bytes": LIMIT, "max_images": 2}
