"""Network helpers shared by the test helpers (serve_support, review_support); imports
nothing optional, so a test that needs only a port is never skipped for a missing extra."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
