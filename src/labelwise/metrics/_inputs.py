"""Input normalisation shared by every metric.

What a metric receives
----------------------
``Y_true`` (n_samples, n_labels)
    0/1 truth: a dense array, any scipy sparse matrix, or a list of label-id lists. It is
    turned into CSR with sorted indices (int32 or int64, never smaller). Values other than 0
    and 1 are refused.

Scores ``S`` (rank-based and threshold-free metrics)
    - **dense**: an ``(n_samples, n_labels)`` float array; every label is scored.
    - **top-k**: a scipy sparse matrix (CSR, or anything turned into CSR) holding the
      retrieved labels of each row. A *stored* entry is retrieved, even when its value is
      0; an unstored entry is *not retrieved* and counts as score ``-inf`` (below every
      stored score, tied with the other unretrieved labels of its row). Stored ``-inf`` and
      duplicate entries are refused. NaN is refused in both kinds.

Predicted label sets (set-based metrics)
    Wrapped in :class:`LabelSets` so that a 0/1 matrix of sets is never mistaken for scores.
    Set-based metrics also take scores together with ``threshold=`` (a label is predicted
    when its score >= threshold; for top-k scores only retrieved labels can pass) or ``k=``
    (the top-k labels under the tie rule, see :mod:`labelwise.metrics.ranking`). Scores with
    neither are refused; rank-based metrics refuse ``LabelSets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..checks import positive_int
from ..dataset import as_label_matrix
from ..errors import DataFormatError, LabelwiseError
from . import _kernels

__all__ = ["LabelSets", "Scores", "as_truth", "as_scores", "as_sets", "ranked_labels",
           "sets_from_ranked", "truth_keys",
           "lookup", "trusted_sets", "Prepared", "prepare", "DEFAULT_CHUNK"]

DEFAULT_CHUNK = 65536


class LabelSets:
    """Predicted label sets, (n_samples, n_labels), as a 0/1 matrix.

    Parameters
    ----------
    Y:
        A dense 0/1 array, a scipy sparse 0/1 matrix or a list of label-id lists.
    n_labels:
        Number of labels (needed for a list of lists whose highest label is not predicted).

    Use :meth:`from_threshold` or :meth:`from_top_k` to turn scores into sets.
    """

    __slots__ = ("Y",)

    def __init__(self, Y: Any, *, n_labels: int | None = None) -> None:
        if isinstance(Y, LabelSets):
            self.Y = Y.Y
            return
        try:
            self.Y = as_label_matrix(Y, n_labels)
        except LabelwiseError as exc:
            raise DataFormatError(str(exc), field="predicted label sets") from None

    @property
    def shape(self) -> tuple[int, int]:
        return self.Y.shape

    def __repr__(self) -> str:
        n, L = self.Y.shape
        return f"LabelSets(n_samples={n}, n_labels={L}, n_predicted={self.Y.nnz})"

    @classmethod
    def from_threshold(cls, S: Any, threshold: float) -> LabelSets:
        """Labels whose score is >= ``threshold`` (top-k scores: retrieved labels only)."""
        s = as_scores(S)
        t = float(threshold)
        if np.isnan(t):
            raise DataFormatError("threshold must be a number, got NaN", field="threshold")
        if s.kind == "dense":
            M = sp.csr_matrix(s.dense >= t)
        else:
            keep = s.csr.data >= t
            rows = np.repeat(np.arange(s.n_samples, dtype=np.int64), np.diff(s.csr.indptr))
            M = sp.csr_matrix(
                (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], s.csr.indices[keep])),
                shape=s.csr.shape,
            )
        return cls(M)

    @classmethod
    def from_top_k(cls, S: Any, k: int) -> LabelSets:
        """The ``k`` best labels of each row (fewer where fewer are retrieved)."""
        s = as_scores(S)
        return cls(sets_from_ranked(ranked_labels(s, _check_k(k)), s.n_labels))


def trusted_sets(M: sp.csr_matrix) -> LabelSets:
    """Wrap an already validated CSR 0/1 matrix (from :func:`as_truth`) without copying."""
    out = LabelSets.__new__(LabelSets)
    out.Y = M
    return out


@dataclass(frozen=True)
class Scores:
    """Normalised scores: ``kind`` is "dense" (``dense`` set) or "topk" (``csr`` set)."""

    kind: str
    n_samples: int
    n_labels: int
    dense: np.ndarray | None = None
    csr: sp.csr_matrix | None = None


def _check_k(k: Any) -> int:
    return positive_int(k, "k")


def as_truth(Y_true: Any) -> sp.csr_matrix:
    """Y_true as CSR float32 0/1 with sorted indices (see the module docstring)."""
    if isinstance(Y_true, LabelSets):
        return Y_true.Y
    try:
        return as_label_matrix(Y_true)
    except LabelwiseError as exc:
        raise DataFormatError(str(exc), field="Y_true") from None


def as_scores(S: Any, shape: tuple[int, int] | None = None) -> Scores:
    """Scores as :class:`Scores`; refuses LabelSets, NaN, stored -inf and duplicates."""
    if isinstance(S, Scores):
        out = S
    elif isinstance(S, LabelSets):
        raise DataFormatError(
            "this metric ranks labels and needs scores (dense array or top-k CSR), "
            "got LabelSets; use a set-based metric or pass the scores", field="scores")
    elif sp.issparse(S):
        if S.format == "coo" and S.nnz:
            keys = np.asarray(S.row, np.int64) * S.shape[1] + np.asarray(S.col, np.int64)
            if np.unique(keys).size != keys.size:
                raise DataFormatError("a (row, label) entry is stored twice", field="scores")
        M = sp.csr_matrix(S)
        if not np.issubdtype(M.dtype, np.number) or np.issubdtype(M.dtype, np.complexfloating):
            raise DataFormatError(f"scores must be real numbers, got dtype {M.dtype}",
                                  field="scores")
        if M.dtype.kind != "f":
            M = M.astype(np.float64)
        if not M.has_sorted_indices:
            M = M.sorted_indices()
        if M.nnz:
            rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
            dup = (np.diff(M.indices) == 0) & (np.diff(rows) == 0)
            if dup.any():
                r = int(rows[1:][dup][0])
                raise DataFormatError(f"row {r} stores a label twice", field="scores")
            bad = np.isnan(M.data) | (M.data == -np.inf)
            if bad.any():
                r = int(rows[np.flatnonzero(bad)[0]])
                raise DataFormatError(
                    f"row {r}: stored score is NaN or -inf (unstored means not retrieved)",
                    field="scores")
        out = Scores("topk", M.shape[0], M.shape[1], csr=M)
    else:
        A = np.asarray(S)
        if A.ndim != 2:
            raise DataFormatError(f"scores must be 2-D (n_samples, n_labels), got shape "
                                  f"{A.shape}", field="scores")
        if A.dtype.kind not in "fiub":
            raise DataFormatError(f"scores must be real numbers, got dtype {A.dtype}",
                                  field="scores")
        if A.dtype.kind != "f":
            A = A.astype(np.float64)
        A = np.ascontiguousarray(A)
        if np.isnan(A).any():
            r = int(np.flatnonzero(np.isnan(A).any(axis=1))[0])
            raise DataFormatError(f"row {r}: score is NaN", field="scores")
        out = Scores("dense", A.shape[0], A.shape[1], dense=A)
    if shape is not None and (out.n_samples, out.n_labels) != tuple(shape):
        raise DataFormatError(
            f"scores have shape {(out.n_samples, out.n_labels)}, Y_true has {tuple(shape)}",
            field="scores")
    return out


def as_sets(P: Any, shape: tuple[int, int], *, threshold: float | None = None,
            k: int | None = None) -> sp.csr_matrix:
    """Predicted sets as CSR 0/1: from LabelSets, or from scores with threshold= or k=."""
    if isinstance(P, LabelSets):
        if threshold is not None or k is not None:
            raise DataFormatError("threshold= and k= apply to scores, not to LabelSets",
                                  field="predicted")
        M = P.Y
    elif threshold is not None and k is not None:
        raise DataFormatError("give threshold= or k=, not both", field="predicted")
    elif threshold is not None:
        M = LabelSets.from_threshold(as_scores(P, shape), threshold).Y
    elif k is not None:
        M = LabelSets.from_top_k(as_scores(P, shape), k).Y
    else:
        raise DataFormatError(
            "set-based metric: wrap predicted sets as LabelSets(Y_pred), or pass scores "
            "with threshold= or k=", field="predicted")
    if M.shape != tuple(shape):
        raise DataFormatError(f"predicted sets have shape {M.shape}, Y_true has "
                              f"{tuple(shape)}", field="predicted")
    return M


def ranked_labels(s: Scores, k: int, *, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """(n_samples, k) int64 label ids by score descending, ties by smaller id, -1 padded."""
    k = _check_k(k)
    if s.kind == "topk":
        P = _kernels.csr_topk(s.csr.indptr, s.csr.data, k)
        return _take(s.csr.indices, P, -1).astype(np.int64)
    out = np.empty((s.n_samples, k), dtype=np.int64)
    for a in range(0, s.n_samples, chunk_size):
        out[a:a + chunk_size] = _kernels.dense_topk(s.dense[a:a + chunk_size], k)
    return out


def _take(values: np.ndarray, P: np.ndarray, fill: Any) -> np.ndarray:
    """values[P] where P >= 0, else ``fill`` (P: positions, -1 for padding)."""
    if values.size == 0:
        return np.full(P.shape, fill, dtype=np.result_type(values.dtype, np.asarray(fill)))
    return np.where(P >= 0, values[np.maximum(P, 0)], fill)


def sets_from_ranked(R: np.ndarray, n_labels: int) -> sp.csr_matrix:
    """CSR 0/1 sets from ranked label ids (n_samples, k), -1 padding left out."""
    ok = R >= 0
    rows = np.broadcast_to(np.arange(R.shape[0], dtype=np.int64)[:, None], R.shape)
    M = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], R[ok])),
                      shape=(R.shape[0], n_labels))
    M.sort_indices()
    return M


def truth_keys(Y: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys row * n_labels + label of the positives of Y (sorted indices)."""
    rows = np.repeat(np.arange(Y.shape[0], dtype=np.int64), np.diff(Y.indptr))
    return rows * np.int64(Y.shape[1]) + Y.indices.astype(np.int64)


