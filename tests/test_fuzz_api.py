"""Property-based testing of the whole HTTP API from its OpenAPI document (schemathesis), against the running
server: no request, valid or not, gets a 5xx, and every response is documented and matches its schema.

Bounded for CI: MAX_EXAMPLES per operation and mode, derandomised (the same inputs on every run), no example
database. MICROEXP_FUZZ_REPORT=path writes the count of requests by operation and status as JSON.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_fixture import API_KEY, ServiceProcess

from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]

MAX_EXAMPLES = 30
# Loaded at collection, when the server is not running yet; the first test checks that it serves this document.
DOCUMENT = create_app(Settings(reload_interval=0)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Generated model names almost never exist; each such request is sent again to a model that does, so that the
# generated bodies get past the name check to the tensor checks.
EXISTING = {"name": "microexpnet_xxs", "version": "1"}
SEEN: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def fuzz_report() -> Iterator[None]:
    yield
    if target := os.environ.get("MICROEXP_FUZZ_REPORT"):
        Path(target).write_text(json.dumps(dict(sorted(SEEN.items())), indent=1) + "\n")


def test_the_server_serves_the_document_under_test(server: ServiceProcess) -> None:
    assert httpx.get(f"{server.url}/openapi.json", timeout=30).json() == DOCUMENT


@pytest.fixture(scope="module", params=["open", "locked down"])
def target(
    request: pytest.FixtureRequest, server: ServiceProcess, locked_server: ServiceProcess
) -> tuple[ServiceProcess, dict[str, str]]:
    """The default server, and the one with every access setting on with its API key sent."""
    return (server, {}) if request.param == "open" else (locked_server, {"X-API-Key": API_KEY})


def call_and_check(case: schemathesis.Case, target: tuple[ServiceProcess, dict[str, str]]) -> None:
    server, headers = target
    response = case.call(base_url=server.url, headers=headers, timeout=60)
    SEEN[f"{case.operation.label} {response.status_code}"] += 1
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@pytest.mark.filterwarnings("ignore:Skipped test cases with unsupported payload media types")
@settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_response_matches_the_document(
    case: schemathesis.Case, target: tuple[ServiceProcess, dict[str, str]]
) -> None:
    call_and_check(case, target)
    if "name" in case.path_parameters:
        case.path_parameters = {**case.path_parameters, **{key: EXISTING[key] for key in case.path_parameters}}
        call_and_check(case, target)


def test_nothing_failed_unseen(server: ServiceProcess, locked_server: ServiceProcess) -> None:
    # A 5xx would have failed above; this also catches an error logged after a response was sent.
    for service in (server, locked_server):
        assert "unhandled error" not in service.log() and "Traceback" not in service.log()
