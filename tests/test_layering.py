"""Layering: the store is below the service and the trainer, and neither of those imports the other, so the
service's image needs no torch and the store no training code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

# package → the packages it must never import (the ones above it or beside it).
FORBIDDEN = {
    "model_store": {"trainer", "service", "benchmarks"},
    "service": {"trainer", "benchmarks"},
    "trainer": {"service", "benchmarks"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, wherever the import statement is (functions included)."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split(".")[0])
    return packages


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_or_beside_it(package: str) -> None:
    modules = sorted((REPO / package).rglob("*.py"))
    assert modules
    offenders = {
        str(module.relative_to(REPO)): sorted(found)
        for module in modules
        if (found := imported_packages(module) & FORBIDDEN[package])
    }
    assert offenders == {}
