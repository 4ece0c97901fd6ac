"""Numba dual coordinate descent (DCD) kernels for L2-regularised linear classifiers.

One binary problem per label: rows ``x_i`` of a CSR matrix (never copied), targets
``y_i`` in {+1, -1}, and an optional constant bias feature of value ``bias`` appended to
every row (regularised like any other weight, as liblinear does with ``-B bias``).

Losses (``loss`` argument)
--------------------------
``LOSS_SQUARED_HINGE`` (0): primal ``0.5 |w|^2 + C sum_i max(0, 1 - y_i w.x_i)^2``, solved in
the dual ``min_a 0.5 a'Qa - sum a + sum a_i^2 / (4C), a >= 0`` with ``Q_ij = y_i y_j x_i.x_j``
by Hsieh, Chang, Lin, Keerthi & Sundararajan (ICML 2008), Algorithm 3 with shrinking —
liblinear's ``solve_l2r_l1l2_svc`` for ``-s 1``. Stops when the projected-gradient spread
``max PG - min PG`` over the full (unshrunk) set is ``<= tol``.

``LOSS_LOGISTIC`` (1): primal ``0.5 |w|^2 + C sum_i log(1 + exp(-y_i w.x_i))``, solved in the
dual ``min_a 0.5 a'Qa + sum a_i log a_i + (C - a_i) log(C - a_i), 0 < a_i < C`` by Yu, Huang
& Lin (Machine Learning 2011), with the inner Newton steps of liblinear's
``solve_l2r_lr_dual`` (``-s 7``). Stops when the largest sub-problem gradient is ``< tol``.

In both, ``w = sum_i a_i y_i x_i``.

Warm start (``train_chunk_from``): started with ``w = c`` instead of 0 and every ``a_i`` at its
initial value, the same coordinate updates keep ``w = c + sum_i a_i y_i x_i``, which is the
dual of the *proximal* problem ``min_w 0.5 |w - c|^2 + C sum_i loss(y_i w.x_i)`` (substitute
``v = w - c``: the ordinary problem with every margin offset by ``y_i c.x_i``). So a primal
warm start is exact for that problem and needs no dual variables; ``c = 0`` is the ordinary
problem, computed by the very same operations. Partitioned training
(:mod:`labelwise.distributed.federated`) uses it for its rounds.

The solvers read their rows through an index array
``rows`` into the shared CSR X, so one-vs-rest (all rows) and the label tree's nodes (the rows
positive for a node) share them. Row order is shuffled every epoch by a xorshift64 generator
seeded per problem (``seed``), so a model does not depend on the thread or on the other
problems. Arithmetic is float64; ``x`` data may be float32.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .._numba import njit

__all__ = ["LOSS_SQUARED_HINGE", "LOSS_LOGISTIC", "LABEL_SEED_STEP", "row_sq_norms",
           "dcd_solve", "solve_into", "train_chunk", "train_chunk_from", "train_rows_from",
           "sq_hinge_block", "block_weights", "train_chunk_lockstep", "logistic_block"]

LOSS_SQUARED_HINGE = 0
LOSS_LOGISTIC = 1
#: a label's row-order seed is ``(seed_base + label * LABEL_SEED_STEP) % 2**32`` (Knuth's
#: multiplicative step), so it depends on its id alone, not on the labels beside it
LABEL_SEED_STEP = 2654435761
#: a lockstep block prefetches the next row's weight rows when its W is larger than this (a
#: core's L2 on the machine measured): smaller, W stays in cache and the hint only costs
#: (Bibtex's and Delicious' blocks, 0.2-0.6 MB: 8-20 % slower with it)
PREFETCH_BYTES = 2**20


@njit(nogil=True, cache=True)
def row_sq_norms(x_indptr, x_data, bias):
    """``|x_i|^2 + bias^2`` for every row (float64)."""
    n = x_indptr.shape[0] - 1
    out = np.empty(n, np.float64)
    b2 = bias * bias
    for i in range(n):
        s = b2
        for p in range(x_indptr[i], x_indptr[i + 1]):
            v = np.float64(x_data[p])
            s += v * v
        out[i] = s
    return out


# A full row (dense X, indices 0..d-1) is read through a slice indexed by ``range``, a
# sparse one through unsigned indices: numba then knows no index is negative and emits no
# wrap-around branch per element, so the full row's update vectorises (yeast: 36 -> 8 ns a
# row) and the sums run about a fifth faster. The same operations in the same order: the
# same numbers.
@njit(nogil=True, cache=True, inline="always")
def _dot(w, x_indptr, x_indices, x_data, i, bias, d):
    s = w[d] * bias
    a = x_indptr[i]
    b = x_indptr[i + 1]
    if b - a == d:  # a full row: read w in order, without the index gather
        xs = x_data[a:b]
        for k in range(d):
            s += w[k] * xs[k]
    else:
        for p in range(a, b):
            s += w[np.uint64(x_indices[p])] * x_data[np.uint64(p)]
    return s


@njit(nogil=True, cache=True, inline="always")
def _axpy(a, w, x_indptr, x_indices, x_data, i, bias, d):
    lo = x_indptr[i]
    hi = x_indptr[i + 1]
    if hi - lo == d:  # a full row: the same updates, without the index gather
        xs = x_data[lo:hi]
        for k in range(d):
            w[k] += a * xs[k]
    else:
        for p in range(lo, hi):
            w[np.uint64(x_indices[p])] += a * x_data[np.uint64(p)]
    w[d] += a * bias


@njit(nogil=True, cache=True, inline="always")
def _next(state):
    """xorshift64 step on ``state[0]`` (a non-zero uint64); returns the new value."""
    x = state[0]
    x ^= x << np.uint64(13)
    x ^= x >> np.uint64(7)
    x ^= x << np.uint64(17)
    state[0] = x
    return x


@njit(nogil=True, cache=True, _nrt=False)
def _shuffle(index, m, state):
    """Fisher-Yates shuffle of ``index[:m]`` driven by the xorshift state."""
    for s in range(m - 1):
        j = s + np.int64(_next(state) % np.uint64(m - s))
        t = index[s]
        index[s] = index[j]
        index[j] = t


@njit(nogil=True, cache=True, _nrt=False)
def _seed_state(seed, state):
    x = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)
    if x == np.uint64(0):
        x = np.uint64(1)
    state[0] = x

@njit(nogil=True, cache=True, _nrt=False)
def _sq_hinge_rows(x_indptr, x_indices, x_data, sq_norms, rows, y, C, bias, tol, max_iter,
                   w, alpha, index, state):
    """Squared hinge DCD over the rows ``rows`` (targets ``y[t]`` for row ``rows[t]``).

    ``w`` (n_features + 1) receives the weights; zero on entry, or the centre ``c`` of the
    proximal problem (module docstring, warm start); returns the epochs run.
    """
    n = y.shape[0]
    d = w.shape[0] - 1
    diag = 0.5 / C
    inf = np.inf
    for t in range(n):
        index[t] = t
        alpha[t] = 0.0
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
            i = rows[t]
            yi = y[t]
            g = yi * _dot(w, x_indptr, x_indices, x_data, i, bias, d) - 1.0 + alpha[t] * diag
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
                a_new = a_old - g / (sq_norms[i] + diag)
                if a_new < 0.0:
                    a_new = 0.0
                alpha[t] = a_new
                step = (a_new - a_old) * yi
                if step != 0.0:
                    _axpy(step, w, x_indptr, x_indices, x_data, i, bias, d)
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


@njit(nogil=True, cache=True, inline="always")
def _logistic_newton(q, a_old, sign, b, C, inner_eps, max_inner, eta):
    """One dual pair's Newton steps (liblinear's ``solve_l2r_lr_dual`` inner loop) from
    ``a_old``, the chosen dual of the pair: returns its new value ``z``, the steps taken and
    the sub-problem gradient's magnitude at the start (``q``: the row's squared norm, ``b``:
    the signed margin)."""
    z = a_old
    if C - z < 0.5 * C:
        z = 0.1 * z
    gp = q * (z - a_old) + sign * b + np.log(z / (C - z))
    g0 = abs(gp)
    inner = 0
    while inner <= max_inner:
        if abs(gp) < inner_eps:
            break
        gpp = q + C / (C - z) / z
        tmpz = z - gp / gpp
        if tmpz <= 0.0:
            z *= eta
        else:
            z = tmpz
        gp = q * (z - a_old) + sign * b + np.log(z / (C - z))
        inner += 1
    return z, inner, g0


@njit(nogil=True, cache=True, _nrt=False)
def _logistic_rows(x_indptr, x_indices, x_data, sq_norms, rows, y, C, bias, tol, max_iter,
                   w, alpha2, index, state):
    """Logistic dual CD over the rows ``rows``; ``w`` zero on entry (or a proximal centre, as
    in :func:`_sq_hinge_rows`); returns the epochs run."""
    n = y.shape[0]
    d = w.shape[0] - 1
    max_inner = 100
    inner_eps = 1e-2
    inner_eps_min = min(1e-8, tol)
    eta = 0.1
    a0 = min(0.001 * C, 1e-8)
    for t in range(n):
        alpha2[2 * t] = a0
        alpha2[2 * t + 1] = C - a0
        index[t] = t
        _axpy(y[t] * a0, w, x_indptr, x_indices, x_data, rows[t], bias, d)
    it = 0
    while it < max_iter:
        _shuffle(index, n, state)
        newton_iter = 0
        g_max = 0.0
        for s in range(n):
            t = index[s]
            i = rows[t]
            yi = y[t]
            a = sq_norms[i]
            b = yi * _dot(w, x_indptr, x_indices, x_data, i, bias, d)
            ind1 = 2 * t
            ind2 = 2 * t + 1
            sign = 1.0
            if 0.5 * a * (alpha2[ind2] - alpha2[ind1]) + b < 0.0:
                ind1 = 2 * t + 1
                ind2 = 2 * t
                sign = -1.0
            a_old = alpha2[ind1]
            z, inner, g0 = _logistic_newton(a, a_old, sign, b, C, inner_eps, max_inner, eta)
            if g0 > g_max:
                g_max = g0
            newton_iter += inner
            if inner > 0:
                alpha2[ind1] = z
                alpha2[ind2] = C - z
                _axpy(sign * (z - a_old) * yi, w, x_indptr, x_indices, x_data, i, bias, d)
        it += 1
        if g_max < tol:
            break
        if newton_iter <= n // 10:
            inner_eps = max(inner_eps_min, 0.1 * inner_eps)
    return it


@njit(nogil=True, cache=True)
def dcd_solve(x_indptr, x_indices, x_data, sq_norms, y, loss, C, bias, tol, max_iter, seed,
              n_features):
    """Solve one binary problem; return ``(w, alpha, n_iter)``.

    ``w`` has ``n_features + 1`` entries, the last one being the bias weight (multiply by
    ``bias`` for the intercept). ``alpha`` holds the dual variables a_i (length n).
    ``y`` is float64 +1/-1. ``sq_norms`` comes from :func:`row_sq_norms` with the same bias.
    """
    n = y.shape[0]
    w = np.zeros(n_features + 1, np.float64)
    alpha2 = np.empty(2 * n, np.float64)
    it = solve_into(x_indptr, x_indices, x_data, sq_norms, y, loss, C, bias, tol, max_iter,
                    seed, w, alpha2, np.empty(n, np.int64), np.arange(n, dtype=np.int64),
                    np.empty(1, np.uint64))
    alpha = np.empty(n, np.float64)
    for i in range(n):  # the squared hinge's duals come first, the logistic's every other
        alpha[i] = alpha2[i] if loss == LOSS_SQUARED_HINGE else alpha2[2 * i]
    return w, alpha, it


@njit(nogil=True, cache=True, _nrt=False)
def solve_into(x_indptr, x_indices, x_data, sq_norms, y, loss, C, bias, tol, max_iter, seed,
               w, alpha2, index, rows, state):
    """One binary problem in the caller's arrays (the step :func:`dcd_solve`,
    :func:`train_chunk_from` and :func:`train_rows_from` take for each problem): the row
    order seeded from ``seed``, then the loss's row solver over ``rows``. ``w`` (n_features +
    1) holds the start (zero, or a proximal centre) and receives the weights; ``alpha2`` (2n:
    the squared hinge's duals first, the logistic's pairs), ``index`` (n) and ``state`` (one
    uint64) are scratch. Returns the epochs run. It allocates nothing, so it is compiled
    without numba's runtime (``_nrt=False``, as the row solvers it calls): a process that
    needs no other kernel (a classifier chain's or RAkEL's small problems on sparse
    features) links no runtime, about 4 ms less for a fresh process on this 2-core
    machine."""
    _seed_state(seed, state)
    if loss == LOSS_SQUARED_HINGE:
        return _sq_hinge_rows(x_indptr, x_indices, x_data, sq_norms, rows, y, C, bias, tol,
                              max_iter, w, alpha2, index, state)
    return _logistic_rows(x_indptr, x_indices, x_data, sq_norms, rows, y, C, bias, tol,
                          max_iter, w, alpha2, index, state)


@njit(nogil=True, cache=True, inline="always")
def _keeps(v, prune_threshold):
    """1 when a weight is kept (non-zero, ``|v| >= prune_threshold``), else 0: added to a
    count or a write position without a branch."""
    return (v != 0.0) & (abs(v) >= prune_threshold)


@njit(nogil=True, cache=True)
def _room(feat, vals, used, kept):
    """``feat``/``vals`` with room for ``kept`` more entries after ``used`` and one spare slot
    (grown, at least doubled, when short)."""
    if used + kept + 1 <= feat.shape[0]:
        return feat, vals
    size = max(2 * feat.shape[0], used + kept + 1)
    nf = np.empty(size, np.int32)
    nv = np.empty(size, np.float32)
    nf[:used] = feat[:used]
    nv[:used] = vals[:used]
    return nf, nv


@njit(nogil=True, cache=True)
def keep_weights(w, candidates, prune_threshold, feat, vals, used):
    """Append ``(f, w[f])`` for the features ``f`` in ``candidates`` (ascending) whose weight is
    non-zero with ``|w[f]| >= prune_threshold`` to ``feat``/``vals`` from position ``used``,
    growing the arrays (at least doubling them) when they would overflow. Returns ``(feat,
    vals, used, n_kept)``.

    Two passes: the kept weights are counted first (the arrays grown once), then written
    without a branch (every candidate is written at ``used``, which advances only past a
    kept one; one spare slot holds the last write). A loop that may replace ``feat`` and
    ``vals`` while it runs, or branches on the kept ones (a few per cent, at random), ran
    about nine times slower: on a Gram node of synthetic-long (95K candidates, 94
    classifiers) 0.12 s against 0.013 s, with the same arrays."""
    kept = 0
    for f in candidates:
        v = w[f]
        kept += _keeps(v, prune_threshold)
    feat, vals = _room(feat, vals, used, kept)
    if kept == 0:
        return feat, vals, used, kept
    for f in candidates:
        v = w[f]
        feat[used] = f
        vals[used] = v
        used += _keeps(v, prune_threshold)
    return feat, vals, used, kept


#: :func:`keep_weights_range` tests this many weights at a time for one worth keeping
KEEP_CHUNK = 16
_ABS_BITS = np.uint64(0x7FFFFFFFFFFFFFFF)


@njit(nogil=True, cache=True)
def _keep_limit(prune_threshold):
    """The bit pattern (uint64) at or above which a float64's magnitude bits may mark a
    weight :func:`keep_weights` keeps: the threshold's own, or the least non-zero magnitude
    for a threshold of 0 (a non-negative float64's bits order as its value does)."""
    a = np.empty(1, np.float64)
    a[0] = prune_threshold
    b = a.view(np.uint64)[0]
    return b if b > 0 else np.uint64(1)


@njit(nogil=True, cache=True, inline="always")
def _chunk_may_keep(bits, base, lim):
    """Whether any of the ``KEEP_CHUNK`` weights from ``base`` has magnitude bits ``>= lim``
    (integer compares, which the compiler vectorises; a NaN passes, and is then refused)."""
    hit = False
    for i in range(base, base + KEEP_CHUNK):
        hit |= (bits[i] & _ABS_BITS) >= lim
    return hit


@njit(nogil=True, cache=True)
def keep_weights_range(w, n, prune_threshold, feat, vals, used):
    """:func:`keep_weights` over the candidates ``0 .. n - 1`` (the same arrays, counts and
    growth), faster where few weights are kept: each run of ``KEEP_CHUNK`` weights is first
    tested as a whole through the magnitudes' bit patterns (:func:`_chunk_may_keep`), and
    only a run that may hold a kept weight is read one weight at a time (then the tail
    shorter than a run). A tree's leaf keeps about 1 weight in 70 over its features
    (synthetic-27k). The runs have a fixed length, so the compiler unrolls them: a loop over
    ``min(base + KEEP_CHUNK, n)`` that also took the tail ran 30 % slower."""
    bits = w.view(np.uint64)
    lim = _keep_limit(prune_threshold)
    full = n - n % KEEP_CHUNK
    kept = 0
    for base in range(0, full, KEEP_CHUNK):
        if _chunk_may_keep(bits, base, lim):
            for f in range(base, base + KEEP_CHUNK):
                kept += _keeps(w[f], prune_threshold)
    for f in range(full, n):
        kept += _keeps(w[f], prune_threshold)
    feat, vals = _room(feat, vals, used, kept)
    if kept == 0:
        return feat, vals, used, kept
    for base in range(0, full, KEEP_CHUNK):
        if _chunk_may_keep(bits, base, lim):
            for f in range(base, base + KEEP_CHUNK):
                feat[used] = f
                vals[used] = w[f]
                used += _keeps(w[f], prune_threshold)
    for f in range(full, n):
        feat[used] = f
        vals[used] = w[f]
        used += _keeps(w[f], prune_threshold)
    return feat, vals, used, kept


@njit(nogil=True, cache=True)
def train_chunk(x_indptr, x_indices, x_data, sq_norms, y_indptr, y_indices, labels, loss, C,
                bias, tol, max_iter, prune_threshold, seed_base, n_features):
    """Train the labels ``labels`` (ids into the CSC label matrix ``y_indptr/y_indices``).

    Returns ``(counts, feat, vals, bias_w, n_iter)``: label ``labels[j]`` keeps the
    ``counts[j]`` weights ``vals`` at features ``feat`` (concatenated in label order, features
    ascending) whose magnitude is ``>= prune_threshold`` (and non-zero); ``bias_w[j]`` is its
    bias weight, never pruned; ``n_iter[j]`` its number of outer DCD epochs.
    """
    m = labels.shape[0]
    n = x_indptr.shape[0] - 1
    counts = np.zeros(m, np.int64)
    bias_w = np.zeros(m, np.float64)
    n_iter = np.zeros(m, np.int64)
    feat = np.empty(1024, np.int32)
    vals = np.empty(1024, np.float32)
    used = np.int64(0)  # not a literal 0: keep_weights gets one specialisation, not two
    y = np.empty(n, np.float64)
    for j in range(m):
        lab = labels[j]
        y[:] = -1.0
        for p in range(y_indptr[lab], y_indptr[lab + 1]):
            y[y_indices[p]] = 1.0
        seed = (seed_base + lab * LABEL_SEED_STEP) % 4294967296
        w, _alpha, it = dcd_solve(x_indptr, x_indices, x_data, sq_norms, y, loss, C, bias,
                                  tol, max_iter, seed, n_features)
        n_iter[j] = it
        bias_w[j] = w[n_features]
        feat, vals, used, counts[j] = keep_weights_range(w, n_features, prune_threshold,
                                                         feat, vals, used)
    return counts, feat[:used].copy(), vals[:used].copy(), bias_w, n_iter


@njit(nogil=True, cache=True)
def train_chunk_from(x_indptr, x_indices, x_data, sq_norms, y_indptr, y_indices, labels, loss,
                     C, bias, tol, max_iter, prune_threshold, seed_base, n_features, c_indptr,
                     c_indices, c_data, c_bias):
    """:func:`train_chunk` warm-started: label ``lab = labels[j]`` solves the proximal problem
    ``min_w 0.5 |w - c|^2 + C[lab] sum_i loss(y_i w.[x_i, bias])`` (module docstring) from
    ``w = c``, its centre ``c`` given as column ``lab`` of a CSC matrix (``c_indptr``,
    ``c_indices``, ``c_data``; features ascending) plus the bias weight ``c_bias[lab]``.
    ``C`` is float64 (n_labels,). Returns what :func:`train_chunk` returns; with every
    centre 0 and ``C[lab]`` equal to train_chunk's C, the same numbers."""
    m = labels.shape[0]
    n = x_indptr.shape[0] - 1
    counts = np.zeros(m, np.int64)
    bias_w = np.zeros(m, np.float64)
    n_iter = np.zeros(m, np.int64)
    feat = np.empty(1024, np.int32)
    vals = np.empty(1024, np.float32)
    used = np.int64(0)
    y = np.empty(n, np.float64)
    rows = np.arange(n, dtype=np.int64)
    index = np.empty(n, np.int64)
    alpha2 = np.empty(2 * n, np.float64)
    state = np.empty(1, np.uint64)
    w = np.zeros(n_features + 1, np.float64)
    for j in range(m):
        lab = labels[j]
        y[:] = -1.0
        for p in range(y_indptr[lab], y_indptr[lab + 1]):
            y[y_indices[p]] = 1.0
        w[:] = 0.0
        for p in range(c_indptr[lab], c_indptr[lab + 1]):
            w[c_indices[p]] = c_data[p]
        w[n_features] = c_bias[lab]
        it = solve_into(x_indptr, x_indices, x_data, sq_norms, y, loss, C[lab], bias, tol,
                        max_iter, (seed_base + lab * LABEL_SEED_STEP) % 4294967296, w, alpha2,
                        index, rows, state)
        n_iter[j] = it
        bias_w[j] = w[n_features]
        feat, vals, used, counts[j] = keep_weights_range(w, n_features, prune_threshold,
                                                         feat, vals, used)
    return counts, feat[:used].copy(), vals[:used].copy(), bias_w, n_iter


@njit(nogil=True, cache=True)
def train_rows_from(x_indptr, x_indices, x_data, sq_norms, rows, tgt_indptr, tgt_indices, seeds,
                    loss, C, bias, tol, max_iter, prune_threshold, n_features, c_indptr,
                    c_indices, c_data, c_bias):
    """Warm-started problems over a subset of rows (a label tree node's classifiers): problem
    ``j`` has the rows ``rows`` (global ids), positive at the local positions
    ``tgt_indices[tgt_indptr[j]:tgt_indptr[j+1]]``, and solves the proximal problem of
    :func:`train_chunk_from` from centre column ``j`` of the CSC ``c_*`` (bias weight
    ``c_bias[j]``) at ``C[j]``, rows shuffled by a generator seeded with ``seeds[j]``.
    Returns ``(counts, feat, vals, bias_w, n_iter)`` as :func:`train_chunk` does."""
    m = seeds.shape[0]
    n = rows.shape[0]
    counts = np.zeros(m, np.int64)
    bias_w = np.zeros(m, np.float64)
    n_iter = np.zeros(m, np.int64)
    feat = np.empty(1024, np.int32)
    vals = np.empty(1024, np.float32)
    used = np.int64(0)
    y = np.empty(n, np.float64)
    index = np.empty(n, np.int64)
    alpha2 = np.empty(2 * n, np.float64)
    state = np.empty(1, np.uint64)
    w = np.zeros(n_features + 1, np.float64)
    for j in range(m):
        y[:] = -1.0
        for p in range(tgt_indptr[j], tgt_indptr[j + 1]):
            y[tgt_indices[p]] = 1.0
        w[:] = 0.0
        for p in range(c_indptr[j], c_indptr[j + 1]):
            w[c_indices[p]] = c_data[p]
        w[n_features] = c_bias[j]
        it = solve_into(x_indptr, x_indices, x_data, sq_norms, y, loss, C[j], bias, tol,
                        max_iter, seeds[j], w, alpha2, index, rows, state)
        n_iter[j] = it
        bias_w[j] = w[n_features]
        feat, vals, used, counts[j] = keep_weights_range(w, n_features, prune_threshold,
                                                         feat, vals, used)
    return counts, feat[:used].copy(), vals[:used].copy(), bias_w, n_iter


@intrinsic
def _prefetch(typingctx, A, r, c):
    """Hint the CPU to load the cache line holding ``A[r, c]`` (``A`` 2-D, C order) for a
    read soon (LLVM's ``llvm.prefetch``: read, high locality, data cache). A hint only: no
    value changes, and a target without prefetch instructions ignores it."""
    sig = types.void(A, r, c)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        inds = [context.cast(builder, v, t, types.intp)
                for v, t in zip(args[1:], signature.args[1:], strict=True)]
        ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                        shape=cgutils.unpack_tuple(builder, ary.shape),
                                        strides=cgutils.unpack_tuple(builder, ary.strides),
                                        layout=aty.layout, inds=inds)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def _swap_columns(A, a, b):
    """Swap columns ``a`` and ``b`` of the 2-D array ``A`` (row-major)."""
    for r in range(A.shape[0]):
        t = A[r, a]
        A[r, a] = A[r, b]
        A[r, b] = t


