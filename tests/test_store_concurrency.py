"""Publishing from separate processes at once: distinct versions, all complete, readers never see half a version."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from conftest import add_detector
from onnx_fixtures import publish_tiny

from model_store import triton
from model_store.store import ModelStore, StoreError

PUBLISHERS = 2
PUBLISHES_EACH = 3


def _publish(root: str, work: str, first_seed: int, start: multiprocessing.synchronize.Barrier, results) -> None:
    store = ModelStore(root)
    start.wait(timeout=120)
    for seed in range(first_seed, first_seed + PUBLISHES_EACH):
        results.put(publish_tiny(store, Path(work), seed=seed))


def _read_until_stopped(root: str, stop: multiprocessing.synchronize.Event, results) -> None:
    """Resolve (and so hash-check) every listed version and parse every config, over and over."""
    store = ModelStore(root)
    failures: list[str] = []
    checked = 0
    while not stop.is_set():
        for name in store.models():
            try:
                triton.parse((store.root / name / "config.pbtxt").read_text())
            except FileNotFoundError:
                pass  # the first publish renames its version in before it writes the config
            except triton.TritonConfigError as error:
                failures.append(f"config: {error}")
            for version in store.versions(name):
                try:
                    store.resolve(name.rsplit("_", 1)[1], version)
                    checked += 1
                except StoreError as error:
                    failures.append(str(error))
    results.put((checked, failures))


def test_concurrent_publishers_get_distinct_complete_versions(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_detector(ModelStore(root, create=True).root)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PUBLISHERS)
    stop = context.Event()
    versions, reads = context.Queue(), context.Queue()
    reader = context.Process(target=_read_until_stopped, args=(str(root), stop, reads))
    publishers = [
        context.Process(target=_publish, args=(str(root), str(tmp_path / f"work{i}"), 100 * i, start, versions))
        for i in range(PUBLISHERS)
    ]
    reader.start()
    for process in publishers:
        process.start()
    for process in publishers:
        process.join(timeout=300)
    stop.set()
    checked, failures = reads.get(timeout=120)
    reader.join(timeout=60)

    assert [process.exitcode for process in [*publishers, reader]] == [0] * (PUBLISHERS + 1)
    published = sorted(versions.get(timeout=10) for _ in range(PUBLISHERS * PUBLISHES_EACH))
    assert published == list(range(1, PUBLISHERS * PUBLISHES_EACH + 1))
    assert failures == [], f"a reader saw an incomplete version ({checked} checks passed)"
    store = ModelStore(root)
    assert store.versions("microexpnet_xxs") == published
    assert store.verify() == []
    assert [path.name for path in (root / "microexpnet_xxs").iterdir() if path.name.startswith(".staging")] == []
    seeds = {store.metadata("microexpnet_xxs", version).sha256 for version in published}
    assert len(seeds) == len(published)  # every version holds its own model, none was overwritten
