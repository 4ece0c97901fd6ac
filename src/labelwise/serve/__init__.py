"""``labelwise serve``: an HTTP API over saved pipelines (FastAPI + uvicorn, extra ``[serve]``).

The server is a thin edge over :class:`~labelwise.pipeline.Pipeline`: it loads pipelines
memory-mapped (:mod:`.registry`), turns requests into the calls ``labelwise predict`` makes
(:mod:`.inputs`), groups concurrent requests into one model call (:mod:`.batching`), answers
errors as problem+json (:mod:`.errors`) and counts everything for Prometheus
(:mod:`.metrics`). Routes: :mod:`.app`; settings: :mod:`.settings`.

Imported lazily: ``from labelwise.serve import create_app`` needs fastapi.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ServeSettings"]


def __getattr__(name: str) -> Any:
    if name == "ServeSettings":
        from .settings import ServeSettings

        return ServeSettings
    if name == "create_app":
        require()
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'labelwise.serve' has no attribute {name!r}")


def require() -> None:
    """Raise MissingDependencyError with the install hint when the [serve] extra is absent."""
    import importlib.util

    from labelwise.errors import MissingDependencyError

    for module, package in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"),
                            ("prometheus_client", "prometheus-client")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(package, "serve", "labelwise serve")