@njit(nogil=True, cache=True, inline="always")
def _block_margins(W, wb, bias, rid, rx, b, n_live, acc):
    """``acc[j]`` = the margin of problem (column) ``j < n_live`` on the visited row (local
    feature ids ``rid[:b]``, values ``rx[:b]``): four features a sweep over the problems,
    added in order (``((acc + w1 x1) + w2 x2) + ...``, the sums of one at a time)."""
    for j in range(n_live):
        acc[j] = wb[j] * bias
    p = 0
    while p + 4 <= b:
        w1 = W[rid[p]]
        w2 = W[rid[p + 1]]
        w3 = W[rid[p + 2]]
        w4 = W[rid[p + 3]]
        x1 = rx[p]
        x2 = rx[p + 1]
        x3 = rx[p + 2]
        x4 = rx[p + 3]
        for j in range(n_live):
            acc[j] = (((acc[j] + w1[j] * x1) + w2[j] * x2) + w3[j] * x3) + w4[j] * x4
        p += 4
    while p < b:
        w = W[rid[p]]
        xv = rx[p]
        for j in range(n_live):
            acc[j] += w[j] * xv
        p += 1


@njit(nogil=True, cache=True, inline="always")
def _block_update(W, wb, bias, rid, rx, b, n_live, n_step, dense_step, step, who):
    """Add ``dense_step[j]`` times the visited row to problem ``j``'s weights, for the
    ``n_step`` problems whose step is not zero: across every live column when they are a
    quarter of them or more (SIMD), else through the list of those that moved."""
    if 4 * n_step >= n_live:
        for p in range(b):
            w = W[rid[p]]
            xv = rx[p]
            for j in range(n_live):
                w[j] += dense_step[j] * xv
        for j in range(n_live):
            wb[j] += dense_step[j] * bias
        return
    u = 0
    for j in range(n_live):
        if dense_step[j] != 0.0:
            who[u] = j
            step[u] = dense_step[j]
            u += 1
    for p in range(b):
        w = W[rid[p]]
        xv = rx[p]
        for u in range(n_step):
            w[who[u]] += step[u] * xv
    for u in range(n_step):
        wb[who[u]] += step[u] * bias


