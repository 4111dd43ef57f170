"""What the numbers were measured on: CPU, cores, library versions, date, other load; and the FLOP/s peak."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

LIBRARIES = ("onnxruntime", "opencv-python-headless", "numpy", "torch", "tensorflow-cpu", "fastapi", "uvicorn")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return sorted(flag for flag in flags if flag.startswith(("avx", "fma", "amx")))
    return []


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def wrk_version() -> str | None:
    try:
        result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return (result.stdout or result.stderr).splitlines()[0].split(" Copyright")[0].strip()


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """CPU ticks used so far and the state letter (R running, S sleeping, T stopped, ...) of every process."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(stat.parent.name)] = (int(fields[11]) + int(fields[12]), fields[0])
    return ticks


def other_load(seconds: float = 1.0) -> dict[str, object]:
    """Processes other than this one using the CPU when the run started, sampled over `seconds` (the machine
    is shared); stopped processes (state T, e.g. a paused training job) are listed as such."""
    hertz = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    busy, stopped = [], []
    for pid, (ticks, state) in after.items():
        if pid == os.getpid() or pid not in before:
            continue
        percent = 100.0 * (ticks - before[pid][0]) / hertz / seconds
        command = _command(pid)
        if state == "T" and command:
            stopped.append({"pid": pid, "command": command})
        elif percent >= 5.0:
            busy.append({"pid": pid, "cpu_percent": round(percent, 1), "command": command})
    load1, load5, _ = os.getloadavg()
    return {"loadavg_1m": load1, "loadavg_5m": load5, "busy_processes": busy, "stopped_processes": stopped}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return ""


def describe() -> dict[str, object]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
        "wrk": wrk_version(),
        "other_load": other_load(),
    }


def peak_flops(side: int = 4096, repeats: int = 5) -> dict[str, float | str]:
    """The machine's float32 FLOP/s: the best large matrix product (numpy's OpenBLAS, PyTorch when installed).

    A square SGEMM is the most compute-bound kernel there is, so its rate stands for what the cores can do.
    """
    rng = np.random.default_rng(0)
    a = rng.random((side, side), dtype=np.float32)
    b = rng.random((side, side), dtype=np.float32)
    flop = 2.0 * side**3
    results: dict[str, float] = {"numpy": flop / _best_time(lambda: a @ b, repeats)}
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(os.cpu_count() or 1)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        results["torch"] = flop / _best_time(lambda: ta @ tb, repeats)
    best = max(results, key=lambda name: results[name])
    return {"flops": results[best], "source": best, **{f"{name}_flops": value for name, value in results.items()}}


def _best_time(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best
