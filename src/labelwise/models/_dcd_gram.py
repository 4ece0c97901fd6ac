"""Squared-hinge dual coordinate descent on a precomputed Gram matrix (few, long rows).

:func:`labelwise.models._dcd._sq_hinge_rows` spends, per visited row, a sparse dot product
over the row's stored features (and a sparse update when its dual variable moves): work
proportional to the row's length, read through random accesses into ``w``. When a node has
few rows that are long (the Enron emails: 1,323 rows of 1,213 features each), the same
coordinate updates are cheaper in the kernel form: with ``K[s, t] = x_s . x_t + bias^2``
over the node's rows, the margins ``mg = K (alpha * y)`` are kept instead of ``w``; a row's
gradient is then one read (``y_t mg[t]``) and a move of its dual variable one contiguous
pass over ``K[t]`` (``n`` entries, vectorised). ``K`` is built once per node and shared by
all of its classifiers; ``w = sum_t alpha_t y_t x_t`` is formed at the end.

``sq_hinge_gram`` visits the rows in the order of ``_sq_hinge_rows`` (the same xorshift
generator and seed), with the same shrinking and the same stopping rule (projected-gradient
spread ``<= tol`` over every row), so it takes the same steps up to rounding: the margins
come from sums in another order. It reaches the same optimum.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit
from ._dcd import _axpy, _shuffle

__all__ = ["gram_matrix", "sq_hinge_gram", "weights_from_duals"]


@njit(nogil=True, cache=True)
def gram_matrix(x_indptr, x_indices, x_data, rows, bias, n_features):
    """``K`` (n, n) float64 with ``K[s, t] = x_{rows[s]} . x_{rows[t]} + bias^2``.

    Built feature by feature (cost ``sum_f df_f^2 / 2`` over the rows' document
    frequencies): the rows' values are regrouped by feature (rows ascending), and row
    ``s``'s products with the rows ``t >= s`` sharing a feature are added to ``K[s, t]``;
    the lower triangle is then copied from the upper one.
    """
    n = rows.shape[0]
    col_ptr = np.zeros(n_features + 1, np.int64)
    for s in range(n):
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            col_ptr[x_indices[p] + 1] += 1
    for f in range(n_features):
        col_ptr[f + 1] += col_ptr[f]
    cursor = col_ptr[:-1].copy()
    col_row = np.empty(col_ptr[n_features], np.int64)
    col_val = np.empty(col_ptr[n_features], np.float64)
    for s in range(n):
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            f = x_indices[p]
            col_row[cursor[f]] = s
            col_val[cursor[f]] = x_data[p]
            cursor[f] += 1
    cursor[:] = col_ptr[:-1]  # now: the first entry of each feature not yet passed
    b2 = bias * bias
    K = np.empty((n, n), np.float64)
    for s in range(n):
        Ks = K[s]
        for t in range(s, n):
            Ks[t] = 0.0
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            f = x_indices[p]
            v = np.float64(x_data[p])
            for q in range(cursor[f], col_ptr[f + 1]):  # rows >= s holding feature f
                Ks[col_row[q]] += v * col_val[q]
            cursor[f] += 1
        for t in range(s, n):
            Ks[t] += b2
    for s in range(n):
        for t in range(s):
            K[s, t] = K[t, s]
    return K


@njit(nogil=True, cache=True)
def sq_hinge_gram(K, sq_norms, rows, y, C, tol, max_iter, alpha, mg, index, state):
    """The squared-hinge DCD of :func:`labelwise.models._dcd._sq_hinge_rows` (from zero) on
    the Gram matrix ``K`` of the rows ``rows`` (:func:`gram_matrix`): ``alpha`` receives the
    dual variables, ``mg`` (n,) the margins ``K (alpha * y)``; returns the epochs run.
    ``sq_norms`` are the global rows' squared norms (bias included), as there."""
    n = y.shape[0]
    diag = 0.5 / C
    inf = np.inf
    for t in range(n):
        index[t] = t
        alpha[t] = 0.0
        mg[t] = 0.0
    active = n
    pg_max_old = inf
    pg_min_old = -inf
    it = 0
    while it < max_iter:
        pg_max_new = -inf
        pg_min_new = inf
        _shuffle(index, active, state)
        s = 0
        while s < active:
            t = index[s]
            yi = y[t]
            g = yi * mg[t] - 1.0 + alpha[t] * diag
            pg = 0.0
            if alpha[t] == 0.0:
                if g > pg_max_old:
                    active -= 1
                    tmp = index[s]
                    index[s] = index[active]
                    index[active] = tmp
                    continue
                elif g < 0.0:
                    pg = g
            else:
                pg = g
            if pg > pg_max_new:
                pg_max_new = pg
            if pg < pg_min_new:
                pg_min_new = pg
            if abs(pg) > 1e-12:
                a_old = alpha[t]
                a_new = a_old - g / (sq_norms[rows[t]] + diag)
                if a_new < 0.0:
                    a_new = 0.0
                alpha[t] = a_new
                step = (a_new - a_old) * yi
                if step != 0.0:
                    Kt = K[t]
                    for u in range(n):
                        mg[u] += step * Kt[u]
            s += 1
        it += 1
        if pg_max_new - pg_min_new <= tol:
            if active == n:
                break
            active = n
            pg_max_old = inf
            pg_min_old = -inf
            continue
        pg_max_old = pg_max_new
        pg_min_old = pg_min_new
        if pg_max_old <= 0.0:
            pg_max_old = inf
        if pg_min_old >= 0.0:
            pg_min_old = -inf
    return it


@njit(nogil=True, cache=True)
def weights_from_duals(x_indptr, x_indices, x_data, rows, y, alpha, bias, w):
    """``w += sum_t alpha_t y_t [x_{rows[t]}, bias]`` (``w`` has n_features + 1 entries)."""
    d = w.shape[0] - 1
    for t in range(rows.shape[0]):
        if alpha[t] != 0.0:
            _axpy(alpha[t] * y[t], w, x_indptr, x_indices, x_data, rows[t], bias, d)
