"""Prometheus metrics of the server (prometheus-client).

``labelwise_requests_total{route,method,status}``, ``labelwise_request_seconds{route}``
(latency histogram), ``labelwise_items_predicted_total{model}``,
``labelwise_batch_items{model}`` (items per model call: the micro-batch sizes),
``labelwise_model_load_seconds{model}`` and ``labelwise_model_info{model,version}`` (1 for the
version served). ``route`` is the route's template (``/v1/models/{name}/predict``), never the
raw path, so unknown paths cannot blow up the label set (they count as ``unmatched``).

With several uvicorn workers (``--workers N``) the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` to a
fresh folder before the workers start; each worker then writes its samples there and
``GET /metrics`` (answered by any one worker) sums them over all workers (prometheus-client's
multiprocess mode; gauges keep one series per live worker, with a ``pid`` label).
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["Metrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    """The server's metric objects, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        reg = None if self.multiprocess else CollectorRegistry()
        self.registry = reg
        self.requests = Counter("labelwise_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=reg)
        self.latency = Histogram("labelwise_request_seconds", "time to answer a request",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.items = Counter("labelwise_items_predicted", "items predicted", ["model"],
                             registry=reg)
        self.batch = Histogram("labelwise_batch_items", "items per model call (micro-batch size)",
                               ["model"], buckets=_BATCH_BUCKETS, registry=reg)
        mode = {"multiprocess_mode": "liveall"} if self.multiprocess else {}
        self.load_seconds = Gauge("labelwise_model_load_seconds",
                                  "seconds to load and warm the served version", ["model"],
                                  registry=reg, **mode)
        self.model_info = Gauge("labelwise_model_info", "1 for the version being served",
                                ["model", "version"], registry=reg, **mode)

    def loaded(self, name: str, version: str, seconds: float, old_version: str | None) -> None:
        if old_version is not None and old_version != version:
            if self.multiprocess:  # removing a series is not supported there: 0 = not served
                self.model_info.labels(name, old_version).set(0)
            else:
                try:
                    self.model_info.remove(name, old_version)
                except KeyError:
                    pass
        self.model_info.labels(name, version).set(1)
        self.load_seconds.labels(name).set(seconds)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        reg = self.registry
        if reg is None:
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
        return generate_latest(reg), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware counting every HTTP answer by route template, method and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)
