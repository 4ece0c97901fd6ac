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

__all__ = ["gram_columns", "gram_rows", "gram_mirror", "gram_matrix", "sq_hinge_gram",
           "weights_from_duals"]


@njit(nogil=True, cache=True)
def gram_columns(x_indptr, x_indices, x_data, rows, n_features):
    """The rows' values regrouped by feature, for :func:`gram_rows`: ``(col_ptr, col_row,
    col_val, row_cost)``. Feature ``f``'s entries are ``col_ptr[f]:col_ptr[f+1]``, each a
    local row position (``col_row``, int32, ascending) and its value (``col_val``, the
    float32 stored value); ``row_cost[s]`` is the number of products :func:`gram_rows`
    takes for row ``s`` (over its features, the entries of rows ``>= s``)."""
    n = rows.shape[0]
    col_ptr = np.zeros(n_features + 1, np.int64)
    for s in range(n):
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            col_ptr[x_indices[p] + 1] += 1
    for f in range(n_features):
        col_ptr[f + 1] += col_ptr[f]
    cursor = col_ptr[:-1].copy()
    col_row = np.empty(col_ptr[n_features], np.int32)
    col_val = np.empty(col_ptr[n_features], np.float32)
    for s in range(n):
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            f = x_indices[p]
            col_row[cursor[f]] = s
            col_val[cursor[f]] = x_data[p]
            cursor[f] += 1
    row_cost = np.zeros(n, np.int64)
    cursor[:] = col_ptr[:-1]
    for s in range(n):
        i = rows[s]
        c = 0
        for p in range(x_indptr[i], x_indptr[i + 1]):
            f = x_indices[p]
            c += col_ptr[f + 1] - cursor[f]
            cursor[f] += 1
        row_cost[s] = c
    return col_ptr, col_row, col_val, row_cost


@njit(nogil=True, cache=True)
def gram_rows(x_indptr, x_indices, x_data, rows, bias, col_ptr, col_row, col_val, s_start,
              s_end, K):
    """The upper triangle (``t >= s``) of rows ``s_start:s_end`` of the Gram matrix ``K``
    (:func:`gram_matrix`), from :func:`gram_columns`' arrays. Row ``s``'s products with
    the rows ``t >= s`` sharing a feature are added to ``K[s, t]`` in the order of row
    ``s``'s stored features, then ``bias^2``: the same sums whichever rows a call covers,
    so calls over disjoint ranges (on any threads) build the matrix of one call."""
    n = rows.shape[0]
    cursor = col_ptr[:-1].copy()  # the first entry of each feature at a row >= s
    for s in range(s_start):
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            cursor[x_indices[p]] += 1
    b2 = bias * bias
    for s in range(s_start, s_end):
        Ks = K[s]
        for t in range(s, n):
            Ks[t] = 0.0
        i = rows[s]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            f = x_indices[p]
            v = np.float64(x_data[p])
            for q in range(cursor[f], col_ptr[f + 1]):  # rows >= s holding feature f
                Ks[col_row[q]] += v * np.float64(col_val[q])
            cursor[f] += 1
        for t in range(s, n):
            Ks[t] += b2


@njit(nogil=True, cache=True)
def gram_mirror(K, s_start, s_end):
    """``K[s, :s] = K[:s, s]`` for the rows ``s_start:s_end`` (the lower triangle from the
    upper one, once every row's upper part is built)."""
    for s in range(s_start, s_end):
        for t in range(s):
            K[s, t] = K[t, s]


@njit(nogil=True, cache=True)
def gram_matrix(x_indptr, x_indices, x_data, rows, bias, n_features):
    """``K`` (n, n) float64 with ``K[s, t] = x_{rows[s]} . x_{rows[t]} + bias^2``.

    Built feature by feature (cost ``sum_f df_f^2 / 2`` over the rows' document
    frequencies): the rows' values are regrouped by feature (rows ascending,
    :func:`gram_columns`), and row ``s``'s products with the rows ``t >= s`` sharing a
    feature are added to ``K[s, t]`` (:func:`gram_rows`); the lower triangle is then
    copied from the upper one (:func:`gram_mirror`). ``_tree_build.gram_matrix`` runs the
    same two steps over row ranges on several threads (the same matrix, bit for bit).
    """
    n = rows.shape[0]
    col_ptr, col_row, col_val, _ = gram_columns(x_indptr, x_indices, x_data, rows, n_features)
    K = np.empty((n, n), np.float64)
    gram_rows(x_indptr, x_indices, x_data, rows, bias, col_ptr, col_row, col_val, 0, n, K)
    gram_mirror(K, 0, n)
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
