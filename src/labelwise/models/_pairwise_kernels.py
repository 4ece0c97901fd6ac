"""Numba kernel of calibrated label ranking: every pairwise logistic problem, one after
another, by the dual coordinate descent of :mod:`labelwise.models._dcd`.

Problem ``p`` compares label ``pair_a[p]`` with label ``pair_b[p]``:

- ``pair_b[p] < n_labels``: the rows where exactly one of the two labels is positive, target
  +1 where it is ``pair_a[p]`` (Fürnkranz et al. 2008's pairwise preference problem);
- ``pair_b[p] == n_labels`` (the virtual label): every row, target +1 where ``pair_a[p]`` is
  positive (the binary relevance problem of the label).

A problem with no row gets intercept 0 (probability 0.5); a problem whose rows all have one
target gets the logit of its clipped rate (as :func:`labelwise.models._learners.fit_binary`).
Weights are gathered from the features of the problem's rows only and the dense work vector
is zeroed there again, so a problem costs its rows' non-zeros, not the feature count.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit
from ._dcd import LABEL_SEED_STEP, _logistic_rows, _seed_state

__all__ = ["train_pairs"]


@njit(nogil=True, cache=True)
def _pair_rows(y_indptr, y_indices, a, b, n_labels, n_rows, rows, y):
    """Fill ``rows``/``y`` with problem (a, b)'s rows and targets; return how many."""
    m = 0
    if b == n_labels:
        for i in range(n_rows):
            rows[i] = i
            y[i] = -1.0
        for p in range(y_indptr[a], y_indptr[a + 1]):
            y[y_indices[p]] = 1.0
        return n_rows
    p = y_indptr[a]
    q = y_indptr[b]
    pe = y_indptr[a + 1]
    qe = y_indptr[b + 1]
    while p < pe or q < qe:  # merge of two ascending lists, keeping what is in one only
        if q >= qe or (p < pe and y_indices[p] < y_indices[q]):
            rows[m] = y_indices[p]
            y[m] = 1.0
            m += 1
            p += 1
        elif p >= pe or y_indices[q] < y_indices[p]:
            rows[m] = y_indices[q]
            y[m] = -1.0
            m += 1
            q += 1
        else:  # positive for both: not a preference
            p += 1
            q += 1
    return m


@njit(nogil=True, cache=True)
def train_pairs(x_indptr, x_indices, x_data, sq_norms, y_indptr, y_indices, pair_a, pair_b,
                pair_ids, n_labels, C, bias, tol, max_iter, seed_base, n_features):
    """Train the problems ``pair_ids`` (positions into ``pair_a``/``pair_b``).

    Returns ``(counts, feat, vals, intercept, n_iter)``: problem ``pair_ids[j]`` keeps the
    ``counts[j]`` non-zero weights ``vals`` at features ``feat`` (concatenated in problem
    order), its intercept ``intercept[j]`` (bias times the bias weight) and its DCD epochs
    ``n_iter[j]`` (0 for a constant problem). Each problem's row shuffles are seeded from
    ``seed_base`` and its position, so any split into calls gives the same weights."""
    n_rows = x_indptr.shape[0] - 1
    m_pairs = pair_ids.shape[0]
    counts = np.zeros(m_pairs, np.int64)
    intercept = np.zeros(m_pairs, np.float64)
    n_iter = np.zeros(m_pairs, np.int64)
    feat = np.empty(1024, np.int64)
    vals = np.empty(1024, np.float32)
    used = 0
    rows = np.empty(n_rows, np.int64)
    y = np.empty(n_rows, np.float64)
    alpha2 = np.empty(2 * n_rows, np.float64)
    index = np.empty(n_rows, np.int64)
    w = np.zeros(n_features + 1, np.float64)
    state = np.empty(1, np.uint64)
    for j in range(m_pairs):
        p = pair_ids[j]
        m = _pair_rows(y_indptr, y_indices, pair_a[p], pair_b[p], n_labels, n_rows, rows, y)
        if m == 0:
            continue
        n_pos = 0
        for t in range(m):
            if y[t] > 0.0:
                n_pos += 1
        if n_pos == 0 or n_pos == m:
            rate = min(max(n_pos / m, 1e-3), 1.0 - 1e-3)
            intercept[j] = np.log(rate / (1.0 - rate))
            continue
        _seed_state((seed_base + p * LABEL_SEED_STEP) % 4294967296, state)
        n_iter[j] = _logistic_rows(x_indptr, x_indices, x_data, sq_norms, rows[:m], y[:m], C,
                                   bias, tol, max_iter, w, alpha2, index, state)
        intercept[j] = w[n_features] * bias
        w[n_features] = 0.0
        kept = 0
        for t in range(m):
            i = rows[t]
            for q in range(x_indptr[i], x_indptr[i + 1]):
                f = x_indices[q]
                v = w[f]
                if v != 0.0:
                    if used == feat.shape[0]:
                        nf = np.empty(2 * used, np.int64)
                        nv = np.empty(2 * used, np.float32)
                        nf[:used] = feat[:used]
                        nv[:used] = vals[:used]
                        feat = nf
                        vals = nv
                    feat[used] = f
                    vals[used] = v
                    used += 1
                    kept += 1
                    w[f] = 0.0  # seen: zero again, so a feature is kept once
        counts[j] = kept
    return counts, feat[:used].copy(), vals[:used].copy(), intercept, n_iter


@njit(nogil=True, cache=True)
def pair_votes(x_indptr, x_indices, x_data, w_indptr, w_indices, w_data, intercept, pair_a,
               pair_b, hard, row_start, row_end, out):
    """Votes of rows ``row_start..row_end-1`` into ``out`` (n_rows, n_labels + 1).

    ``w_*``: the weights as CSR (features x problems). Problem p's margin ``z`` gives its first
    label ``sigmoid(z)`` and its second ``1 - sigmoid(z)`` (``hard``: 1 / 0, and 1/2 each
    when ``z == 0``). A row's sums run over the problems in order, whatever the block."""
    P = intercept.shape[0]
    z = np.empty(P, np.float64)
    for i in range(row_start, row_end):
        for p in range(P):
            z[p] = intercept[p]
        for q in range(x_indptr[i], x_indptr[i + 1]):
            f = x_indices[q]
            v = np.float64(x_data[q])
            for r in range(w_indptr[f], w_indptr[f + 1]):
                z[w_indices[r]] += v * np.float64(w_data[r])
        for j in range(out.shape[1]):
            out[i, j] = 0.0
        for p in range(P):
            m = z[p]
            if hard:
                win = 1.0 if m > 0.0 else (0.5 if m == 0.0 else 0.0)
            elif m >= 0.0:
                win = 1.0 / (1.0 + np.exp(-m))
            else:
                e = np.exp(m)
                win = e / (1.0 + e)
            out[i, pair_a[p]] += win
            out[i, pair_b[p]] += 1.0 - win
