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

A column with no spread (constant, or all zero) is divided by 1.

Missing values (NaN; ``missing``): when the training rows hold some, ``"median"`` (the
default) or ``"mean"`` fill each NaN, in training and in every later transform, with its
column's median or mean over the training rows' values that are present (a column with no
value present: 0; every column has its value, so a NaN in a later X is filled even in a
column whose training rows had none), before the scaling above (which is then computed on
the filled columns). ``"error"`` refuses them, and so does a scaler whose training rows held
none (``missing_`` is then ``"error"``: a NaN that appears only after training is reported,
not filled with a value no training row justified). A sparse X's missing values are its
stored NaN (its implicit zeros are values). Infinite values are always refused, with the
row and column of the first.

The learned state is ``method_`` (the method in effect), ``mean_`` (float64, zeros unless
standard), ``scale_`` (float64, the divisors), ``fill_`` (float64, each column's fill
value; zeros with ``missing="error"``), ``n_features_in_`` and ``facts_`` (``{"kind":
"dense"|"sparse", "spread": float, "missing": {"values", "columns", "rows",
"empty_columns"}}``, what the rule saw on the training rows). Saved like every featurizer:
JSON plus three arrays (:mod:`labelwise.features.base`; a scaler saved before ``fill``
existed loads with ``missing_ = "error"``). Output: dense float32 for dense input (or for
``"standard"``), CSR float32 for sparse input otherwise.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..checks import MISSING_RULES, check_missing_rule, count_missing
from ..dataset import Dataset
from ..errors import DataFormatError
from .base import Featurizer

__all__ = ["Scale", "SCALE_METHODS", "MISSING_RULES", "SPREAD_LIMIT", "column_spread",
           "MissingValuesWarning"]

#: the methods ``Scale`` accepts
SCALE_METHODS = ("auto", "standard", "maxabs", "none")


class MissingValuesWarning(UserWarning):
    """Missing values (NaN) in numeric X were filled (``Pipeline(missing=...)``)."""


#: ``method="auto"`` scales a sparse X whose column-maxima spread is above this
SPREAD_LIMIT = 100.0


def _numeric(X: Any, field: str = "X", missing: str = "error") -> Any:
    """X as CSR or a 2-D float array; texts, infinite values and (``missing="error"``) NaN
    are refused, naming the row and column of the first."""
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
    if values.size and values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        bad = np.isinf(values) if missing != "error" else ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad.ravel())[0])
            if sp.issparse(X):
                row = int(np.searchsorted(X.indptr, first, side="right") - 1)
                col = int(X.indices[first])
            else:
                row, col = divmod(first, X.shape[1])
            value = values.ravel()[first]
            what = "infinite values" if np.isinf(value) else "missing values (NaN)"
            hint = "" if np.isinf(value) else (" (missing='median' or 'mean' fills them with "
                                               "the column's value over the training rows, "
                                               "when those hold missing values too)")
            raise DataFormatError(f"features hold {what}: {int(bad.sum())} of them, the first "
                                  f"at row {row}, column {col}{hint}", field=field)
    return X


#: float64 values per column block of :func:`_fill_values` (16 M: 128 MiB)
_BLOCK_VALUES = 1 << 24


