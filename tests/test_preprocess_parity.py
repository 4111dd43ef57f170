"""The trainer's tensors and the service's arrays are the same model inputs: on real faces, every step (grid, crop,
scale) and every view (the centre crop, the eight crops, their mirrors, the training views) agree up to float
rounding. The trainer computes in torch (``trainer.evaluate``, ``trainer.augment``), the service in numpy
(``model_store.preprocess``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import FER2013
from server_fixture import ASTRONAUT_FACE, astronaut

from model_store.preprocess import (
    PreprocessSpec,
    ViewCount,
    centre_crop,
    crop_face,
    eight_crops,
    face_input,
    face_views,
    to_gray,
    to_grid,
    to_tensor,
)
from trainer.augment import AugmentConfig, augment_batch, scale
from trainer.config import STUDENT_SPEC, spec_for
from trainer.data import FaceDataset
from trainer.evaluate import prepare_grids

SPECS = {
    "microexpnet 84 of 96": STUDENT_SPEC,
    "families 48 of 55": spec_for(48),
    "normalised": PreprocessSpec(input_size=48, resize_size=56, mean=0.5, std=0.25),
    "raw pixels": PreprocessSpec(input_size=84, resize_size=84, native_size=None, scale=1.0),
}
# float32 arithmetic in two orders, (x * scale - mean) / std against x * (scale / std) - mean / std: a few units in
# the last place of values up to 255.
ROUNDING = 1e-6


def _astronaut_face() -> np.ndarray:
    gray = to_gray(astronaut())
    return np.ascontiguousarray(crop_face(gray, ASTRONAUT_FACE, STUDENT_SPEC.face_margin))


def _fer2013_faces() -> list[np.ndarray]:
    test = FER2013 / "test"
    if not test.is_dir():
        return []
    paths = [sorted(folder.iterdir())[0] for folder in sorted(test.iterdir())]
    return [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in paths]


FACES = [pytest.param(_astronaut_face(), id="astronaut")] + (
    [pytest.param(face, id=f"fer2013-{i}") for i, face in enumerate(_fer2013_faces())]
    or [pytest.param(None, id="fer2013", marks=pytest.mark.skip(reason=f"needs {FER2013} (the shared data folder)"))]
)


def _grid(face: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """The trainer's grid of one face, as a one-face dataset gets it."""
    dataset = FaceDataset(images=face[None], labels=np.zeros(1, dtype=np.int64), classes=("neutral",))
    return prepare_grids(dataset, spec)


def _close(trainer: torch.Tensor, service: np.ndarray) -> None:
    assert trainer.dtype == torch.float32 and service.dtype == np.float32
    np.testing.assert_allclose(trainer.numpy(), service, rtol=ROUNDING, atol=ROUNDING)


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_the_evaluation_views_are_the_services(face, spec):
    grid = _grid(face, spec)
    np.testing.assert_array_equal(grid[0].numpy(), to_grid(face, spec))  # the grid: the same uint8 pixels
    np.testing.assert_array_equal(centre_crop(grid, spec)[0].numpy(), face_input(face, spec))
    _close(scale(centre_crop(grid, spec).contiguous(), spec), to_tensor(face_input(face, spec)[None], spec))
    # Every test-time view, in the service's order: the eight crops, then their mirrors (predict_logits' order).
    crops = eight_crops(grid, spec)
    trainer = torch.cat([scale(c.contiguous(), spec) for c in crops + [c.flip(-1) for c in crops]])
    service = to_tensor(face_views(face, spec, ViewCount.EIGHT_AND_MIRRORS), spec)
    assert trainer.shape == service.shape == (16, 1, spec.input_size, spec.input_size)
    _close(trainer, service)
    mirrored = torch.cat([scale(c.contiguous(), spec) for c in (centre_crop(grid, spec),) * 2])
    mirrored[1] = mirrored[1].flip(-1)
    _close(mirrored, to_tensor(face_views(face, spec, ViewCount.CENTRE_AND_MIRROR), spec))


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_every_training_view_is_one_of_the_services_views(face, spec):
    grids = _grid(face, spec).repeat(32, 1, 1)
    eight = to_tensor(face_views(face, spec, ViewCount.EIGHT_AND_MIRRORS), spec)
    x, flipped = augment_batch(grids, spec, AugmentConfig.paper(), torch.Generator().manual_seed(0))
    # The same draws again: which of the eight crops each view is (augment_batch draws the crop, then the flip).
    picks = torch.randint(8, (32,), generator=torch.Generator().manual_seed(0))
    assert flipped.any() and not flipped.all() and len(set(picks.tolist())) == 8
    for view, pick, mirror in zip(x, picks.tolist(), flipped.tolist(), strict=True):
        _close(view[None], eight[pick + 8 * mirror][None])
    centre, _ = augment_batch(grids[:1], spec, AugmentConfig(crops="centre", flip=False), torch.Generator())
    _close(centre, to_tensor(face_input(face, spec)[None], spec))
