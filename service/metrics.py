"""Prometheus metrics: request counts and latency by endpoint, model (name and size tier) and status.

Each app has its own registry (several apps may live in one test process). With several workers
``python -m service`` sets PROMETHEUS_MULTIPROC_DIR, and /metrics then aggregates every worker's files.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# model: the model name that answered (e.g. dsvgg_xxs; several families may serve one size); size: the tier asked for.
_LABELS = ("endpoint", "model", "size", "status")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("microexp_requests", "HTTP requests handled", _LABELS, registry=self.registry)
        self.latency = Histogram(
            "microexp_request_duration_seconds",
            "Time from request start to the end of the response",
            _LABELS,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.body_bytes_held = Gauge(
            "microexp_request_body_bytes_held",
            "Bytes of request bodies held in memory now (MICROEXP_MAX_BUFFERED_BYTES bounds it per worker)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rate_limited = Counter(
            "microexp_rate_limited", "Requests refused with 429 for passing their client's rate", registry=self.registry
        )

    def observe(self, endpoint: str, model: str, size: str, status: int, seconds: float) -> None:
        labels = (endpoint, model, size, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        if MULTIPROC_ENV in os.environ:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
