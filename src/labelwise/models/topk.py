"""Top-k score matrices: the output format of every model's ``decision_function``.

A *top-k score matrix* is a CSR ``S`` (n_samples, n_labels) holding exactly
``min(k, n_labels)`` stored entries in every row: the row's ``k`` highest scores. Within a
row the column indices are sorted ascending (the CSR convention), so the rank of an entry is
given by its value, not its position. Ties are broken by the lower label id: of two labels
with equal scores the one with the smaller id is kept. Stored entries may hold the value 0.0
(they are still part of the top k). Scores are float32, indices int32 (int64 past 2**31
labels), indptr int64.

Helpers
-------
- :func:`topk_dense` — the top k of each row of a dense (n_samples, n_labels) array.
- :func:`topk_csr` — the top k of each row of a CSR matrix whose missing entries all count
  as the score ``missing`` (0.0 by default, the sparse-matrix convention; a label tree
  passes the score it gives to unvisited labels). Only the ``k`` lowest missing ids of a
  row can enter its top k, so the cost is ``O(nnz_row + k)`` per row, not ``O(n_labels)``.
- :func:`linear_topk` — ``X @ W + intercept`` followed by the top k, row by row in numba
  without materialising the (n_samples, n_labels) product; used by linear models.

The numba kernels (``_select``, ``_*_kernel``) are checked against a plain-Python reference
in ``tests/test_models_ovr.py``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from .._csr import trusted_csr
from .._numba import njit
from ..checks import positive_int

__all__ = ["topk_dense", "topk_csr", "linear_topk", "resolve_n_threads", "map_threads",
           "map_ranges"]


def resolve_n_threads(n_threads: int | None) -> int:
    """``n_threads`` or, when None, the CPUs this process may use."""
    if n_threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    return int(n_threads)


def map_threads(fn, items, n_threads: int) -> list:
    """``[fn(item) for item in items]``, in order, on up to ``n_threads`` threads (worth it
    when fn is a numba kernel that releases the GIL); one thread or one item: no pool."""
    items = list(items)
    if n_threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(n_threads, len(items))) as pool:
        return list(pool.map(fn, items))


def map_ranges(fn, bounds, n_threads: int) -> None:
    """``fn(start, end)`` for every non-empty range between consecutive ``bounds``, on up to
    ``n_threads`` threads (fn: a nogil kernel writing disjoint outputs)."""
    map_threads(lambda r: fn(*r), [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])
                                   if b > a], n_threads)


@njit(nogil=True, cache=True, inline="always")
def _worse(s_a, i_a, s_b, i_b):
    """True when (s_a, i_a) ranks below (s_b, i_b): lower score, or equal score and higher id."""
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@njit(nogil=True, cache=True)
def _select(cand_s, cand_i, m, k, heap_s, heap_i, out_i, out_s, pos):
    """Keep the best ``k`` of the first ``m`` candidates; write them at ``out[pos:pos+k]``
    sorted by label id. ``m >= k`` is required."""
    size = 0
    for c in range(m):
        s = cand_s[c]
        i = cand_i[c]
        if size < k:
            # sift up
            j = size
            size += 1
            while j > 0:
                parent = (j - 1) >> 1
                if _worse(s, i, heap_s[parent], heap_i[parent]):
                    heap_s[j] = heap_s[parent]
                    heap_i[j] = heap_i[parent]
                    j = parent
                else:
                    break
            heap_s[j] = s
            heap_i[j] = i
        elif _worse(heap_s[0], heap_i[0], s, i):
            # replace root, sift down
            j = 0
            while True:
                left = 2 * j + 1
                if left >= k:
                    break
                child = left
                right = left + 1
                if right < k and _worse(heap_s[right], heap_i[right], heap_s[left], heap_i[left]):
                    child = right
                if _worse(heap_s[child], heap_i[child], s, i):
                    heap_s[j] = heap_s[child]
                    heap_i[j] = heap_i[child]
                    j = child
                else:
                    break
            heap_s[j] = s
            heap_i[j] = i
    order = np.argsort(heap_i[:k])
    for r in range(k):
        out_i[pos + r] = heap_i[order[r]]
        out_s[pos + r] = heap_s[order[r]]


@njit(nogil=True, cache=True)
def _dense_kernel(S, k, row_start, row_end, out_i, out_s):
    n_labels = S.shape[1]
    heap_s = np.empty(k, np.float64)
    heap_i = np.empty(k, np.int64)
    cand_i = np.arange(n_labels).astype(np.int64)
    cand_s = np.empty(n_labels, np.float64)
    for r in range(row_start, row_end):
        for j in range(n_labels):
            cand_s[j] = S[r, j]
        _select(cand_s, cand_i, n_labels, k, heap_s, heap_i, out_i, out_s, r * k)


@njit(nogil=True, cache=True)
def _csr_kernel(indptr, indices, data, n_labels, k, missing, row_start, row_end, out_i, out_s):
    heap_s = np.empty(k, np.float64)
    heap_i = np.empty(k, np.int64)
    max_nnz = 0
    for r in range(row_start, row_end):
        max_nnz = max(max_nnz, indptr[r + 1] - indptr[r])
    cand_s = np.empty(max_nnz + k, np.float64)
    cand_i = np.empty(max_nnz + k, np.int64)
    for r in range(row_start, row_end):
        a = indptr[r]
        b = indptr[r + 1]
        m = 0
        for p in range(a, b):
            cand_i[m] = indices[p]
            cand_s[m] = data[p]
            m += 1
        # the lowest ids not stored (indices sorted): enough to fill k
        want = k
        nxt = 0
        p = a
        while want > 0 and nxt < n_labels:
            if p < b and indices[p] == nxt:
                p += 1
            else:
                cand_i[m] = nxt
                cand_s[m] = missing
                m += 1
                want -= 1
            nxt += 1
        _select(cand_s, cand_i, m, k, heap_s, heap_i, out_i, out_s, r * k)


@njit(nogil=True, cache=True)
def _linear_kernel(x_indptr, x_indices, x_data, w_indptr, w_indices, w_data, intercept, k,
                   row_start, row_end, out_i, out_s):
    n_labels = intercept.shape[0]
    heap_s = np.empty(k, np.float64)
    heap_i = np.empty(k, np.int64)
    cand_i = np.arange(n_labels).astype(np.int64)
    acc = np.empty(n_labels, np.float64)
    for r in range(row_start, row_end):
        for j in range(n_labels):
            acc[j] = intercept[j]
        for p in range(x_indptr[r], x_indptr[r + 1]):
            f = x_indices[p]
            v = np.float64(x_data[p])
            for q in range(w_indptr[f], w_indptr[f + 1]):
                acc[w_indices[q]] += v * w_data[q]
        _select(acc, cand_i, n_labels, k, heap_s, heap_i, out_i, out_s, r * k)


def _run_rows(kernel, n_rows: int, k: int, n_labels: int, args: tuple, n_threads: int | None):
    """Run ``kernel(*args, k?, start, end, out_i, out_s)`` over row chunks in threads."""
    out_i = np.empty(n_rows * k, np.int64)
    out_s = np.empty(n_rows * k, np.float64)
    if k == 0:  # no labels at all
        return sp.csr_matrix((n_rows, n_labels), dtype=np.float32)
    threads = resolve_n_threads(n_threads)
    chunk = max(64, -(-n_rows // (4 * threads))) if n_rows else 1
    bounds = [*range(0, n_rows, chunk), n_rows]
    map_ranges(lambda a, b: kernel(*args, a, b, out_i, out_s), bounds, threads)
    index_dtype = np.int32 if n_labels < 2**31 else np.int64
    indptr = np.arange(0, n_rows * k + 1, k, dtype=np.int64)
    return trusted_csr(out_s.astype(np.float32), out_i.astype(index_dtype), indptr,
                       (n_rows, n_labels), sorted_indices=True)


def topk_dense(S: np.ndarray, k: int, *, n_threads: int | None = 1) -> sp.csr_matrix:
    """The top-k score matrix of a dense (n_samples, n_labels) array of scores."""
    S = np.asarray(S)
    if S.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_samples, n_labels), got shape {S.shape}")
    k = _check_k(k, S.shape[1])
    S = np.ascontiguousarray(S, dtype=np.float64)
    return _run_rows(_dense_kernel, S.shape[0], k, S.shape[1], (S, k), n_threads)


def topk_csr(S: sp.spmatrix, k: int, *, missing: float = 0.0,
             n_threads: int | None = 1) -> sp.csr_matrix:
    """The top-k score matrix of a CSR matrix whose missing entries score ``missing``."""
    S = sp.csr_matrix(S)
    if not S.has_canonical_format:
        S = S.copy()
        S.sum_duplicates()
    k = _check_k(k, S.shape[1])
    args = (S.indptr, S.indices, S.data, S.shape[1], k, float(missing))
    return _run_rows(_csr_kernel, S.shape[0], k, S.shape[1], args, n_threads)


def linear_topk(X: sp.csr_matrix, W: sp.csr_matrix, intercept: np.ndarray, k: int, *,
                n_threads: int | None = None) -> sp.csr_matrix:
    """Top k of ``X @ W + intercept`` per row: X (n_samples, n_features) CSR with sorted
    indices, W (n_features, n_labels) CSR, intercept (n_labels,). Accumulates in float64."""
    n_labels = int(intercept.shape[0])
    k = _check_k(k, n_labels)
    args = (X.indptr, X.indices, X.data, W.indptr, W.indices, W.data,
            np.ascontiguousarray(intercept, dtype=np.float64), k)
    return _run_rows(_linear_kernel, X.shape[0], k, n_labels, args, n_threads)


def _check_k(k: int, n_labels: int) -> int:
    return min(positive_int(k, "k"), int(n_labels))
