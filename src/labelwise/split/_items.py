"""Label matrices as the splitters and quality measures need them.

- :func:`label_csr`: any accepted ``Y`` as CSR with int64 ``indptr``/``indices`` (0/1 checked).
- :func:`pair_matrix`: the (n_samples, n_pairs) 0/1 matrix of co-occurring label pairs. Pair
  ``p`` is the unordered pair ``pairs[p] = (a, b)`` with ``a < b``; only pairs that occur in
  at least one row get a column, ordered by ``(a, b)``.
- :func:`item_matrix`: what iterative stratification of a given order balances: the labels
  (order 1), or the labels followed by the co-occurring pairs (order 2; pair ``p`` is item
  ``n_labels + p``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..dataset import as_label_matrix
from ..errors import ResourceLimitError

__all__ = ["label_csr", "pair_matrix", "item_matrix", "MAX_PAIR_ENTRIES"]

#: Refuse order-2 work whose (row, pair) entries would exceed this (8 bytes each, sorted once).
MAX_PAIR_ENTRIES = 200_000_000
_DENSE_PAIR_TABLE = 1 << 24


def label_csr(Y: Any) -> sp.csr_matrix:
    """``Y`` (n_samples, n_labels) as validated 0/1 CSR with int64 index arrays."""
    M = as_label_matrix(Y)
    M = sp.csr_matrix(
        (M.data, M.indices.astype(np.int64), M.indptr.astype(np.int64)), shape=M.shape
    )
    return M


def pair_matrix(Y: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """(P, pairs): P (n_samples, n_pairs) 0/1 CSR, pairs int64 (n_pairs, 2) with a < b."""
    from ._kernels import pair_keys

    n, q = Y.shape
    per_row = np.diff(Y.indptr)
    n_entries = int((per_row * (per_row - 1) // 2).sum())
    if n_entries > MAX_PAIR_ENTRIES:
        raise ResourceLimitError(
            f"label pairs: the rows hold {n_entries} (row, pair) entries, more than the "
            f"{MAX_PAIR_ENTRIES} allowed for order=2; use order=1"
        )
    pair_ptr, keys = pair_keys(
        np.asarray(Y.indptr, dtype=np.int64), np.asarray(Y.indices, dtype=np.int64), np.int64(q)
    )
    if q * q <= _DENSE_PAIR_TABLE:  # small label sets: a direct table beats sorting
        seen = np.zeros(q * q, dtype=bool)
        seen[keys] = True
        uniq = np.flatnonzero(seen).astype(np.int64)
        ids = np.cumsum(seen, dtype=np.int64) - 1
        inverse = ids[keys]
    else:
        uniq, inverse = np.unique(keys, return_inverse=True)
    pairs = np.stack([uniq // max(q, 1), uniq % max(q, 1)], axis=1).astype(np.int64)
    P = sp.csr_matrix(
        (np.ones(keys.size, dtype=np.float32), inverse.astype(np.int64).ravel(), pair_ptr),
        shape=(n, uniq.size),
    )
    return P, pairs


def item_matrix(Y: sp.csr_matrix, order: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(indptr, indices, n_items) of the items of each row for stratification of ``order``."""
    n, q = Y.shape
    indptr = np.asarray(Y.indptr, dtype=np.int64)
    indices = np.asarray(Y.indices, dtype=np.int64)
    if order == 1:
        return indptr, indices, q
    P, pairs = pair_matrix(Y)
    per_row = np.diff(indptr)
    pairs_per_row = np.diff(P.indptr)
    new_ptr = indptr + P.indptr
    out = np.empty(new_ptr[-1], dtype=np.int64)
    label_pos = np.arange(indices.size, dtype=np.int64) + np.repeat(P.indptr[:-1], per_row)
    pair_pos = np.arange(P.nnz, dtype=np.int64) + np.repeat(indptr[1:], pairs_per_row)
    out[label_pos] = indices
    out[pair_pos] = q + P.indices.astype(np.int64)
    return new_ptr, out, q + pairs.shape[0]