@njit(nogil=True, cache=True)
def _block_setup(x_indptr, rows, tgt_indptr, tgt_indices, m):
    """What a lockstep block of ``m`` problems over ``rows`` works with: the targets (uint8
    (n, m), 1 at problem ``j``'s positive local positions), per-problem buffers (margins,
    steps, the problems that moved), the row order and the visited row's local feature ids
    and values."""
    n = rows.shape[0]
    ypos = np.zeros((n, m), np.uint8)
    for j in range(m):
        for p in range(tgt_indptr[j], tgt_indptr[j + 1]):
            ypos[tgt_indices[p], j] = 1
    acc = np.empty(m, np.float64)
    dense_step = np.zeros(m, np.float64)
    step = np.empty(m, np.float64)
    who = np.empty(m, np.int64)
    index = np.arange(n)
    longest = 0
    for t in range(n):
        longest = max(longest, x_indptr[rows[t] + 1] - x_indptr[rows[t]])
    rid = np.empty(longest, np.int64)
    rx = np.empty(longest, np.float64)
    return ypos, acc, dense_step, step, who, index, rid, rx


@njit(nogil=True, cache=True)
def sq_hinge_block(x_indptr, x_indices, x_data, sq_norms, rows, loc, tgt_indptr, tgt_indices,
                   C, bias, tol, max_iter, seed, W, wb, n_iter):
    """Squared-hinge DCD for ``m`` binary problems on the same rows, run in lockstep.

    Problem ``j``'s positives are the local positions ``tgt_indices[tgt_indptr[j]:
    tgt_indptr[j+1]]`` into ``rows``; every other row is negative; ``C[j]`` (float64 (m,))
    is its regularisation constant. Features are renumbered by ``loc`` (global feature id ->
    local id, for every feature of the rows). ``W`` (n_local, m), zero on entry, receives
    problem ``j``'s weight on local feature ``l`` at ``W[l, j]``; ``wb`` (m,), zero on
    entry, the bias weights; ``n_iter`` (m,) the epochs each problem ran. Started from
    non-zero ``W`` and ``wb`` (a centre ``c``), the same updates solve the proximal problem
    of the module docstring's warm start. Every epoch visits the rows in one order shared by
    all problems (shuffled by the xorshift generator seeded with ``seed``), so a row's ``m`` margins
    are one pass over its features with the problems' weights contiguous (SIMD), and its
    updates one more. Each problem follows the coordinate updates of :func:`_sq_hinge_rows`
    without shrinking and stops (its weights frozen) after the first epoch whose
    projected-gradient spread ``max PG - min PG`` is ``<= tol``; the epochs end when all
    have stopped or after ``max_iter``. Each problem converges to the same optimum as with
    the one-problem solver.

    A row is read once per visit: its features are renumbered by ``loc`` into a scratch
    buffer (with its values as float64), and both passes read that buffer. The margin
    pass adds four features per sweep over the live problems, in the same order as one at
    a time (``((acc + w1 x1) + w2 x2) + ...``, so the same sums): the running margins are
    loaded and stored once per four features instead of once per feature, and the weight
    rows' addresses no longer wait on ``loc``. On Reuters' root block pieces this cut the
    solver's CPU time by about a third, bit for bit the same model.

    While a row is computed, the cache lines of the next row's weight rows (its live
    columns) are prefetched (:func:`_prefetch`, a hint that changes no value) when W is
    larger than ``PREFETCH_BYTES``. A block's
    time goes mostly to fetching weight rows of rare features from memory (Reuters: 20 MB
    of W per piece, about 36 ns per stored value and epoch); with the next row's fetches
    in flight, a 45-wide Reuters piece took 0.60-0.75 s instead of 0.82-1.11 s, and
    synthetic-long's root block 2.5-3.1 s instead of 3.7-4.0 s (thread CPU, load 8-9),
    the same model bit for bit.

    The live problems are kept in the first columns (``col[c]`` is column ``c``'s problem):
    at the end of an epoch a stopped problem's column is swapped with the last live one
    (weights, dual variables, targets), so later epochs compute no margin for it; every
    live problem's arithmetic is unchanged (a stopped one took no step), so the result is
    the one of computing every column every epoch. The columns are put back in problem
    order at the end.
    """
    n = rows.shape[0]
    m = wb.shape[0]
    diag = np.empty(m, np.float64)
    for j in range(m):
        diag[j] = 0.5 / C[j]
    inf = np.inf
    ypos, acc, dense_step, step, who, index, rid, rx = _block_setup(
        x_indptr, rows, tgt_indptr, tgt_indices, m)
    alpha = np.zeros((n, m), np.float64)
    col = np.arange(m)
    n_live = m
    pg_max = np.empty(m, np.float64)
    pg_min = np.empty(m, np.float64)
    line = max(1, 64 // W.itemsize)  # entries of W a 64-byte cache line
    prefetch = W.size * W.itemsize > PREFETCH_BYTES
    state = np.ones(1, np.uint64)
    _seed_state(seed, state)
    it = 0
    while it < max_iter and n_live > 0:
        pg_max[:n_live] = -inf
        pg_min[:n_live] = inf
        _shuffle(index, n, state)
        for s in range(n):
            t = index[s]
            i = rows[t]
            b = _read_row(x_indptr, x_indices, x_data, loc, i, rid, rx)
            if prefetch and s + 1 < n:  # the next row's weight rows, while this one runs
                i2 = rows[index[s + 1]]
                for p in range(x_indptr[i2], x_indptr[i2 + 1]):
                    r = loc[x_indices[p]]
                    for c in range(0, n_live, line):
                        _prefetch(W, r, c)
                    _prefetch(W, r, n_live - 1)
            _block_margins(W, wb, bias, rid, rx, b, n_live, acc)
            sq = sq_norms[i]
            y_row = ypos[t]
            a_row = alpha[t]
            n_step = 0
            for j in range(n_live):  # branch-free, so that it vectorises
                yj = 2.0 * y_row[j] - 1.0
                a_old = a_row[j]
                g = yj * acc[j] - 1.0 + a_old * diag[j]
                pg = g if (a_old > 0.0 or g < 0.0) else 0.0
                pg_max[j] = max(pg_max[j], pg)
                pg_min[j] = min(pg_min[j], pg)
                a_new = max(a_old - g / (sq + diag[j]), 0.0)
                a_row[j] = a_new
                d = (a_new - a_old) * yj
                dense_step[j] = d
                n_step += d != 0.0
            if n_step > 0:
                _block_update(W, wb, bias, rid, rx, b, n_live, n_step, dense_step, step, who)
        it += 1
        c = 0
        while c < n_live:
            n_iter[col[c]] = it
            if pg_max[c] - pg_min[c] > tol:
                c += 1
                continue
            n_live -= 1  # stopped: swap it out of the live prefix
            if c != n_live:
                _swap_problem(W, ypos, wb, col, c, n_live)
                _swap_columns(alpha, c, n_live)
                for arr in (pg_max, pg_min, diag):
                    _swap_entries(arr, c, n_live)
    _problem_order(W, wb, col)


@njit(nogil=True, cache=True)
def logistic_block(x_indptr, x_indices, x_data, sq_norms, rows, loc, tgt_indptr, tgt_indices,
                   C, bias, tol, max_iter, seed, W, wb, n_iter):
    """Logistic dual CD for ``m`` binary problems on the same rows, run in lockstep: the
    arguments and outputs of :func:`sq_hinge_block` (``W``, ``wb`` zero on entry, or a
    centre for the proximal problem), the loss of :func:`_logistic_rows`.

    Every epoch visits the rows in one order shared by the problems; a row's margins are one
    pass over its features for all of them and its updates one more (SIMD across problems),
    and between the two each problem takes its own Newton steps on its dual pair, exactly
    the steps of :func:`_logistic_rows` (its starting duals, its inner tolerance, tightened
    per problem after an epoch of few Newton steps). A problem stops (its weights frozen,
    its column swapped out of the live ones) after the first epoch whose largest
    sub-problem gradient is ``< tol``, so each converges to the optimum it would alone.
    ``n_iter[j]``: the epochs problem ``j`` ran."""
    n = rows.shape[0]
    m = wb.shape[0]
    max_inner = 100
    eta = 0.1
    eps_min = min(1e-8, tol)
    ypos, acc, dense_step, step, who, index, rid, rx = _block_setup(
        x_indptr, rows, tgt_indptr, tgt_indices, m)
    Cc = np.empty(m, np.float64)
    a0 = np.empty(m, np.float64)
    inner_eps = np.full(m, 1e-2)
    for j in range(m):
        Cc[j] = C[j]
        a0[j] = min(0.001 * C[j], 1e-8)
    lo = np.empty((n, m), np.float64)  # the dual pair of row t: lo + hi = C
    hi = np.empty((n, m), np.float64)
    col = np.arange(m)
    n_live = m
    g_max = np.zeros(m, np.float64)
    newton = np.zeros(m, np.int64)
    for t in range(n):  # the starting duals' weights, rows in order (as _logistic_rows)
        b = _read_row(x_indptr, x_indices, x_data, loc, rows[t], rid, rx)
        for j in range(m):
            lo[t, j] = a0[j]
            hi[t, j] = Cc[j] - a0[j]
            dense_step[j] = (2.0 * ypos[t, j] - 1.0) * a0[j]
        _block_update(W, wb, bias, rid, rx, b, m, m, dense_step, step, who)
    state = np.ones(1, np.uint64)
    _seed_state(seed, state)
    it = 0
    while it < max_iter and n_live > 0:
        _shuffle(index, n, state)
        g_max[:n_live] = 0.0
        newton[:n_live] = 0
        for s in range(n):
            t = index[s]
            i = rows[t]
            b = _read_row(x_indptr, x_indices, x_data, loc, i, rid, rx)
            _block_margins(W, wb, bias, rid, rx, b, n_live, acc)
            q = sq_norms[i]
            n_step = 0
            for j in range(n_live):
                yj = 2.0 * ypos[t, j] - 1.0
                Cj = Cc[j]
                bb = yj * acc[j]
                sign = 1.0
                a_old = lo[t, j]
                if 0.5 * q * (hi[t, j] - lo[t, j]) + bb < 0.0:
                    sign = -1.0
                    a_old = hi[t, j]
                z, inner, g0 = _logistic_newton(q, a_old, sign, bb, Cj, inner_eps[j], max_inner,
                                                eta)
                if g0 > g_max[j]:
                    g_max[j] = g0
                newton[j] += inner
                d = 0.0
                if inner > 0:
                    if sign > 0.0:
                        lo[t, j] = z
                        hi[t, j] = Cj - z
                    else:
                        hi[t, j] = z
                        lo[t, j] = Cj - z
                    d = sign * (z - a_old) * yj
                dense_step[j] = d
                n_step += d != 0.0
            if n_step > 0:
                _block_update(W, wb, bias, rid, rx, b, n_live, n_step, dense_step, step, who)
        it += 1
        c = 0
        while c < n_live:
            n_iter[col[c]] = it
            if g_max[c] >= tol:
                if newton[c] <= n // 10:
                    inner_eps[c] = max(eps_min, 0.1 * inner_eps[c])
                c += 1
                continue
            n_live -= 1  # stopped: swap it out of the live prefix
            if c != n_live:
                _swap_problem(W, ypos, wb, col, c, n_live)
                _swap_columns(lo, c, n_live)
                _swap_columns(hi, c, n_live)
                for arr in (g_max, Cc, inner_eps):
                    _swap_entries(arr, c, n_live)
                _swap_entries(newton, c, n_live)
    _problem_order(W, wb, col)


@njit(nogil=True, cache=True, inline="always")
def _read_row(x_indptr, x_indices, x_data, loc, i, rid, rx):
    """Row ``i``'s local feature ids into ``rid`` and values (float64) into ``rx``; returns
    how many."""
    a = x_indptr[i]
    b = x_indptr[i + 1] - a
    for p in range(b):
        rid[p] = loc[x_indices[a + p]]
        rx[p] = np.float64(x_data[a + p])
    return b


@njit(nogil=True, cache=True, inline="always")
def _swap_entries(a, i, j):
    """Swap ``a[i]`` and ``a[j]``."""
    t = a[i]
    a[i] = a[j]
    a[j] = t


@njit(nogil=True, cache=True)
def _swap_problem(W, ypos, wb, col, c, last):
    """Swap block columns ``c`` and ``last``: their weights, targets, bias weights and the
    problems they hold (a stopped problem leaves the live prefix this way)."""
    _swap_columns(W, c, last)
    _swap_columns(ypos, c, last)
    _swap_entries(wb, c, last)
    _swap_entries(col, c, last)


@njit(nogil=True, cache=True)
def _problem_order(W, wb, col):
    """Put a block's columns back in problem order: column ``c`` holds problem ``col[c]``."""
    for c in range(col.shape[0]):
        while col[c] != c:
            j = col[c]
            _swap_columns(W, c, j)
            _swap_entries(wb, c, j)
            col[c] = col[j]
            col[j] = j


@njit(nogil=True, cache=True)
def block_weights(W, loc, feats, prune_threshold, counts):
    """The kept weights of a lockstep block (:func:`sq_hinge_block`'s ``W``, local feature
    ``loc[f]`` of global feature ``f``), in :func:`train_chunk`'s layout: problem ``j``
    keeps the non-zero weights with ``|w| >= prune_threshold`` over the features ``feats``
    (ascending); ``counts[j]`` (zero on entry) receives how many. Returns ``(feat, vals)``.

    Row-major passes: count, then place without a branch: each weight is written at its
    problem's next slot, which advances only past a kept one, into a buffer with one spare
    slot after each problem; then compacted."""
    m = W.shape[1]
    nf = feats.shape[0]
    for q in range(nf):
        Wq = W[loc[feats[q]]]
        for j in range(m):
            v = Wq[j]
            counts[j] += _keeps(v, prune_threshold)
    start = np.zeros(m + 1, np.int64)
    for j in range(m):
        start[j + 1] = start[j] + counts[j]
    put = start[:m] + np.arange(m)
    gap_feat = np.empty(start[m] + m, np.int32)
    gap_vals = np.empty(start[m] + m, np.float32)
    for q in range(nf):
        Wq = W[loc[feats[q]]]
        fq = feats[q]
        for j in range(m):
            v = Wq[j]
            gap_feat[put[j]] = fq
            gap_vals[put[j]] = v
            put[j] += _keeps(v, prune_threshold)
    feat = np.empty(start[m], np.int32)
    vals = np.empty(start[m], np.float32)
    for j in range(m):
        feat[start[j]:start[j + 1]] = gap_feat[start[j] + j:start[j + 1] + j]
        vals[start[j]:start[j + 1]] = gap_vals[start[j] + j:start[j + 1] + j]
    return feat, vals


@njit(nogil=True, cache=True)
def train_chunk_lockstep(x_indptr, x_indices, x_data, sq_norms, y_indptr, y_indices, labels,
                         loss, C, bias, tol, max_iter, prune_threshold, seed, n_features,
                         c_indptr, c_indices, c_data, c_bias):
    """The problems of the labels ``labels`` (ids into the CSC label matrix ``y_indptr/
    y_indices``, every row of X) solved in lockstep by :func:`sq_hinge_block` or
    :func:`logistic_block` (``loss``).

    Label ``lab = labels[j]`` solves the proximal problem of :func:`train_chunk_from` at
    ``C[j]`` (float64 (m,)) from its centre, column ``lab`` of the CSC ``c_*`` and
    ``c_bias[lab]``; with ``c_indptr`` empty every centre is 0 (the ordinary problem).
    Every block shares the row order of the generator seeded with ``seed``, and a problem's
    arithmetic depends only on that order, its own labels and its own weights, so a label
    gets the same weights in any block of labels (threads, Dask tasks). Returns what
    :func:`train_chunk` returns."""
    m = labels.shape[0]
    n = x_indptr.shape[0] - 1
    counts = np.zeros(m, np.int64)
    bias_w = np.zeros(m, np.float64)
    n_iter = np.zeros(m, np.int64)
    rows = np.arange(n, dtype=np.int64)
    feats = np.arange(n_features, dtype=np.int64)
    tgt_indptr = np.zeros(m + 1, np.int64)
    for j in range(m):
        lab = labels[j]
        tgt_indptr[j + 1] = tgt_indptr[j] + y_indptr[lab + 1] - y_indptr[lab]
    tgt_indices = np.empty(tgt_indptr[m], np.int64)
    W = np.zeros((n_features, m), np.float32)
    for j in range(m):
        lab = labels[j]
        tgt_indices[tgt_indptr[j]:tgt_indptr[j + 1]] = y_indices[y_indptr[lab]:y_indptr[lab + 1]]
        if c_indptr.shape[0] > 0:
            for p in range(c_indptr[lab], c_indptr[lab + 1]):
                W[c_indices[p], j] = c_data[p]
            bias_w[j] = c_bias[lab]
    if loss == LOSS_SQUARED_HINGE:
        sq_hinge_block(x_indptr, x_indices, x_data, sq_norms, rows, feats, tgt_indptr,
                       tgt_indices, C, bias, tol, max_iter, seed, W, bias_w, n_iter)
    else:
        logistic_block(x_indptr, x_indices, x_data, sq_norms, rows, feats, tgt_indptr,
                       tgt_indices, C, bias, tol, max_iter, seed, W, bias_w, n_iter)
    feat, vals = block_weights(W, feats, feats, prune_threshold, counts)
    return counts, feat, vals, bias_w, n_iter
