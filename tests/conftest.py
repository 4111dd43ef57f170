"""Shared fixtures: where ../shared is, and skipping tests that need it when it is absent (a user's fresh clone)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model_store.store import yunet_file

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FER2013 = SHARED / "datasets" / "fer2013"
CKPLUS48 = SHARED / "datasets" / "ckplus48"
OFFICIAL = SHARED / "reference" / "microexpnet_official"
YUNET = yunet_file(REPO / "models")  # shipped in the repository's store


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder, present in CI, absent in a fresh clone)")
    return path


def add_detector(store: Path) -> Path:
    """Give a test store the face detector file every store holds; returns its path there."""
    return Path(shutil.copyfile(YUNET, yunet_file(store)))


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    return need(FER2013)


@pytest.fixture(scope="session")
def ckplus_dir() -> Path:
    return need(CKPLUS48)


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return need(OFFICIAL)
