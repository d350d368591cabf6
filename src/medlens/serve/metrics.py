"""Prometheus metrics, one registry per app (two apps in one process never share counters).

Labels are route templates and status codes only: no ids, no file names, no text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@dataclass
class Metrics:
    registry: Any = field(default_factory=_registry)

    def __post_init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "medlens_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medlens_request_seconds",
            "Request duration by route",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.rejected = Counter(
            "medlens_rejected",
            "Requests refused to protect the server (auth, rate, queue, size, timeout)",
            ["reason"],
            registry=self.registry,
        )
        self.upload_bytes = Histogram(
            "medlens_request_body_bytes",
            "Request body sizes",
            buckets=(1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9),
            registry=self.registry,
        )
        self.waiting = Gauge(
            "medlens_queue_waiting", "Requests waiting for a model slot", registry=self.registry
        )
        self.running = Gauge(
            "medlens_model_running", "Model calls in progress", registry=self.registry
        )
        self.ready = Gauge("medlens_ready", "1 once the model is loaded", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


REJECT_REASONS = {401: "auth", 413: "too_large", 429: "rate_limit", 503: "busy", 504: "timeout"}
