"""``Scale``: per-column scaling of numeric features, fitted on the training rows.

Linear models regularise every weight alike, so a column measured in thousands drowns one
measured in thousandths once rows are normalised to unit length (audio descriptors, MULAN's
emotions: column maxima from 0.1 to 240). ``Scale`` puts the columns on one footing:

``method="standard"``
    ``(x - mean_j) / std_j`` over the training rows (dense X only: centring fills every
    zero of a sparse matrix; a sparse X given to ``transform`` is made dense first).
``method="maxabs"``
    ``x / max_i |x_ij|``: keeps zeros, so sparse stays sparse.
``method="none"``
    X as given.
``method="auto"`` (the default; the rule, decided on the training rows)
    dense X -> ``"standard"``; sparse X -> ``"maxabs"`` when its columns are clearly not on
    one scale, i.e. when the spread of the column maxima (the ratio of the 95th to the 5th
    percentile of ``max_i |x_ij|`` over the columns that hold any non-zero) is above
    :data:`SPREAD_LIMIT` (100, two orders of magnitude), else ``"none"``. Binary features
    have spread 1 and unit-length tf-idf rows stay far below 100, so both pass unchanged.

A column with no spread (constant, or all zero) is divided by 1. The learned state is
``method_`` (the method in effect), ``mean_`` (float64, zeros unless standard), ``scale_``
(float64, the divisors), ``n_features_in_`` and ``facts_`` (``{"kind": "dense"|"sparse",
"spread": float}``, what the rule saw). Saved like every featurizer: JSON plus two arrays
(:mod:`labelwise.features.base`). Output: dense float32 for dense input (or for
``"standard"``), CSR float32 for sparse input otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..dataset import Dataset
from ..errors import DataFormatError
from .base import Featurizer

__all__ = ["Scale", "SCALE_METHODS", "SPREAD_LIMIT", "column_spread"]

#: the methods ``Scale`` accepts
SCALE_METHODS = ("auto", "standard", "maxabs", "none")

#: ``method="auto"`` scales a sparse X whose column-maxima spread is above this
SPREAD_LIMIT = 100.0


def _numeric(X: Any, field: str = "X") -> Any:
    """X as CSR or a 2-D float array; texts and non-finite values are refused."""
    if isinstance(X, Dataset):
        X = X.X
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        values = X.data
    else:
        if isinstance(X, list | tuple) and X and isinstance(X[0], str):
            raise DataFormatError("Scale takes numeric features, got texts", field=field)
        X = np.asarray(X)
        if X.dtype.kind not in "fiub" or X.ndim != 2:
            raise DataFormatError(f"Scale takes a 2-D numeric array, got dtype {X.dtype} with "
                                  f"{X.ndim} dimension(s)", field=field)
        values = X
    if values.size and not np.all(np.isfinite(values)):
        raise DataFormatError("features hold NaN or infinite values", field=field)
    return X


def column_spread(X: Any) -> float:
    """95th / 5th percentile of the columns' max |x| over columns with a non-zero (1.0 when
    none or one such column)."""
    m = np.asarray(abs(X).max(axis=0).todense() if sp.issparse(X) else np.abs(X).max(axis=0),
                   dtype=np.float64).ravel() if X.shape[0] else np.zeros(0)
    m = m[m > 0]
    if m.size < 2:
        return 1.0
    lo, hi = np.quantile(m, [0.05, 0.95])
    return float(hi / lo)


class Scale(Featurizer):
    """Per-column scaling of numeric features (see the module docstring).

    Parameters
    ----------
    method: "auto", "standard", "maxabs" or "none".
    """

    _persist_name = "Scale"
    #: takes numeric features, not texts (a Pipeline treats it as no text featurizer)
    takes_texts = False

    def __init__(self, method: str = "auto") -> None:
        self.method = method

    def fit(self, X: Any, y: Any = None) -> Scale:
        if self.method not in SCALE_METHODS:
            raise ValueError(f"method must be one of {', '.join(SCALE_METHODS)}, got "
                             f"{self.method!r}")
        X = _numeric(X)
        if X.shape[0] == 0:
            raise DataFormatError("no rows to fit on", field="X")
        self._clear_fitted()
        kind = "sparse" if sp.issparse(X) else "dense"
        spread = column_spread(X)
        method = self.method
        if method == "auto":
            method = "standard" if kind == "dense" else (
                "maxabs" if spread > SPREAD_LIMIT else "none")
        if method == "standard" and kind == "sparse":
            raise DataFormatError("method='standard' centres the columns, which would make "
                                  "this sparse X dense: use 'maxabs'", field="method")
        d = X.shape[1]
        mean = np.zeros(d, np.float64)
        scale = np.ones(d, np.float64)
        if method == "standard":
            Xd = np.asarray(X, dtype=np.float64)
            mean = Xd.mean(axis=0)
            scale = Xd.std(axis=0)
        elif method == "maxabs":
            scale = np.asarray(abs(X).max(axis=0).todense() if kind == "sparse"
                               else np.abs(X).max(axis=0), dtype=np.float64).ravel()
        scale[~(scale > 0)] = 1.0
        self.method_ = method
        self.mean_ = mean
        self.scale_ = scale
        self.n_features_in_ = int(d)
        self.facts_ = {"kind": kind, "spread": spread}
        self.fitted_ = True
        return self

    def transform(self, X: Any) -> Any:
        self._check_fitted()
        X = _numeric(X)
        if X.shape[1] != self.n_features_in_:
            raise DataFormatError(f"X has {X.shape[1]} features, the scaler was fitted on "
                                  f"{self.n_features_in_}", field="X")
        if self.method_ == "none":
            return X
        inv = (1.0 / self.scale_)
        if sp.issparse(X) and self.method_ == "maxabs":
            out = sp.csr_matrix(X @ sp.diags(inv.astype(np.float32)), dtype=np.float32)
            out.sort_indices()
            return out
        Xd = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        return np.ascontiguousarray((Xd - self.mean_) * inv, dtype=np.float32)

    def explain(self) -> dict[str, Any]:
        """The method asked for, the one in effect, and what the rule saw."""
        self._check_fitted()
        return {"method": self.method, "method_in_effect": self.method_, **self.facts_,
                "spread_limit": SPREAD_LIMIT}

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"mean": np.asarray(self.mean_, np.float64),
                 "scale": np.asarray(self.scale_, np.float64)},
                {"method": self.method_, "n_features": self.n_features_in_,
                 "facts": self.facts_})

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        method, d = state["method"], state["n_features"]
        if method not in SCALE_METHODS[1:]:
            raise ValueError(f"method in effect {method!r} is not one of "
                             f"{', '.join(SCALE_METHODS[1:])}")
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"n_features must be an int >= 0, got {d!r}")
        mean, scale = arrays["mean"], arrays["scale"]
        for name, a in (("mean", mean), ("scale", scale)):
            if a.dtype != np.float64 or a.shape != (d,) or not np.all(np.isfinite(a)):
                raise ValueError(f"array {name!r} must be {d} finite float64 values")
        if not np.all(scale > 0):
            raise ValueError("array 'scale' must be positive")
        facts = state.get("facts")
        if not isinstance(facts, dict):
            raise ValueError("facts must be an object")
        self.method_, self.n_features_in_, self.facts_ = method, d, facts
        self.mean_, self.scale_ = mean, scale
