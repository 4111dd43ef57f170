"""The lock files the image build installs from agree with pyproject.toml.

requirements/serve.txt is compiled from pyproject.toml (docs/deploy.md says how); a pin changed in one place only
would build an image with other versions than the ones tested.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# "name==version \" then its "--hash=sha256:..." lines, as pip-compile --generate-hashes writes them.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*\\?\n((?:\s+--hash=sha256:[0-9a-f]{64}\s*\\?\n?)*)", re.M)


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes)."""
    return {
        canonicalize_name(name): (version, hashes.count("--hash="))
        for name, version, hashes in _PIN.findall(path.read_text())
    }


def pinned(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for line in requirements:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line} is not pinned"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


SERVE = locked(REPO / "requirements" / "serve.txt")
BUILD = locked(REPO / "requirements" / "build.txt")


def test_the_serving_lock_pins_the_pyproject_versions() -> None:
    pins = pinned(PYPROJECT["project"]["dependencies"])

    assert {name: SERVE.get(name, ("missing", 0))[0] for name in pins} == pins


def test_every_locked_package_is_hash_checked() -> None:
    assert SERVE and BUILD
    assert {name: hashes for name, (_, hashes) in (SERVE | BUILD).items() if hashes == 0} == {}


def test_the_serving_lock_holds_nothing_only_training_needs() -> None:
    training = pinned(PYPROJECT["project"]["optional-dependencies"]["train"])

    assert set(training) & set(SERVE) == set()


def test_the_build_lock_satisfies_the_build_system() -> None:
    for line in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(line)
        version, _ = BUILD[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{requirement.name} {version} does not satisfy {line}"
