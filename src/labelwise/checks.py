"""Argument checks shared by every floor of labelwise, written once.

``positive_int(value, name)``: the count parameters (``k`` of top-k scores, policies and
metrics; later ``cv`` and others) as a plain ``int``; DataFormatError (a ValueError) naming
the field otherwise. ``MISSING_RULES``, ``check_missing_rule(rule)`` and ``count_missing(X)``: what the pipeline and its
scaler may do with missing values (NaN) in numeric X, and how many X holds (cheap: the
pipeline asks before it imports the scaler). At import it needs nothing but
:mod:`labelwise.errors` (numpy and scipy are imported inside the functions: the CLI's
parser imports this module), so data, models, decision, metrics, the pipeline and the CLI
can all use it.
"""

from __future__ import annotations

from typing import Any

from .errors import DataFormatError

__all__ = ["positive_int", "MISSING_RULES", "check_missing_rule", "count_missing"]

#: what the pipeline (``Pipeline(missing=)``) and its scaler do with missing values (NaN) in
#: numeric X: fill them with the column's training median or mean, or refuse them
MISSING_RULES = ("median", "mean", "error")


def check_missing_rule(rule: Any) -> None:
    """ValueError unless ``rule`` is one of :data:`MISSING_RULES`."""
    if rule not in MISSING_RULES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_RULES)}, got {rule!r}")


def count_missing(X: Any) -> int:
    """How many NaN numeric X (an array, array-like or sparse matrix) holds."""
    import numpy as np
    import scipy.sparse as sp

    values = X.data if sp.issparse(X) else np.asarray(X)
    return int(np.count_nonzero(np.isnan(values))) if values.dtype.kind == "f" else 0


def positive_int(value: Any, name: str = "k", *, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (None passes when ``allow_none``); bools, floats and other
    types are refused with ``"<name> must be a positive integer, got <value>"``."""
    if value is None and allow_none:
        return None
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        what = "None or a positive integer" if allow_none else "a positive integer"
        raise DataFormatError(f"{name} must be {what}, got {value!r}", field=name)
    return int(value)
