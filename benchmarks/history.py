"""Typed records of the parts of a run in ``benchmarks/history/*.json`` that every report table reads: each model's
timings (``model``) and the HTTP load points (``http.points``). A run is kept as the dict it is written as; these
read its rows. Rows from before other families were timed name only the size: their model is MicroExpNet's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from model_store.vocabulary import DEFAULT_FAMILY, Size, model_name


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class Latency(_Row):
    median: float
    p99: float


class EngineTiming(_Row):
    throughput: dict[int, float]  # images/s by batch size
    latency_ms: Latency  # batch 1


class ModelRow(_Row):
    """One model timed at one thread count, in each engine (onnxruntime, and PyTorch eager where it was timed)."""

    size: Size
    family: str = DEFAULT_FAMILY
    model: str | None = None
    threads: int
    parameters: int
    file_bytes: int
    flops_per_image: float
    engines: dict[str, EngineTiming]

    @property
    def name(self) -> str:
        return self.model or model_name(self.family, self.size)

    @property
    def onnxruntime(self) -> EngineTiming:
        return self.engines["onnxruntime"]

    @property
    def eager_256(self) -> float | None:
        """PyTorch eager's images/s at batch 256, where it was timed."""
        eager = self.engines.get("torch")
        return eager.throughput.get(256) if eager else None


class HttpLatency(_Row):
    p99: float


class HttpPoint(_Row):
    """One workload against the server at one model size and number of connections."""

    workload: str
    size: Size
    connections: int
    requests_per_s: float
    latency_ms: HttpLatency
    error_count: int


def model_rows(run: dict[str, Any]) -> list[ModelRow]:
    return [ModelRow.model_validate(row) for row in run.get("model", [])]


def http_points(run: dict[str, Any]) -> list[HttpPoint]:
    return [HttpPoint.model_validate(point) for point in run.get("http", {}).get("points", [])]
