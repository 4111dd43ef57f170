"""POST /v1/predict and /v1/annotate on the real server: faces found and classified by every size."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from server_fixture import (
    ASTRONAUT_FACE,
    astronaut,
    centre,
    detectors,
    encode,
    gradient,
    inside,
    two_faces,
)

from model_store.preprocess import crop_face, face_input, to_gray, to_tensor
from model_store.store import ModelStore
from model_store.vocabulary import SIZES

pytest_plugins = ["server_fixture"]


def predict(client: httpx.Client, image: bytes, media: str = "image/jpeg", **params: object) -> dict:
    response = client.post("/v1/predict", params=params, content=image, headers={"content-type": media})
    assert response.status_code == 200, response.text
    return response.json()


def expected_probabilities(store_root: Path, size: str, version: int, image: np.ndarray, box: dict) -> np.ndarray:
    """What the model gives for the face, computed here from the store's file and the model's own spec."""
    store = ModelStore(store_root)
    resolved = store.resolve(size, version)
    spec = resolved.metadata.preprocess
    region = (box["x"], box["y"], box["width"], box["height"])
    face = face_input(crop_face(to_gray(image), region, spec.face_margin), spec)
    session = ort.InferenceSession(str(resolved.onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": to_tensor(face[None], spec)})
    exp = np.exp(logits[0] - logits[0].max())
    return exp / exp.sum()


@pytest.mark.parametrize("detector", detectors())
@pytest.mark.parametrize("size", SIZES)
def test_every_size_finds_and_classifies_the_face(
    client: httpx.Client, model_store_root: Path, size: str, detector: str
) -> None:
    image = astronaut()
    # Unaligned, so the crop is the box's (the aligned path is checked against the shared preprocessing elsewhere).
    body = predict(client, encode(image), model=size.lower(), detector=detector, align="false")
    assert body["model"]["size"] == size and body["model"]["version"] == 1
    assert body["model"]["name"] == f"microexpnet_{size.lower()}"
    assert body["detector"] == detector and body["no_face"] is False
    assert body["image"] == {"format": "jpeg", "width": 512, "height": 512}
    (face,) = body["faces"]
    assert inside(centre(face["box"]), ASTRONAUT_FACE)
    labels = body["model"]["labels"]
    assert list(face["probabilities"]) == labels
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["expression"] == max(labels, key=face["probabilities"].get)
    assert face["probability"] == face["probabilities"][face["expression"]]
    decoded = cv2.imdecode(np.frombuffer(encode(image), np.uint8), cv2.IMREAD_COLOR)
    expected = expected_probabilities(model_store_root, size, 1, decoded, face["box"])
    assert [face["probabilities"][label] for label in labels] == pytest.approx(expected.tolist(), abs=1e-5)
    assert set(body["timing"]) == {"decode_ms", "detect_ms", "preprocess_ms", "inference_ms", "total_ms"}


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def exif_sideways_jpeg(image: np.ndarray) -> bytes:
    """The photo stored rotated a quarter turn, with EXIF orientation 6 saying how to show it upright."""
    stored = np.ascontiguousarray(np.rot90(image[:, :, ::-1], 1))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", exif=exif.tobytes(), quality=92)
    return buffer.getvalue()


def gif(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, ::-1]).save(buffer, "GIF")
    return buffer.getvalue()


VARIANTS = {
    "png": (lambda: encode(astronaut(), ".png"), "image/png", 1.0),
    "webp": (lambda: encode(astronaut(), ".webp"), "image/webp", 1.0),
    "bmp": (lambda: encode(astronaut(), ".bmp"), "image/bmp", 1.0),
    "gif": (lambda: gif(astronaut()), "image/gif", 1.0),
    "half-size": (lambda: encode(cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)), "image/jpeg", 0.5),
    "double-size": (lambda: encode(cv2.resize(astronaut(), (1024, 1024))), "image/jpeg", 2.0),
    "octet-stream": (lambda: encode(astronaut(), ".png"), "application/octet-stream", 1.0),
}


@pytest.mark.parametrize("detector", detectors())
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_same_face_in_other_encodings_sizes_and_orientations(client: httpx.Client, variant: str, detector: str) -> None:
    make, media, scale = VARIANTS[variant]
    body = predict(client, make(), media, model="XS", detector=detector)
    assert body["image"]["width"] == body["image"]["height"] == round(512 * scale)
    (face,) = body["faces"]
    x, y, w, h = ASTRONAUT_FACE
    assert inside(centre(face["box"]), (x * scale, y * scale, w * scale, h * scale))


@pytest.mark.parametrize("detector", detectors())
def test_two_faces_are_classified_in_one_request(client: httpx.Client, detector: str) -> None:
    image = two_faces()
    body = predict(client, encode(image, ".png"), "image/png", model="S", detector=detector)
    assert len(body["faces"]) == 2
    half = image.shape[1] / 2
    assert sorted(centre(face["box"])[0] < half for face in body["faces"]) == [False, True]
    assert body["faces"][0]["score"] >= body["faces"][1]["score"]
    # Each face has its own probabilities (mirrored crops differ, and a batch must not mix rows up).
    first, second = (face["probabilities"] for face in body["faces"])
    assert first != second

    (only,) = predict(client, encode(image, ".png"), "image/png", model="S", detector=detector, max_faces=1)["faces"]
    assert only == body["faces"][0]


@pytest.mark.parametrize("detector", detectors())
def test_no_face_is_an_empty_list_not_an_error(client: httpx.Client, detector: str) -> None:
    body = predict(client, encode(gradient(), ".png"), "image/png", detector=detector)
    assert body["no_face"] is True and body["faces"] == []
    assert body["model"]["size"] == "M"  # the server's default size


def test_detect_false_classifies_the_whole_image(client: httpx.Client, model_store_root: Path) -> None:
    x, y, w, h = ASTRONAUT_FACE
    crop = astronaut()[y : y + h, x : x + w]
    body = predict(client, encode(crop, ".png"), "image/png", model="XXS", detect="false")
    assert body["detector"] is None and body["no_face"] is False
    (face,) = body["faces"]
    assert face["box"] == {"x": 0, "y": 0, "width": w, "height": h}
    assert face["score"] is None
    # The crop is used whole, not cropped again around a box.
    store = ModelStore(model_store_root)
    resolved = store.resolve("XXS")
    spec = resolved.metadata.preprocess
    session = ort.InferenceSession(str(resolved.onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": to_tensor(face_input(to_gray(crop), spec)[None], spec)})
    probabilities = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert list(face["probabilities"].values()) == pytest.approx(probabilities.tolist(), abs=1e-5)


def test_multipart_upload(client: httpx.Client) -> None:
    files = {"image": ("astronaut.jpg", encode(astronaut()), "image/jpeg")}
    body = client.post("/v1/predict", params={"model": "Xxs"}, files=files).json()
    assert body["model"]["size"] == "XXS" and len(body["faces"]) == 1


def test_sizes_and_versions_switch_per_request(client: httpx.Client) -> None:
    image = encode(astronaut())
    seen = [
        (body["model"]["size"], body["model"]["version"])
        for body in (
            predict(client, image, model=size, version=1) if explicit else predict(client, image, model=size)
            for size in ("xxs", "M", "s", "XS")
            for explicit in (True, False)
        )
    ]
    assert seen == [("XXS", 1), ("XXS", 1), ("M", 1), ("M", 1), ("S", 1), ("S", 1), ("XS", 1), ("XS", 1)]


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_annotate_draws_the_face(client: httpx.Client, fmt: str) -> None:
    original = astronaut()
    response = client.post(
        "/v1/annotate", params={"format": fmt, "model": "XS"}, content=encode(original, ".png"),
        headers={"content-type": "image/png"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/{fmt}"
    drawn = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == original.shape
    changed = np.abs(drawn.astype(int) - original.astype(int)).max(axis=2) > 60
    x, y, w, h = ASTRONAUT_FACE
    # The box outline and label are drawn around the face; far from it the picture is untouched.
    assert changed[y - 40 : y + h + 20, x - 20 : x + w + 20].sum() > 200
    assert changed[300:, :].mean() < 0.01


def camera_photo() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 3264x1836 photograph (6 MP, the test server's limit) with the astronaut's face, and where the face is: past
    twice MICROEXP_DECODE_MIN_SIDE's 1600 px, so the server decodes it at half scale."""
    height, left = 1836, 700
    scale = height / 512
    canvas = np.full((height, 3264, 3), 90, np.uint8)
    canvas[:, left : left + height] = cv2.resize(astronaut(), (height, height))
    x, y, w, h = ASTRONAUT_FACE
    return canvas, (left + x * scale, y * scale, w * scale, h * scale)


