"""Lazy PyTorch access for the neural heads: import, threads, seeding, determinism.

torch is the ``[neural]`` extra; nothing here imports it at module import time.
:func:`import_torch` raises :class:`~labelwise.errors.MissingDependencyError` with the
install hint when it is missing. :func:`torch_session` is the context every training or
scoring call runs in: it sets the thread count (``torch.set_num_threads``), optionally seeds
every generator torch uses and turns on ``torch.use_deterministic_algorithms`` (warn-only,
so an operation without a deterministic kernel still runs), and restores the previous
settings on the way out, so a model never changes the caller's global torch state.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...errors import MissingDependencyError

__all__ = ["import_torch", "torch_session", "check_seed", "resolve_threads"]


def import_torch(purpose: str = "the neural models") -> Any:
    """The torch module, or MissingDependencyError('torch', 'neural')."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "neural", purpose) from None
    return torch


def resolve_threads(n_threads: int | None) -> int:
    """n_threads as a positive count: None = all cores (os.cpu_count())."""
    if n_threads is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(n_threads, bool) or not isinstance(n_threads, int | np.integer) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return int(n_threads)


def check_seed(random_state: Any) -> int:
    """random_state as the int seed torch needs (None -> 0: training is always seeded)."""
    if random_state is None:
        return 0
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
        raise ValueError(f"random_state must be an int or None, got {random_state!r}")
    if not 0 <= int(random_state) < 2**63:
        raise ValueError(f"random_state must be in [0, 2**63), got {random_state!r}")
    return int(random_state)


@contextlib.contextmanager
def torch_session(n_threads: int | None, seed: int | None = None) -> Iterator[Any]:
    """Run a block with ``n_threads`` torch threads and, when ``seed`` is given, seeded,
    deterministic torch; yields the torch module and restores the previous state after."""
    torch = import_torch()
    threads = resolve_threads(n_threads)
    before_threads = torch.get_num_threads()
    before_det = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    rng_state = torch.random.get_rng_state() if seed is not None else None
    try:
        if seed is not None:
            torch.manual_seed(seed)
            random.seed(seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield torch
    finally:
        torch.set_num_threads(before_threads)
        if seed is not None:
            torch.use_deterministic_algorithms(before_det, warn_only=before_warn)
            torch.random.set_rng_state(rng_state)
