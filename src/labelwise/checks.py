"""Argument checks shared by every floor of labelwise, written once.

``positive_int(value, name)``: the count parameters (``k`` of top-k scores, policies and
metrics; later ``cv`` and others) as a plain ``int``; DataFormatError (a ValueError) naming
the field otherwise. ``MISSING_RULES`` and ``has_missing(X)``: what the pipeline and its
scaler may do with missing values (NaN) in numeric X, and whether X holds one (cheap: the
pipeline asks before it imports the scaler). It imports nothing but :mod:`labelwise.errors`,
numpy and scipy.sparse, so data, models, decision, metrics and the pipeline can all use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import DataFormatError

__all__ = ["positive_int", "MISSING_RULES", "has_missing"]

#: what the pipeline (``Pipeline(missing=)``) and its scaler do with missing values (NaN) in
#: numeric X: fill them with the column's training median or mean, or refuse them
MISSING_RULES = ("median", "mean", "error")


def has_missing(X: Any) -> bool:
    """Whether numeric X (an array, array-like or sparse matrix) holds a NaN."""
    values = X.data if sp.issparse(X) else np.asarray(X)
    return values.dtype.kind == "f" and bool(np.isnan(values).any())


def positive_int(value: Any, name: str = "k", *, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (None passes when ``allow_none``); bools, floats and other
    types are refused with ``"<name> must be a positive integer, got <value>"``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        what = "None or a positive integer" if allow_none else "a positive integer"
        raise DataFormatError(f"{name} must be {what}, got {value!r}", field=name)
    return int(value)