def _column_blocks(n: int, cols: np.ndarray):
    """``cols`` in consecutive pieces of at most :data:`_BLOCK_VALUES` // n columns."""
    step = max(1, _BLOCK_VALUES // max(n, 1))
    for i in range(0, cols.size, step):
        yield cols[i:i + step]


def _fill_values(X: Any, rule: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Every column's fill value (``rule``, median or mean, over the values present; 0 for a
    column with none) and the facts of X's missing values. A sparse X's implicit zeros are
    values: a column whose zeros are more than half its values present has median 0. Columns
    are read in blocks of at most 128 MiB of float64."""
    n, d = X.shape
    fill = np.zeros(d, np.float64)
    if sp.issparse(X):  # (CSR: no copy of X; temporary arrays of one byte per entry)
        nan = np.isnan(X.data)
        n_nan = np.bincount(X.indices[nan], minlength=d)
        present = n - n_nan
        if rule == "mean":
            sums = np.bincount(X.indices, weights=np.where(nan, 0.0, X.data), minlength=d)
            np.divide(sums, present, out=fill, where=present > 0)
        else:
            zeros = n - np.bincount(X.indices, minlength=d)
            need = np.flatnonzero((zeros <= present // 2) & (present > 0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for block in _column_blocks(n, need):  # the columns whose median is not 0
                    fill[block] = np.nanmedian(X[:, block].toarray().astype(np.float64), axis=0)
        rows = np.unique(np.repeat(np.arange(n), np.diff(X.indptr))[nan])
        n_values = int(np.count_nonzero(nan))
    else:
        X = np.asarray(X)
        present = np.zeros(d, np.int64)
        row_has = np.zeros(n, bool)
        with warnings.catch_warnings():  # a column with no value present: 0, below
            warnings.simplefilter("ignore", RuntimeWarning)
            for block in _column_blocks(n, np.arange(d)):
                part = X[:, block].astype(np.float64)
                isnan = np.isnan(part)
                present[block] = n - isnan.sum(axis=0)
                row_has |= isnan.any(axis=1)
                fill[block] = (np.nanmedian(part, axis=0) if rule == "median"
                               else np.nanmean(part, axis=0))
        fill[present == 0] = 0.0
        rows = np.flatnonzero(row_has)
        n_nan = n - present
        n_values = int(n_nan.sum())
    empty = np.flatnonzero(present == 0)
    facts = {"values": n_values, "columns": int(np.count_nonzero(n_nan)), "rows": int(rows.size),
             "empty_columns": [int(c) for c in empty[:20]]}
    return fill, facts


def _filled(X: Any, fill: np.ndarray) -> Any:
    """X with each NaN replaced by its column's fill value (a copy; X itself unchanged)."""
    if sp.issparse(X):
        nan = np.isnan(X.data)
        if not nan.any():
            return X
        X = X.copy()
        X.data[nan] = fill[X.indices[nan]]
        return X
    if X.dtype.kind != "f":
        return X
    nan = np.isnan(X)
    if not nan.any():
        return X
    X = np.array(X, dtype=np.float64 if X.dtype == np.float64 else np.float32)
    X[nan] = np.broadcast_to(fill, X.shape)[nan]
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
    missing: "median", "mean" or "error" (what to do with NaN; module docstring).
    """

    _persist_name = "Scale"
    #: takes numeric features, not texts (a Pipeline treats it as no text featurizer)
    takes_texts = False

    def __init__(self, method: str = "auto", missing: str = "median") -> None:
        self.method = method
        self.missing = missing

    def fit(self, X: Any, y: Any = None) -> Scale:
        if self.method not in SCALE_METHODS:
            raise ValueError(f"method must be one of {', '.join(SCALE_METHODS)}, got "
                             f"{self.method!r}")
        check_missing_rule(self.missing)
        X = _numeric(X, missing=self.missing)
        if X.shape[0] == 0:
            raise DataFormatError("no rows to fit on", field="X")
        self._clear_fitted()
        rule = self.missing
        if rule == "error" or not count_missing(X):  # nothing to fill: later NaN are refused
            rule = "error"
            fill = np.zeros(X.shape[1], np.float64)
            missing = {"values": 0, "columns": 0, "rows": 0, "empty_columns": []}
        else:
            fill, missing = _fill_values(X, rule)
            X = _filled(X, fill)
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
            # in float64, the values widened as they are read (no float64 copy of X)
            mean = X.mean(axis=0, dtype=np.float64)
            scale = X.std(axis=0, dtype=np.float64)
        elif method == "maxabs":
            scale = np.asarray(abs(X).max(axis=0).todense() if kind == "sparse"
                               else np.abs(X).max(axis=0), dtype=np.float64).ravel()
        scale[~(scale > 0)] = 1.0
        self.method_ = method
        self.mean_ = mean
        self.scale_ = scale
        self.fill_ = fill
        self.missing_ = rule
        self.n_features_in_ = int(d)
        self.facts_ = {"kind": kind, "spread": spread, "missing": missing}
        self.fitted_ = True
        return self

    def transform(self, X: Any) -> Any:
        self._check_fitted()
        X = _numeric(X, missing=self.missing_)
        if X.shape[1] != self.n_features_in_:
            raise DataFormatError(f"X has {X.shape[1]} features, the scaler was fitted on "
                                  f"{self.n_features_in_}", field="X")
        if self.missing_ != "error":  # (else _numeric refused any NaN)
            X = _filled(X, self.fill_)
        if self.method_ == "none":
            return X
        inv = (1.0 / self.scale_)
        if sp.issparse(X) and self.method_ == "maxabs":
            out = sp.csr_matrix(X @ sp.diags(inv.astype(np.float32)), dtype=np.float32)
            out.sort_indices()
            return out
        # (x - mean) / scale in float64, in place over one float64 copy of X
        Xd = np.array(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        Xd -= self.mean_
        Xd *= inv
        return Xd.astype(np.float32)

    def explain(self) -> dict[str, Any]:
        """The method asked for, the one in effect, and what the rule saw (missing values:
        how many the training rows held, and the rule that fills them)."""
        self._check_fitted()
        return {"method": self.method, "method_in_effect": self.method_, **self.facts_,
                "missing_rule": self.missing_, "spread_limit": SPREAD_LIMIT}

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"mean": np.asarray(self.mean_, np.float64),
                 "scale": np.asarray(self.scale_, np.float64),
                 "fill": np.asarray(self.fill_, np.float64)},
                {"method": self.method_, "n_features": self.n_features_in_,
                 "missing": self.missing_, "facts": self.facts_})

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        method, d = state["method"], state["n_features"]
        if method not in SCALE_METHODS[1:]:
            raise ValueError(f"method in effect {method!r} is not one of "
                             f"{', '.join(SCALE_METHODS[1:])}")
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"n_features must be an int >= 0, got {d!r}")
        # a scaler saved before missing values were filled has no "fill" and refuses them
        missing = state.get("missing", "error")
        if missing not in MISSING_RULES:
            raise ValueError(f"missing {missing!r} is not one of {', '.join(MISSING_RULES)}")
        mean, scale = arrays["mean"], arrays["scale"]
        fill = arrays.get("fill", np.zeros(d, np.float64))
        for name, a in (("mean", mean), ("scale", scale), ("fill", fill)):
            if a.dtype != np.float64 or a.shape != (d,) or not np.all(np.isfinite(a)):
                raise ValueError(f"array {name!r} must be {d} finite float64 values")
        if not np.all(scale > 0):
            raise ValueError("array 'scale' must be positive")
        facts = state.get("facts")
        if not isinstance(facts, dict):
            raise ValueError("facts must be an object")
        self.method_, self.n_features_in_, self.facts_ = method, d, facts
        self.mean_, self.scale_, self.fill_, self.missing_ = mean, scale, fill, missing
