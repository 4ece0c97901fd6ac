"""``Dataset``: features, label matrix, label space, optional groups and ids.

Shapes are stated once here and used everywhere:

- ``X`` (n_samples, n_features): scipy CSR float32, dense float32 ndarray, or a list of texts
  (then n_features is 0).
- ``Y`` (n_samples, n_labels): scipy CSR float32 holding 1.0 for each positive label, sorted
  column indices, no duplicates, no explicit zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import DataFormatError, LabelError, UnknownLabelError
from .labels import LabelSpace, few_names

__all__ = ["Dataset", "as_label_matrix", "align_labels"]

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def as_label_matrix(Y: Any, n_labels: int | None = None) -> sp.csr_matrix:
    """Y as CSR float32 0/1 with sorted, unique column indices (int32 or int64, never smaller).

    Accepts a CSR/CSC/COO matrix, a dense 0/1 array, or a list of label-id lists. Values
    other than 0 and 1 are refused rather than clipped.
    """
    if isinstance(Y, list | tuple) and (len(Y) == 0 or not np.isscalar(Y[0])):
        if n_labels is None:
            n_labels = 1 + max((max(r) for r in Y if len(r)), default=-1)
        indptr = np.zeros(len(Y) + 1, dtype=np.int64)
        for i, r in enumerate(Y):
            indptr[i + 1] = indptr[i] + len(r)
        indices = np.fromiter((j for r in Y for j in r), dtype=np.int64, count=int(indptr[-1]))
        if indices.size and (indices.min() < 0 or indices.max() >= n_labels):
            bad = indices[(indices < 0) | (indices >= n_labels)][0]
            raise LabelError(f"label id {bad} outside 0..{n_labels - 1}")
        M = sp.csr_matrix(
            (np.ones(indices.size, dtype=np.float32), indices, indptr), shape=(len(Y), n_labels)
        )
        M.sum_duplicates()
        if M.nnz and M.data.max() > 1:
            row = int(np.searchsorted(M.indptr, np.flatnonzero(M.data > 1)[0], side="right") - 1)
            raise LabelError(f"row {row} lists a label more than once")
        return M
    if sp.issparse(Y):
        M = sp.csr_matrix(Y)
        canonical = M.has_canonical_format and M.dtype == np.float32 and bool(np.all(M.data == 1))
        if canonical and (n_labels is None or M.shape[1] == n_labels):
            return M  # already clean: shared, not copied (readers hand over their own arrays)
        M = M.copy()  # never normalise the caller's matrix in place
    else:
        arr = np.asarray(Y)
        if arr.ndim != 2:
            raise DataFormatError(f"Y must be 2-D (n_samples, n_labels), got shape {arr.shape}")
        M = sp.csr_matrix(arr)
    M.sum_duplicates()
    M.eliminate_zeros()
    if M.nnz and not np.all(M.data == 1):
        bad = M.data[M.data != 1][0]
        raise DataFormatError(f"Y must hold only 0 and 1, found {bad.item()!r}")
    if n_labels is not None and M.shape[1] != n_labels:
        raise DataFormatError(f"Y has {M.shape[1]} columns, expected {n_labels}")
    M.sort_indices()
    return M.astype(np.float32, copy=False)


def align_labels(Y: Any, labels: LabelSpace | Sequence[str] | None, target: LabelSpace, *,
                 unknown: str = "error", what: str = "the data") -> tuple[sp.csr_matrix, list[str]]:
    """``Y`` (columns named by ``labels``) as columns of ``target``, matched by name.

    Returns ``(Y_target, unknown_names)`` (see :meth:`LabelSpace.reindex`): ``target``'s
    labels that the data lacks have no positives; the data's labels that ``target`` lacks are
    left out of ``Y_target`` and named in ``unknown_names``. ``labels=None``: Y's columns
    are ``target``'s labels in order (their count is checked). ``unknown``: ``"error"``
    raises :class:`UnknownLabelError` naming a few of them, ``"warn"`` warns with their
    count (``what`` ends the message: what happens to them) and raises when none of the
    data's labels is known, ``"ignore"`` says nothing.
    """
    if unknown not in ("error", "warn", "ignore"):
        raise ValueError(f"unknown must be 'error', 'warn' or 'ignore', got {unknown!r}")
    if labels is None:
        return as_label_matrix(Y, len(target)), []
    if not isinstance(labels, LabelSpace):
        labels = LabelSpace(labels)
    Yt, missing = labels.reindex(as_label_matrix(Y, len(labels)), target)
    if missing and len(missing) == len(labels) and unknown == "warn":
        raise UnknownLabelError(f"none of the data's {len(labels)} labels is among the model's "
                                f"{len(target)} ({few_names(missing)}): is it the right file?")
    if missing and unknown == "error":
        raise UnknownLabelError(f"{len(missing)} of the data's {len(labels)} labels are not "
                                f"among the {len(target)} known labels: {few_names(missing)}")
    if missing and unknown == "warn":
        import warnings

        warnings.warn(f"{len(missing)} of the data's {len(labels)} labels are not among the "
                      f"model's {len(target)} ({few_names(missing)}): {what}", stacklevel=2)
    return Yt, missing


class Dataset:
    """A multi-label dataset.

    Parameters
    ----------
    X: CSR float32 (n_samples, n_features), dense float32 (n_samples, n_features) or a list of str.
    Y: label matrix (n_samples, n_labels); see :func:`as_label_matrix` for accepted forms.
    labels: the :class:`LabelSpace` (or a list of names); defaults to names '0'..'n_labels-1'.
    groups: optional (n_samples,) group keys for leak-free splits.
    ids: optional (n_samples,) item ids (strings or ints).
    meta: optional JSON-able facts about where the data came from (source path, format,
        choices a reader made such as the detected feature index base); ``stats`` reports it.
    """

    def __init__(
        self,
        X: Any,
        Y: Any,
        labels: LabelSpace | Sequence[str] | None = None,
        *,
        groups: Sequence[Any] | np.ndarray | None = None,
        ids: Sequence[Any] | np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        Y = as_label_matrix(Y, None if labels is None else len(labels))
        if labels is None:
            labels = LabelSpace.range(Y.shape[1])
        X = _as_features(X)
        n = Y.shape[0]
        n_x = len(X) if isinstance(X, list) else X.shape[0]
        if n_x != n:
            raise DataFormatError(f"X has {n_x} rows but Y has {n}")
        self.X = X
        self.Y = Y
        self.labels = labels
        self.groups = None if groups is None else _as_column(groups, n, "groups")
        self.ids = None if ids is None else _as_column(ids, n, "ids")
        self.meta: dict[str, Any] = dict(meta or {})

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return self.Y.shape[0]

    def __repr__(self) -> str:
        return (
            f"Dataset(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"n_labels={self.n_labels}, X={self.x_kind})"
        )

    @property
    def n_samples(self) -> int:
        return self.Y.shape[0]

    @property
    def n_labels(self) -> int:
        return self.Y.shape[1]

    @property
    def n_features(self) -> int:
        return 0 if isinstance(self.X, list) else int(self.X.shape[1])

    @property
    def x_kind(self) -> str:
        """'sparse', 'dense' or 'text'."""
        if isinstance(self.X, list):
            return "text"
        return "sparse" if sp.issparse(self.X) else "dense"

    def subset(self, rows: Any) -> Dataset:
        """The rows ``rows`` (indices or boolean mask) as a new Dataset, sharing the label space."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        X = [self.X[i] for i in rows] if isinstance(self.X, list) else self.X[rows]
        return Dataset(
            X,
            self.Y[rows],
            self.labels,
            groups=None if self.groups is None else self.groups[rows],
            ids=None if self.ids is None else self.ids[rows],
            meta=self.meta,
        )

    def align_labels(self, target: LabelSpace, *, unknown: str = "error",
                     what: str = "the data") -> tuple[sp.csr_matrix, list[str]]:
        """``(Y, unknown_names)``: Y re-indexed to ``target`` by name (:func:`align_labels`)."""
        return align_labels(self.Y, self.labels, target, unknown=unknown, what=what)

    def label_names(self, row: int) -> list[str]:
        """Names of the positive labels of one row."""
        s, e = self.Y.indptr[row], self.Y.indptr[row + 1]
        return self.labels.names_of(self.Y.indices[s:e])

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, Any]:
        """Summary statistics, JSON-able.

        label_cardinality is the mean number of labels per row; label_density is that over
        n_labels; label_frequency_quantiles maps a quantile to the positive count of labels at
        that quantile (over all labels, zero-positive labels included).
        """
        n, q = self.Y.shape
        per_row = np.diff(self.Y.indptr)
        per_label = np.bincount(self.Y.indices, minlength=q) if q else np.zeros(0, np.int64)
        card = float(per_row.mean()) if n else 0.0
        out: dict[str, Any] = {
            "n_samples": int(n),
            "n_features": int(self.n_features),
            "n_labels": int(q),
            "x_kind": self.x_kind,
            "label_cardinality": card,
            "label_density": card / q if q else 0.0,
            "n_positives": int(self.Y.nnz),
            "rows_without_labels": int(np.count_nonzero(per_row == 0)),
            "labels_without_positives": int(np.count_nonzero(per_label == 0)),
            "distinct_labelsets": _count_distinct_rows(self.Y),
            "label_frequency_quantiles": {
                f"{p:g}": float(np.quantile(per_label, p)) if q else 0.0 for p in QUANTILES
            },
        }
        if self.x_kind == "sparse":
            out["feature_density"] = (
                float(self.X.nnz) / (n * self.n_features) if n and self.n_features else 0.0
            )
        if self.groups is not None:
            out["n_groups"] = int(len(np.unique(self.groups)))
        if self.labels.is_hierarchical:
            out["hierarchical"] = True
            out["n_roots"] = len(self.labels.roots())
        if self.meta:
            out["meta"] = self.meta
        return out


def _count_distinct_rows(Y: sp.csr_matrix) -> int:
    seen = set()
    ind, ptr = Y.indices, Y.indptr
    for i in range(Y.shape[0]):
        seen.add(ind[ptr[i] : ptr[i + 1]].tobytes())
    return len(seen)


def _as_features(X: Any) -> Any:
    if isinstance(X, list | tuple) and (len(X) == 0 or isinstance(X[0], str)):
        X = list(X)
        for i, x in enumerate(X):
            if not isinstance(x, str):
                raise DataFormatError(f"X[{i}]: expected a text, got {type(x).__name__}")
        return X
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if X.dtype != np.float32:
            X = X.astype(np.float32)
        return X
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise DataFormatError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise DataFormatError(f"X must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_column(values: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataFormatError(f"{what} must have one entry per row ({n}), got shape {arr.shape}")
    return arr
