"""The short load-and-faults run (benchmarks/load_faults.py --short): under a steady load on the real service with
two workers, a promoted version is served and a rollback reverts it, a corrupted version is refused while the
previous one keeps serving, a killed worker is replaced, slow uploads are ended by the server, and no request
fails apart from those in flight on the killed worker. Checks outcomes only; its latencies go to the docs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from store_factory import make_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    make_store(root / "store", sizes=("XXS",))
    out = root / "summary.json"
    command = [sys.executable, "-m", "benchmarks.load_faults", "--short", "--store", str(root / "store")]
    result = subprocess.run([*command, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(out.read_text())


def test_no_request_fails_apart_from_those_on_the_killed_worker(summary):
    assert summary["sent"] == summary["settings"]["rate_per_s"] * summary["settings"]["duration_s"]
    assert summary["failed"] == 0, summary["failures"]
    assert summary["succeeded"] + summary["lost_on_killed_worker"] == summary["sent"]
    # At most what one worker holds at once (8 slots) plus what was sent to it before the client saw it close.
    settings = summary["settings"]
    assert summary["lost_on_killed_worker"] <= 8 + settings["rate_per_s"] * settings["kill_grace_s"]


def test_promote_then_rollback_switch_the_served_version(summary):
    promote, rollback = summary["phases"]["promote"], summary["phases"]["rollback"]
    new, old = str(promote["details"]["published"]), str(promote["details"]["previous"])
    assert promote["versions"].get(new, 0) > 0
    assert rollback["details"]["serving"] == int(old)
    after_rollback = summary["phases"]["corrupt"]["versions"]  # the window after the rollback settled
    assert set(after_rollback) == {old}


def test_a_corrupted_version_is_refused_and_the_previous_keeps_serving(summary):
    corrupt = summary["phases"]["corrupt"]
    bad, previous = corrupt["details"]["corrupted"], corrupt["details"]["previous"]
    assert set(corrupt["versions"]) == {str(previous)}
    view = summary["checks"]["after_corrupt"]
    assert view["default_version"] == previous
    assert [r["version"] for r in view["refused"]] == [bad]
    assert "sha256" in view["refused"][0]["reason"]


def test_a_killed_worker_is_replaced(summary):
    killed = summary["phases"]["kill"]["details"]
    workers = summary["checks"]["workers_after_kill"]
    assert len(workers) == summary["settings"]["workers"]
    assert killed["killed"] not in workers


def test_slow_uploads_are_ended_by_the_server_and_others_are_served(summary):
    slow = summary["slow_clients"]
    assert len(slow["outcomes"]) == summary["settings"]["slow_clients"]
    # 408: the body did not arrive in time (a slow upload never waits for a slot: its body comes first).
    assert {o["status"] for o in slow["outcomes"]} == {408}
    assert all(o["bytes_sent"] < o["bytes_declared"] for o in slow["outcomes"])
    others = slow["others_while_held"]
    assert others["requests"] > 0 and others["ok"] == others["requests"]
