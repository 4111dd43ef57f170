"""Model stores for tests: freshly initialised MicroExpNet students published through the real export path.

Used where a test needs a store it may modify (publish, promote, corrupt) or where trained weights are not the point.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from conftest import add_detector

from model_store.labels import ordered_subset
from model_store.store import ModelStore
from model_store.vocabulary import SIZES
from trainer.checkpoint import ModelCheckpoint
from trainer.config import STUDENT_SPEC
from trainer.export import export_checkpoint
from trainer.models import create_model

FER_LABELS = list(ordered_subset(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]))


def synthetic_faces(count: int = 8, seed: int = 0) -> np.ndarray:
    """Smooth random 48x48 uint8 images, enough to compare two runtimes on the same inputs."""
    rng = np.random.default_rng(seed)
    return np.stack([np.kron(rng.integers(0, 256, (6, 6)), np.ones((8, 8))) for _ in range(count)]).astype(np.uint8)


def student_checkpoint(
    path: Path,
    size: str = "XXS",
    seed: int = 0,
    labels: list[str] | None = None,
    family: str = "microexpnet",
    metrics: dict[str, float] | None = None,
) -> Path:
    torch.manual_seed(seed)
    labels = labels or FER_LABELS
    arch = f"{family}_{size.lower()}"
    model = create_model(arch, num_classes=len(labels))
    ModelCheckpoint(arch, {}, model.state_dict(), labels, STUDENT_SPEC, {"seed": seed}, metrics or {}).save(path)
    return path


def publish_student(
    store: ModelStore,
    size: str = "XXS",
    seed: int = 0,
    family: str = "microexpnet",
    metrics: dict[str, float] | None = None,
) -> int:
    """Export and publish one randomly initialised student; returns its version."""
    from model_store.preprocess import face_input

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = student_checkpoint(Path(tmp) / "best.pt", size, seed, family=family, metrics=metrics)
        faces = np.stack([face_input(face, STUDENT_SPEC) for face in synthetic_faces()])
        onnx_path, draft = export_checkpoint(checkpoint, Path(tmp) / "export", faces=faces)
        return store.publish(onnx_path, draft)


def make_store(root: Path, sizes: tuple[str, ...] = SIZES, seed: int = 0) -> ModelStore:
    store = ModelStore(root, create=True)
    add_detector(root)
    for size in sizes:
        publish_student(store, size, seed)
    return store
