"""Model only: onnxruntime (with the service's session options) beside PyTorch eager and the arithmetic floor.

Each served model (every family, every size) is timed at batch 1 (latency: median and p99 of single runs) and
batch 1/32/256 (throughput), at one thread and at one thread per core. onnxruntime and PyTorch are timed in
alternating rounds so that a change in the machine's load hits both alike; the ratio is what the run claims, not
the absolute times.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.flops import flops_per_image
from model_store.store import ModelStore
from model_store.vocabulary import split_model_name
from service.inference import session_options

BATCHES = (1, 32, 256)


def thread_counts() -> list[int]:
    cores = os.cpu_count() or 1
    return sorted({1, cores})


def timed_block(run: Callable[[], object], seconds: float, min_calls: int = 3) -> list[float]:
    """Per-call times of `run`, called for about `seconds` (at least `min_calls` times)."""
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - start) / 1e9)
    return times


def _torch_model(architecture: str, labels: int, threads: int):
    """The same architecture in PyTorch eager; the cost of a forward pass does not depend on the weights."""
    import torch

    from trainer.models import create_model

    torch.set_num_threads(threads)
    model = create_model(architecture, num_classes=labels).eval()

    def run(batch: np.ndarray) -> Callable[[], object]:
        tensor = torch.from_numpy(batch)

        def forward() -> object:
            with torch.inference_mode():
                return model(tensor)

        return forward

    return run


def _runners(onnx_path: Path, architecture: str, labels: int, threads: int, eager: bool) -> dict[str, Callable]:
    session = ort.InferenceSession(str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runners: dict[str, Callable] = {"onnxruntime": lambda batch: lambda: session.run(None, {name: batch})}
    if eager:
        with contextlib.suppress(ImportError):  # PyTorch is the comparison, not a requirement
            runners["torch"] = _torch_model(architecture, labels, threads)
    return runners


def measure_model(
    store: ModelStore, name: str, threads: int, seconds: float, rounds: int, eager: bool = True
) -> dict[str, object]:
    family, size = split_model_name(name)
    resolved = store.resolve(size, family=family)
    meta = resolved.metadata
    runners = _runners(resolved.onnx_path, meta.architecture, len(meta.labels), threads, eager)
    side = meta.preprocess.input_size
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, object]] = {engine: {"throughput": {}} for engine in runners}
    latencies: dict[str, list[float]] = {engine: [] for engine in runners}
    for batch_size in BATCHES:
        batch = rng.random((batch_size, 1, side, side), dtype=np.float32)
        calls = {engine: make(batch) for engine, make in runners.items()}
        for call in calls.values():  # warm-up: first-run allocations and kernel selection
            for _ in range(3):
                call()
        rates: dict[str, list[float]] = {engine: [] for engine in calls}
        for _ in range(rounds):
            for engine, call in calls.items():
                times = timed_block(call, seconds / rounds)
                rates[engine].append(batch_size * len(times) / sum(times))
                if batch_size == 1:
                    latencies[engine].extend(times)
        for engine in calls:
            results[engine]["throughput"][str(batch_size)] = float(np.median(rates[engine]))
    for engine, times in latencies.items():
        results[engine]["latency_ms"] = {
            "median": float(np.median(times)) * 1e3,
            "p99": float(np.percentile(times, 99)) * 1e3,
            "samples": len(times),
        }
    return {
        "model": name,
        "family": family,
        "size": size,
        "version": meta.version,
        "threads": threads,
        "file_bytes": meta.file_bytes,
        "parameters": meta.parameters,
        "flops_per_image": flops_per_image(resolved.onnx_path),
        "engines": results,
    }


def optimisation_levels(store: ModelStore, size: str, seconds: float) -> list[dict[str, object]]:
    """The service's session options with each graph optimisation level in turn (one thread): what the level
    the service uses is worth. ORT_ENABLE_ALL adds the layout transformation to blocked NCHWc convolutions."""
    path = str(store.resolve(size).onnx_path)
    side = store.resolve(size).metadata.preprocess.input_size
    rng = np.random.default_rng(0)
    one = rng.random((1, 1, side, side), dtype=np.float32)
    many = rng.random((256, 1, side, side), dtype=np.float32)
    rows = []
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        options = session_options(1)
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        latency = timed_block(lambda s=session, n=name: s.run(None, {n: one}), seconds)
        batch = timed_block(lambda s=session, n=name: s.run(None, {n: many}), seconds)
        rows.append(
            {
                "size": size,
                "level": level,
                "latency_ms_median": float(np.median(latency)) * 1e3,
                "throughput_256": 256 * len(batch) / sum(batch),
            }
        )
    return rows


def run(store: ModelStore, seconds: float, rounds: int, eager: bool = True) -> list[dict[str, object]]:
    """Every served model of every family in the store, at each thread count (``eager``: PyTorch beside)."""
    names, counts = store.models(), thread_counts()
    return [measure_model(store, name, count, seconds, rounds, eager) for name in names for count in counts]
