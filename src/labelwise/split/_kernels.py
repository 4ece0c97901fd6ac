"""Numba kernels of iterative stratification.

The algorithm works on *items* (labels for order 1; labels and co-occurring label pairs for
order 2) and on *units* (rows, or whole groups for the group-aware variant). A unit holds
``counts`` positives of each of its items and weighs ``weights`` rows.

Randomness inside the kernel comes from SplitMix64 (Steele, Lea & Flood 2014), a tiny
64-bit generator that the plain-Python reference in the tests reproduces bit for bit, so the
two give identical folds for the same seed. Item ties ("which of the rarest items first")
are broken by a random priority per item drawn by the caller; fold ties by SplitMix64 draws.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit

__all__ = ["splitmix64_next", "rand_below", "pair_keys", "iterative_assign"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# the heap's root as an int64 value: a literal 0 argument compiles the callee once more
_ROOT = np.int64(0)


@njit(cache=True)
def splitmix64_next(state):
    """Advance ``state`` (uint64 array of length 1) and return the next 64-bit output."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def rand_below(state, n):
    """A draw in ``0 .. n-1`` (``next % n``; the modulo bias is below 2**-40 for n < 2**24)."""
    return np.int64(splitmix64_next(state) % np.uint64(n))


@njit(cache=True)
def pair_keys(indptr, indices, n_labels):
    """Keys ``a * n_labels + b`` (a < b) of every label pair of every row, row by row.

    Returns ``(pair_ptr, keys)``: the pairs of row ``i`` are ``keys[pair_ptr[i]:pair_ptr[i+1]]``,
    in the order (a, b) of itertools.combinations over the row's sorted labels.
    """
    n = indptr.shape[0] - 1
    pair_ptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        m = indptr[i + 1] - indptr[i]
        pair_ptr[i + 1] = pair_ptr[i] + m * (m - 1) // 2
    keys = np.empty(pair_ptr[n], dtype=np.int64)
    for i in range(n):
        p = pair_ptr[i]
        s = indptr[i]
        e = indptr[i + 1]
        for u in range(s, e):
            a = np.int64(indices[u]) * n_labels
            for v in range(u + 1, e):
                keys[p] = a + indices[v]
                p += 1
    return pair_ptr, keys


@njit(cache=True)
def _heap_less(rem, prio, a, b):
    return rem[a] < rem[b] or (rem[a] == rem[b] and prio[a] < prio[b])


@njit(cache=True)
def _sift_up(heap, where, rem, prio, t):
    item = heap[t]
    while t > 0:
        parent = (t - 1) >> 1
        other = heap[parent]
        if not _heap_less(rem, prio, item, other):
            break
        heap[t] = other
        where[other] = t
        t = parent
    heap[t] = item
    where[item] = t


@njit(cache=True)
def _sift_down(heap, where, rem, prio, t, size):
    item = heap[t]
    while True:
        child = 2 * t + 1
        if child >= size:
            break
        if child + 1 < size and _heap_less(rem, prio, heap[child + 1], heap[child]):
            child += 1
        other = heap[child]
        if not _heap_less(rem, prio, other, item):
            break
        heap[t] = other
        where[other] = t
        t = child
    heap[t] = item
    where[item] = t


@njit(cache=True)
def _choose_fold(c_item_row, c_fold, state):
    """Fold with the largest desired count for the item; ties: largest desired size; then random."""
    k = c_fold.shape[0]
    best = c_item_row[0]
    for j in range(1, k):
        if c_item_row[j] > best:
            best = c_item_row[j]
    best_size = -np.inf
    n_tied = np.int64(0)  # not a literal 0: one specialisation of rand_below
    for j in range(k):
        if c_item_row[j] == best:
            if c_fold[j] > best_size:
                best_size = c_fold[j]
                n_tied = 1
            elif c_fold[j] == best_size:
                n_tied += 1
    pick = 0 if n_tied == 1 else rand_below(state, n_tied)
    for j in range(k):
        if c_item_row[j] == best and c_fold[j] == best_size:
            if pick == 0:
                return j
            pick -= 1
    return -1  # unreachable


