"""Helpers of the Dask test modules (not a test module)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def arrays_in(obj, found, depth=0):
    """Every ndarray / sparse matrix inside a task spec or a result (arguments, nested
    containers, dataclasses)."""
    if depth > 20:
        return
    if sp.issparse(obj) or isinstance(obj, np.ndarray):
        found.append(obj)
        return
    if isinstance(obj, dict):
        for v in obj.values():
            arrays_in(v, found, depth + 1)
        return
    if isinstance(obj, list | tuple | set):
        for v in obj:
            arrays_in(v, found, depth + 1)
        return
    if hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            arrays_in(getattr(obj, name), found, depth + 1)
        return
    for attr in ("args", "kwargs", "value", "func"):
        if hasattr(obj, attr) and not isinstance(obj, str | bytes | type):
            arrays_in(getattr(obj, attr), found, depth + 1)
