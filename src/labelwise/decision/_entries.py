"""Scores as flat entry arrays: the common input of every decision policy and calibrator.

A score matrix ``S`` (n_samples, n_labels) is either dense (every pair scored) or a scipy
sparse top-k matrix whose *stored* entries are the retrieved labels (a stored 0.0 is still
retrieved) and whose unstored entries are *not retrieved* (see
:mod:`labelwise.metrics._inputs`). :func:`entries` flattens it into parallel arrays
``rows``, ``cols`` (int64), ``values`` (float64) in row-major order with columns ascending
within a row; :func:`hits` marks the entries that are true labels of ``Y``.

Validation: values must be finite (NaN and infinities are refused with the position named);
a sparse matrix may not store one pair twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._csr import trusted_csr
from ..dataset import as_label_matrix
from ..errors import DataFormatError

__all__ = ["Entries", "entries", "hits", "truth", "rebuild", "index_dtype", "fold_ids"]


def index_dtype(n_labels: int) -> type:
    """int32 column indices below 2**31 labels, int64 past it (never smaller)."""
    return np.int32 if n_labels < 2**31 else np.int64


@dataclass(frozen=True)
class Entries:
    """Flat view of a score matrix (module docstring)."""

    shape: tuple[int, int]
    rows: np.ndarray  # int64
    cols: np.ndarray  # int64
    values: np.ndarray  # float64
    indptr: np.ndarray  # int64 (n_samples + 1): entries of row i are [indptr[i], indptr[i+1])
    dense: bool

    @property
    def nnz(self) -> int:
        return int(self.values.size)


def entries(S: Any, *, field: str = "S") -> Entries:
    """Flatten dense or sparse scores (module docstring)."""
    if sp.issparse(S):
        M = S if type(S) is sp.csr_matrix else sp.csr_matrix(S)
        if not M.has_sorted_indices:
            M = M.copy()
            M.sort_indices()
        n, L = M.shape
        indptr = M.indptr.astype(np.int64)
        cols = M.indices.astype(np.int64)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        if cols.size > 1:
            dup = (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])
            if dup.any():
                p = int(np.flatnonzero(dup)[0])
                raise DataFormatError(
                    f"pair ({int(rows[p])}, {int(cols[p])}) is stored twice", field=field)
        values = np.asarray(M.data, dtype=np.float64)
        dense = False
    else:
        A = np.asarray(S)
        if A.ndim != 2:
            raise DataFormatError(f"scores must be 2-D (n_samples, n_labels), got shape "
                                  f"{A.shape}", field=field)
        if A.dtype.kind not in "fiub":
            raise DataFormatError(f"scores must be numeric, got dtype {A.dtype}", field=field)
        n, L = A.shape
        values = A.astype(np.float64).ravel()
        rows = np.repeat(np.arange(n, dtype=np.int64), L)
        cols = np.tile(np.arange(L, dtype=np.int64), n)
        indptr = np.arange(0, n * L + 1, max(L, 1), dtype=np.int64)[: n + 1]
        if L == 0:
            indptr = np.zeros(n + 1, np.int64)
        dense = True
    bad = ~np.isfinite(values)
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{field}[{int(rows[p])}, {int(cols[p])}] = {values[p]!r}: scores must be finite",
            field=field)
    return Entries((int(n), int(L)), rows, cols, values, indptr, dense)


def truth(Y: Any, shape: tuple[int, int], *, field: str = "Y") -> sp.csr_matrix:
    """Y as canonical CSR 0/1 of the given shape (refuses a mismatch)."""
    M = as_label_matrix(Y)
    if M.shape != shape:
        raise DataFormatError(f"Y has shape {M.shape} but the scores have shape {shape}",
                              field=field)
    return M


def hits(E: Entries, Y: sp.csr_matrix) -> np.ndarray:
    """Boolean array: entry p is a true label of Y (O(nnz log nnz))."""
    L = max(E.shape[1], 1)
    ycols = Y.indices.astype(np.int64)
    yrows = np.repeat(np.arange(Y.shape[0], dtype=np.int64), np.diff(Y.indptr))
    ykeys = yrows * L + ycols  # sorted: CSR rows ascending, columns sorted
    keys = E.rows * L + E.cols
    if ykeys.size == 0:
        return np.zeros(keys.size, bool)
    pos = np.searchsorted(ykeys, keys)
    pos = np.minimum(pos, ykeys.size - 1)
    return ykeys[pos] == keys


def rebuild(E: Entries, values: np.ndarray, keep: np.ndarray | None = None, *,
            dense_out: bool | None = None) -> Any:
    """Scores with new ``values`` in the layout of ``E``: dense in, dense out; sparse in, CSR
    float32 out (stored entries kept, including zeros). With ``keep`` only those entries are
    stored (CSR output always)."""
    n, L = E.shape
    if keep is None and (E.dense if dense_out is None else dense_out):
        out = np.zeros((n, L), dtype=np.float64)
        out[E.rows, E.cols] = values
        return out
    rows, cols, vals = E.rows, E.cols, values
    if keep is not None:
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return trusted_csr(vals.astype(np.float32), cols.astype(index_dtype(L)), indptr, (n, L),
                       sorted_indices=True)


def fold_ids(folds: Any, n_rows: int) -> np.ndarray:
    """``folds`` as an int64 array of one fold id per row (refuses anything else)."""
    f = np.asarray(folds)
    if f.shape != (n_rows,):
        raise DataFormatError(f"folds must hold one fold id per row ({n_rows}), got shape "
                              f"{f.shape}", field="folds")
    if f.dtype.kind not in "iu":
        raise DataFormatError(f"folds must be integers, got dtype {f.dtype}", field="folds")
    return f.astype(np.int64)