@njit(cache=True)
def _choose_by_size(c_fold, state):
    k = c_fold.shape[0]
    best = c_fold[0]
    for j in range(1, k):
        if c_fold[j] > best:
            best = c_fold[j]
    n_tied = np.int64(0)  # not a literal 0: one specialisation of rand_below
    for j in range(k):
        if c_fold[j] == best:
            n_tied += 1
    pick = 0 if n_tied == 1 else rand_below(state, n_tied)
    for j in range(k):
        if c_fold[j] == best:
            if pick == 0:
                return j
            pick -= 1
    return -1  # unreachable


@njit(cache=True)
def iterative_assign(indptr, indices, counts, weights, n_items, ratios, prio, seed):
    """Iterative stratification (Sechidis et al. 2011) of units into ``len(ratios)`` folds.

    Parameters
    ----------
    indptr, indices, counts: CSR (int64) unit -> items with positive counts (>= 1), units in
        processing order.
    weights: int64 (n_units,) rows per unit (1 for plain rows).
    n_items: number of items.
    ratios: float64 (k,) desired share of each fold, summing to 1.
    prio: int64 (n_items,) distinct tie-break priorities (lower goes first among equally rare).
    seed: uint64 SplitMix64 seed for fold ties.

    Returns int64 (n_units,) fold of each unit.
    """
    n = indptr.shape[0] - 1
    k = ratios.shape[0]
    state = np.empty(1, dtype=np.uint64)
    state[0] = seed

    rem = np.zeros(n_items, dtype=np.int64)
    col_ptr = np.zeros(n_items + 1, dtype=np.int64)
    for p in range(indptr[n]):
        rem[indices[p]] += counts[p]
        col_ptr[indices[p] + 1] += 1
    for i in range(n_items):
        col_ptr[i + 1] += col_ptr[i]
    col_units = np.empty(indptr[n], dtype=np.int64)
    fill = col_ptr[:-1].copy()
    for u in range(n):
        for p in range(indptr[u], indptr[u + 1]):
            it = indices[p]
            col_units[fill[it]] = u
            fill[it] += 1

    total_weight = 0
    for u in range(n):
        total_weight += weights[u]
    c_fold = np.empty(k, dtype=np.float64)
    for j in range(k):
        c_fold[j] = ratios[j] * total_weight
    c_item = np.empty((n_items, k), dtype=np.float64)
    for i in range(n_items):
        for j in range(k):
            c_item[i, j] = ratios[j] * rem[i]

    heap = np.empty(n_items, dtype=np.int64)
    where = np.full(n_items, -1, dtype=np.int64)
    size = np.int64(0)  # not a literal 0: one specialisation of _sift_down
    for i in range(n_items):
        if rem[i] > 0:
            heap[size] = i
            where[i] = size
            size += 1
    for t in range(size // 2 - 1, -1, -1):
        _sift_down(heap, where, rem, prio, t, size)

    fold = np.full(n, -1, dtype=np.int64)
    while size > 0:
        item = heap[0]
        size -= 1
        if size > 0:
            heap[0] = heap[size]
            where[heap[0]] = 0
            _sift_down(heap, where, rem, prio, _ROOT, size)
        where[item] = -1
        if rem[item] == 0:
            continue  # every unit of this item was placed while serving rarer items
        for q in range(col_ptr[item], col_ptr[item + 1]):
            u = col_units[q]
            if fold[u] >= 0:
                continue
            m = _choose_fold(c_item[item], c_fold, state)
            fold[u] = m
            c_fold[m] -= weights[u]
            for p in range(indptr[u], indptr[u + 1]):
                it = indices[p]
                c_item[it, m] -= counts[p]
                rem[it] -= counts[p]
                if where[it] >= 0:
                    _sift_up(heap, where, rem, prio, where[it])
    for u in range(n):
        if fold[u] < 0:
            m = _choose_by_size(c_fold, state)
            fold[u] = m
            c_fold[m] -= weights[u]
    return fold
