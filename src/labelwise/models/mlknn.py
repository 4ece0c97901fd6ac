"""``MLkNN``: multi-label k-nearest neighbours (Zhang & Zhou 2007, Pattern Recognition 40).

For a row x with neighbours N(x) (its ``k`` most similar training rows) let ``C_j(x)`` be the
number of neighbours carrying label j. The model estimates, with smoothing ``s``:

- the prior ``P(H_j) = (s + #rows with j) / (2 s + n)``;
- the likelihoods ``P(C_j = c | H_j)`` and ``P(C_j = c | not H_j)`` for c = 0..k, from the
  training rows' own neighbour counts (each training row's neighbours are the other training
  rows: leave-one-out): ``(s + #rows with j and C_j = c) / (s (k + 1) + #rows with j)``, and
  the same over the rows without j;

and scores label j by its posterior ``P(H_j | C_j(x))`` (Bayes' rule), which ``predict``
thresholds at 0.5 (the paper's arg max of the two posteriors).

Neighbours are exact: cosine similarity (rows scaled to unit length, similarities by sparse
products; with ``normalize="auto"``, the default, dense features are first standardised per
column as in :mod:`labelwise.models.chains`, ``"standard"`` always, ``"l2"`` never) or the
raw inner product (``normalize=None``),
computed ``block_rows`` query rows at a time against all training rows, on ``n_threads``
threads: when both sides store at least a quarter of their entries (the MULAN audio/image
sets, and every standardised matrix) as dense float64 products (BLAS), else as sparse
products; the ``k`` best of a block by one ``np.partition`` per row. Ties are broken by the lower training row index, so results never depend on the
blocking or the thread count. The training rows are part of the saved model (CSR arrays).
Approximate neighbours are not implemented: this family is for small and medium data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._learners import check_normalize, check_scaling, fit_scaling, scale_rows
from .base import MultiLabelModel
from .chains import check_positive_int, check_threads
from .ovr import check_number
from .topk import map_threads, resolve_n_threads, topk_dense

__all__ = ["MLkNN", "nearest_neighbours"]


#: dense products when a matrix stores at least this share of its entries and has at most
#: _DENSE_MAX_ENTRIES of them (the float64 copy of the training rows)
_DENSE_SHARE = 0.25
_DENSE_MAX_ENTRIES = 2**27


def _is_dense(M: sp.csr_matrix) -> bool:
    entries = M.shape[0] * M.shape[1]
    return 0 < entries <= _DENSE_MAX_ENTRIES and M.nnz >= _DENSE_SHARE * entries


def nearest_neighbours(Q: sp.csr_matrix, T: sp.csr_matrix, k: int, *, exclude_offset: int | None,
                       block_rows: int, n_threads: int) -> sp.csr_matrix:
    """The k most similar rows of T (by inner product) for each row of Q, as a 0/1 CSR
    (n_queries, n_train) with exactly k entries per row; ties go to the lower index.
    ``exclude_offset``: query row i is training row exclude_offset + i and may not be its
    own neighbour (None: no exclusion)."""
    n = T.shape[0]
    dense = _is_dense(T) and _is_dense(Q)
    if dense:
        TT = np.ascontiguousarray(T.toarray(), dtype=np.float64).T
    else:
        TT = sp.csr_matrix(T.T)

    def block(a: int) -> sp.csr_matrix:
        if dense:
            S = np.asarray(Q[a:a + block_rows].toarray(), dtype=np.float64) @ TT
        else:
            S = np.asarray((Q[a:a + block_rows] @ TT).toarray(), dtype=np.float64)
        b = S.shape[0]
        if exclude_offset is not None:
            S[np.arange(b), exclude_offset + a + np.arange(b)] = -np.inf
        best = np.argpartition(S, n - k, axis=1)[:, n - k:]  # the k largest, ties unordered
        kth = np.take_along_axis(S, best, axis=1).min(axis=1)
        # rows with more than k entries >= their k-th value: the tied entries go by the lower
        # index (rare: duplicate rows, all-zero rows)
        for r in np.flatnonzero((S >= kth[:, None]).sum(axis=1) > k):
            above = np.flatnonzero(S[r] > kth[r])
            tied = np.flatnonzero(S[r] == kth[r])[:k - above.size]
            best[r] = np.concatenate([above, tied])
        best.sort(axis=1)
        return sp.csr_matrix((np.ones(best.size, np.float32), best.ravel(),
                              np.arange(0, best.size + 1, k)), shape=(b, n))

    parts = map_threads(block, range(0, Q.shape[0], block_rows), n_threads)
    if not parts:
        return sp.csr_matrix((0, n), dtype=np.float32)
    return sp.csr_matrix(sp.vstack(parts, format="csr"))


class MLkNN(MultiLabelModel):
    """Multi-label k-nearest neighbours (see the module docstring).

    Parameters
    ----------
    k: neighbours (>= 1, fewer than the training rows).
    s: smoothing of the prior and likelihood estimates (> 0; the paper's 1).
    normalize: "auto", "standard", "l2" (cosine similarity) or None (inner product).
    block_rows: query rows per similarity block.
    n_threads: threads over blocks (None = all CPUs).
    """

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "train_data": (('<f4',), 1),
        "train_indices": (('<i8',), 1),
        "train_indptr": (('<i8',), 1),
        "labels_indices": (('<i8',), 1),
        "labels_indptr": (('<i8',), 1),
        "prior": (('<f8',), 1),
        "cond_true": (('<f8',), 2),
        "cond_false": (('<f8',), 2),
        "col_mean": (('<f8',), 1),
        "col_scale": (('<f8',), 1),
    }

    _persist_name = "MLkNN"
    default_threshold = 0.5

    def __init__(self, *, k: int = 10, s: float = 1.0, normalize: str | None = "auto",
                 block_rows: int = 512, n_threads: int | None = None) -> None:
        self.k = k
        self.s = s
        self.normalize = normalize
        self.block_rows = block_rows
        self.n_threads = n_threads

    def _validate_params(self) -> None:
        check_positive_int(self, "k")
        check_positive_int(self, "block_rows")
        check_number(self, "s", 0.0, strict=True)
        check_normalize(self.normalize)
        check_threads(self.n_threads)

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return scale_rows(X, self.col_mean_, self.col_scale_, self.normalize)

    def _counts(self, X: sp.csr_matrix, exclude: bool) -> np.ndarray:
        N = nearest_neighbours(X, self.train_X_, self.k, exclude_offset=0 if exclude else None,
                               block_rows=self.block_rows,
                               n_threads=resolve_n_threads(self.n_threads))
        return np.rint(np.asarray((N @ self.train_Y_).toarray())).astype(np.int64)

    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        n, L = Y.shape
        if self.k >= n:
            raise ValueError(f"k={self.k} neighbours need more than {self.k} training rows, "
                             f"got {n}")
        self.col_mean_, self.col_scale_ = fit_scaling(X, self.normalize)
        self.train_X_ = sp.csr_matrix(self._prepare_X(X), dtype=np.float32)
        Yb = sp.csr_matrix(Y > 0, dtype=np.float32)
        self.train_Y_ = Yb
        K, s = self.k, float(self.s)
        C = self._counts(self.train_X_, exclude=True)  # (n, L), leave-one-out
        Yd = Yb.toarray() > 0
        pos = Yd.sum(axis=0)
        self.prior_ = (s + pos) / (2 * s + n)
        with_j = np.zeros((L, K + 1))
        without_j = np.zeros((L, K + 1))
        cols = np.broadcast_to(np.arange(L), C.shape)
        np.add.at(with_j, (cols[Yd], C[Yd]), 1.0)
        np.add.at(without_j, (cols[~Yd], C[~Yd]), 1.0)
        self.cond_true_ = (s + with_j) / (s * (K + 1) + with_j.sum(axis=1, keepdims=True))
        self.cond_false_ = (s + without_j) / (s * (K + 1) + without_j.sum(axis=1, keepdims=True))

    def posteriors(self, X: Any) -> np.ndarray:
        """P(label j | neighbour counts) for every label: dense float64 (n_samples, n_labels)."""
        from .base import as_feature_matrix

        self._check_fitted()
        return self._posteriors(self._prepare_X(
            as_feature_matrix(X, n_features=self.n_features_in_)))

    def _posteriors(self, X: sp.csr_matrix) -> np.ndarray:
        C = self._counts(X, exclude=False)
        L = C.shape[1]
        cols = np.broadcast_to(np.arange(L), C.shape)
        a = self.prior_[None, :] * self.cond_true_[cols, C]
        b = (1 - self.prior_)[None, :] * self.cond_false_[cols, C]
        return a / (a + b)

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        return topk_dense(self._posteriors(self._prepare_X(X)).astype(np.float32), k)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        T, Y = self.train_X_, self.train_Y_
        return {"train_data": np.asarray(T.data, np.float32),
                "train_indices": np.asarray(T.indices, np.int64),
                "train_indptr": np.asarray(T.indptr, np.int64),
                "labels_indices": np.asarray(Y.indices, np.int64),
                "labels_indptr": np.asarray(Y.indptr, np.int64),
                "prior": np.asarray(self.prior_, np.float64),
                "cond_true": np.asarray(self.cond_true_, np.float64),
                "cond_false": np.asarray(self.cond_false_, np.float64),
                "col_mean": self.col_mean_, "col_scale": self.col_scale_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        need = ("train_data", "train_indices", "train_indptr", "labels_indices",
                "labels_indptr", "prior", "cond_true", "cond_false")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"MLkNN model lacks arrays: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k]) for k in need}
        L, d, K = len(self.labels_), int(self.n_features_in_), int(self.k)
        n = a["train_indptr"].size - 1

        def csr_ok(indptr, indices, width):
            return (indptr.size >= 1 and int(indptr[0]) == 0 and int(indptr[-1]) == indices.size
                    and bool(np.all(np.diff(indptr) >= 0))
                    and (indices.size == 0 or (int(indices.min()) >= 0
                                               and int(indices.max()) < width)))

        ok = (n > K and a["labels_indptr"].shape == (n + 1,)
              and a["train_data"].shape == a["train_indices"].shape
              and csr_ok(a["train_indptr"], a["train_indices"], d)
              and csr_ok(a["labels_indptr"], a["labels_indices"], L)
              and a["prior"].shape == (L,) and a["cond_true"].shape == (L, K + 1)
              and a["cond_false"].shape == (L, K + 1))
        if not ok:
            raise DataFormatError(f"MLkNN arrays do not fit {d} features x {L} labels, k={K}",
                                  field="arrays")
        self.train_X_ = sp.csr_matrix((a["train_data"], a["train_indices"], a["train_indptr"]),
                                      shape=(n, d))
        self.train_Y_ = sp.csr_matrix((np.ones(a["labels_indices"].size, np.float32),
                                       a["labels_indices"], a["labels_indptr"]), shape=(n, L))
        self.prior_ = a["prior"]
        self.cond_true_ = a["cond_true"]
        self.cond_false_ = a["cond_false"]
        self.col_mean_, self.col_scale_ = check_scaling(arrays, d, "MLkNN")
