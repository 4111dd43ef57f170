"""Shared fixtures: where ../shared is, and skipping tests that need it when it is absent (a user's fresh clone)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FER2013 = SHARED / "datasets" / "fer2013"
CKPLUS48 = SHARED / "datasets" / "ckplus48"
OFFICIAL = SHARED / "reference" / "microexpnet_official"
YUNET = SHARED / "reference" / "face_detection" / "yunet_2023mar.onnx"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder, present in CI, absent in a fresh clone)")
    return path


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    return need(FER2013)


@pytest.fixture(scope="session")
def ckplus_dir() -> Path:
    return need(CKPLUS48)


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return need(OFFICIAL)