@pytest.mark.parametrize("stored", ["upright", "exif-rotated"])
def test_camera_sized_jpeg_is_answered_in_its_own_pixels(client: httpx.Client, stored: str) -> None:
    photo, face_box = camera_photo()
    data = encode(photo) if stored == "upright" else exif_sideways_jpeg(photo)
    body = predict(client, data, model="XS")
    assert body["image"] == {"format": "jpeg", "width": 3264, "height": 1836}
    (face,) = body["faces"]
    assert inside(centre(face["box"]), face_box)
    assert face["box"]["width"] > 0.7 * face_box[2]  # not the half-scale box


def test_annotate_draws_on_a_camera_sized_jpeg_whole(client: httpx.Client) -> None:
    # The drawn answer is the upload's own size, not the half scale /v1/predict decodes it at.
    photo, (x, y, w, h) = camera_photo()
    response = client.post("/v1/annotate", content=encode(photo), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200
    drawn = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == photo.shape
    changed = np.abs(drawn.astype(int) - photo.astype(int)).max(axis=2) > 60
    x, y, w, h = round(x), round(y), round(w), round(h)
    assert changed[max(0, y - 150) : y + h + 70, x - 70 : x + w + 70].sum() > 1000
    assert changed[1200:, :].mean() < 0.01


def test_annotate_without_faces_returns_the_picture(client: httpx.Client) -> None:
    image = gradient()
    response = client.post(
        "/v1/annotate?format=png", content=encode(image, ".png"), headers={"content-type": "image/png"}
    )
    assert response.status_code == 200
    assert np.array_equal(cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR), image)