def lookup(keys: np.ndarray, n_labels: int, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean array: is (rows, labels) a positive? label -1 (padding) gives False."""
    q = rows.astype(np.int64) * np.int64(n_labels) + labels.astype(np.int64)
    if keys.size == 0:
        return np.zeros(q.shape, dtype=bool)
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, keys.size - 1)
    return (keys[pos] == q) & (labels >= 0)


class Prepared:
    """Y_true and scores normalised once, with the derived arrays that several metrics
    share computed lazily and kept (so :func:`~labelwise.metrics.evaluate` sorts once)."""

    def __init__(self, Y: sp.csr_matrix, s: Scores, chunk_size: int = DEFAULT_CHUNK) -> None:
        self.Y = Y
        self.s = s
        self.chunk_size = chunk_size
        self._ranked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.Y.shape

    @cached_property
    def keys(self) -> np.ndarray:
        return truth_keys(self.Y)

    @cached_property
    def stored_pos(self) -> np.ndarray:
        """Top-k scores: is each stored entry's label true? (aligned with csr.data)"""
        M, Y = self.s.csr, self.Y
        return _kernels.csr_membership(M.indptr, M.indices, Y.indptr, Y.indices)

    @cached_property
    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """All scored cells as (scores, is_true) flat arrays (dense: n*L cells)."""
        if self.s.kind == "topk":
            return self.s.csr.data, self.stored_pos
        return self.s.dense.ravel(), self.Y.toarray().astype(bool).ravel()

    @cached_property
    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct flat scores, descending, with how many cells and how many true cells
        hold each: (values, n_all, n_pos). Two plain sorts and a linear merge."""
        scores, pos = self.flat
        return _kernels.merge_runs(np.sort(scores), np.sort(scores[pos]))

    @cached_property
    def row_max(self) -> np.ndarray:
        s = self.s
        if s.kind == "dense":
            if s.n_labels == 0:
                return np.full(s.n_samples, -np.inf)
            return s.dense.max(axis=1).astype(np.float64)
        M = s.csr
        out = np.full(s.n_samples, -np.inf)
        nonempty = np.diff(M.indptr) > 0
        if M.nnz:
            out[nonempty] = np.maximum.reduceat(M.data, M.indptr[:-1][nonempty])
        return out

    def ranked(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, hits, scores), each (n_samples, k): the top-k labels (tie rule), whether
        each is true, and its score (-1 / False / -inf where fewer than k are ranked)."""
        k = _check_k(k)
        if self._ranked is None or self._ranked[0].shape[1] < k:
            s = self.s
            if s.kind == "topk":
                P = _kernels.csr_topk(s.csr.indptr, s.csr.data, k)
                labels = _take(s.csr.indices, P, -1).astype(np.int64)
                hits = _take(self.stored_pos, P, False)
                scores = _take(s.csr.data.astype(np.float64), P, -np.inf)
            else:
                labels = ranked_labels(s, k, chunk_size=self.chunk_size)
                rows = np.broadcast_to(np.arange(s.n_samples, dtype=np.int64)[:, None],
                                       labels.shape)
                hits = lookup(self.keys, s.n_labels, rows, labels)
                scores = np.where(labels >= 0, np.take_along_axis(
                    s.dense, np.maximum(labels, 0), axis=1), -np.inf)
            self._ranked = (labels, hits, scores.astype(np.float64))
        labels, hits, scores = self._ranked
        return labels[:, :k], hits[:, :k], scores[:, :k]


def prepare(Y_true: Any, S: Any, *, chunk_size: int = DEFAULT_CHUNK) -> Prepared:
    """Normalise ``Y_true`` and scores ``S`` together (shapes must agree)."""
    if isinstance(Y_true, Prepared):
        return Y_true
    Y = as_truth(Y_true)
    return Prepared(Y, as_scores(S, Y.shape), chunk_size)
