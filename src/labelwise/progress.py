"""Progress bars for long work (training, prediction, encoding), off unless asked for.

Library code reports progress through :func:`progress`; nothing is shown unless the caller
turned bars on with :func:`show_progress` (the CLI does, unless ``--quiet`` or stderr is not a
terminal). Bars use tqdm when installed (``pip install 'labelwise[progress]'``) and are
silently absent otherwise: progress is a convenience, never a requirement.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["progress", "show_progress", "progress_enabled"]

_state = {"on": False}
_lock = threading.Lock()


def progress_enabled() -> bool:
    return _state["on"]


@contextlib.contextmanager
def show_progress(on: bool = True) -> Iterator[None]:
    """Turn bars on (when stderr is a terminal) for the duration of the block."""
    before = _state["on"]
    _state["on"] = bool(on) and sys.stderr.isatty()
    try:
        yield
    finally:
        _state["on"] = before


class _Bar:
    def __init__(self, total: int, desc: str, unit: str) -> None:
        self._bar: Any = None
        if _state["on"]:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            with _lock:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "it") -> _Bar:
    """A bar of ``total`` steps (thread-safe ``update``); a no-op unless bars are on."""
    return _Bar(total, desc, unit)
