"""The label tree's node solvers on long rows: the kernel (Gram) form, the lockstep block's
live-column compaction, its frequency-ordered feature rows, its four-features-a-sweep
margins and its prefetch hint, each checked against the plain solver or a slow reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.models import _dcd, _dcd_gram, _tree_build, _tree_kernels
from labelwise.models.tree import LabelTree


def long_rows(seed=0, n=60, d=400, L=5, density=0.5):
    """Few rows, each long (about ``density * d`` features), l2-normalised, with labels
    that depend on a few features each."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, d)) * (rng.random((n, d)) < density)
    Y = np.zeros((n, L), np.float32)
    for j in range(L):
        score = X[:, 7 * j:7 * j + 7].sum(1) + 0.2 * rng.random(n)
        Y[np.argsort(-score)[:max(2, n // (j + 3))], j] = 1
    Xn = _tree_build.l2_normalize_rows(sp.csr_matrix(X.astype(np.float32)))
    return Xn, sp.csr_matrix(Y)


def gram_node(X, Y):
    """All rows of X as one node the Gram form can solve (asserted): ``(rows, tgt_indptr,
    tgt_indices, sq_norms)`` for ``train_node``, the targets Y's columns."""
    n = X.shape[0]
    assert _tree_kernels.uses_gram(n, X.nnz, _tree_kernels.GRAM_BYTES)
    Yc = sp.csc_matrix(Y)
    Yc.sort_indices()
    return (np.arange(n, dtype=np.int64), Yc.indptr.astype(np.int64),
            Yc.indices.astype(np.int64), _dcd.row_sq_norms(X.indptr, X.data, 1.0))


def primal_objective(X, y, w, C, bias):
    m = X @ w[:-1] + w[-1] * bias
    return 0.5 * float(w @ w) + C * float(np.sum(np.maximum(0.0, 1.0 - y * m) ** 2))


def test_gram_matrix_matches_dense_reference():
    X, _ = long_rows(n=23, d=50, density=0.3)
    rows = np.array([20, 3, 4, 9, 0, 17, 22, 11], np.int64)  # any order, a subset
    K = _dcd_gram.gram_matrix(X.indptr, X.indices, X.data, rows, 0.5, X.shape[1])
    Xd = X.toarray().astype(np.float64)[rows]
    np.testing.assert_allclose(K, Xd @ Xd.T + 0.25, rtol=1e-12, atol=1e-12)
    assert np.array_equal(K, K.T)
    empty = _dcd_gram.gram_matrix(X.indptr, X.indices, X.data, np.zeros(0, np.int64), 1.0,
                                  X.shape[1])
    assert empty.shape == (0, 0)


@pytest.mark.parametrize("keep", ["candidates", "range"])
def test_keep_weights_matches_a_plain_filter(keep):
    """keep_weights (count, grow once, write without a branch) appends exactly the
    candidates a plain filter keeps, growing a full array, at any threshold (0 too:
    zeros are never kept), after what was already held; keep_weights_range (candidates
    0 .. n - 1, runs of KEEP_CHUNK tested first through bit patterns) the same, with runs
    holding nothing to keep, -0.0, NaN, infinities and a tail shorter than a run."""
    rng = np.random.default_rng(7)
    w = rng.normal(0.0, 0.2, 501) * (rng.random(501) < 0.5)
    w[[3, 10]] = [0.1, -0.1]  # exactly at the threshold: kept
    if keep == "range":
        w[32:96] = 0.0  # whole runs with nothing to keep
        w[100:112] = rng.normal(0.0, 0.01, 12)  # a run of small values but one
        w[105] = -0.3
        w[[40, 60, 200]] = [-0.0, np.nan, -np.inf]
        w[112:128] = 0.0
        w[120] = -0.1  # a run whose only weight to keep is at the threshold
        w[490] = np.inf  # in the tail (500 = 31 runs of 16 and 4)
        cands = np.arange(500, dtype=np.int64)
    else:
        cands = np.sort(rng.choice(500, 300, replace=False)).astype(np.int64)
    feat = np.array([9, 4], np.int32)  # full: it must grow
    vals = np.array([1.5, -2.5], np.float32)
    used = np.int64(2)
    for thr in (0.1, 0.0, 10.0, 0.1, 0.30000001):
        ref = [(int(f), np.float32(w[f])) for f in cands if w[f] != 0.0 and abs(w[f]) >= thr]
        before_f, before_v = feat[:used].copy(), vals[:used].copy()
        if keep == "range":
            feat, vals, new_used, kept = _dcd.keep_weights_range(w, 500, thr, feat, vals, used)
        else:
            feat, vals, new_used, kept = _dcd.keep_weights(w, cands, thr, feat, vals, used)
        assert kept == len(ref) and new_used == used + kept and feat.shape[0] > new_used
        assert np.array_equal(feat[:used], before_f) and np.array_equal(vals[:used], before_v)
        assert feat[used:new_used].tolist() == [f for f, _ in ref]
        assert np.array_equal(vals[used:new_used], np.array([v for _, v in ref], np.float32))
        used = new_used
    assert _dcd.keep_weights(np.zeros(4), np.arange(3), 0.0, feat, vals, used)[2:] == (used, 0)
    assert _dcd.keep_weights_range(np.zeros(40), 33, 0.0, feat, vals, used)[2:] == (used, 0)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_gram_matrix_over_threads_is_the_one_thread_matrix(n_threads):
    """The Gram matrix built over row ranges on several threads (the rows' upper parts,
    then the mirrored lower parts) is bit for bit the one-call matrix, which matches the
    dense reference; the per-row costs are the products each row takes."""
    X, _ = long_rows(n=41, d=70, density=0.4, seed=3)
    rows = np.array([40, 2, 7, 3, 30, 11, 0, 25, 19, 33, 8, 5, 21], np.int64)
    one = _dcd_gram.gram_matrix(X.indptr, X.indices, X.data, rows, 0.7, X.shape[1])
    task = _tree_build.NodeTask(0, 0, 0, rows, np.zeros(1, np.int64), np.zeros(0, np.int64),
                                np.zeros(0, np.int64))
    many = _tree_build.gram_matrix(X, task, 0.7, n_threads)
    assert many.dtype == one.dtype == np.float64 and np.array_equal(many, one)
    Xd = X.toarray().astype(np.float64)[rows]
    np.testing.assert_allclose(one, Xd @ Xd.T + 0.49, rtol=1e-12, atol=1e-12)
    _, _, _, cost = _dcd_gram.gram_columns(X.indptr, X.indices, X.data, rows, X.shape[1])
    held = Xd != 0
    expected = [int((held[s][None, :] & held[s:]).sum()) for s in range(rows.shape[0])]
    assert cost.tolist() == expected
    # any split into ranges gives the same matrix
    K = np.full((rows.shape[0],) * 2, np.nan)
    col = _dcd_gram.gram_columns(X.indptr, X.indices, X.data, rows, X.shape[1])[:3]
    for a, b in ((5, 13), (0, 1), (1, 5)):
        _dcd_gram.gram_rows(X.indptr, X.indices, X.data, rows, 0.7, *col, a, b, K)
    _dcd_gram.gram_mirror(K, 0, rows.shape[0])
    assert np.array_equal(K, one)


@pytest.mark.parametrize("C", [0.3, 2.0, 8.0])
def test_sq_hinge_gram_reaches_the_plain_solvers_optimum(C):
    """Same rows, same seed: the kernel form and _sq_hinge_rows reach the same optimum (at
    a tight tolerance the same weights; at the default one objectives within 1e-3)."""
    X, Y = long_rows()
    n = X.shape[0]
    rows = np.arange(n, dtype=np.int64)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    K = _dcd_gram.gram_matrix(X.indptr, X.indices, X.data, rows, 1.0, X.shape[1])
    for j in range(Y.shape[1]):
        y = np.where(Y[:, j].toarray().ravel() > 0, 1.0, -1.0)
        for tol, max_iter in ((1e-10, 100000), (0.1, 20)):
            state = np.ones(1, np.uint64)
            _dcd._seed_state(5 + j, state)
            w_ref = np.zeros(X.shape[1] + 1)
            _dcd._sq_hinge_rows(X.indptr, X.indices, X.data, sq, rows, y, C, 1.0, tol,
                                max_iter, w_ref, np.zeros(n), np.zeros(n, np.int64), state)
            _dcd._seed_state(5 + j, state)
            alpha, mg = np.zeros(n), np.zeros(n)
            it = _dcd_gram.sq_hinge_gram(K, sq, rows, y, C, tol, max_iter, alpha, mg,
                                         np.zeros(n, np.int64), state)
            assert 1 <= it <= max_iter and np.all(alpha >= 0)
            w = np.zeros(X.shape[1] + 1)
            _dcd_gram.weights_from_duals(X.indptr, X.indices, X.data, rows, y, alpha, 1.0, w)
            # the kept margins are K (alpha * y), i.e. X w plus the bias
            np.testing.assert_allclose(mg, X @ w[:-1] + w[-1], atol=1e-9)
            if tol < 1e-6:
                np.testing.assert_allclose(w, w_ref, atol=1e-6)
            else:
                a = primal_objective(X, y, w_ref, C, 1.0)
                b = primal_objective(X, y, w, C, 1.0)
                assert abs(a - b) <= 1e-3 * a


def test_uses_gram_rule():
    assert _tree_kernels.uses_gram(100, 5000, 64 * 2**20)  # 50 values a row: long
    assert not _tree_kernels.uses_gram(100, 4999, 64 * 2**20)
    assert not _tree_kernels.uses_gram(100, 10**6, 100 * 100 * 8 - 1)  # does not fit
    assert not _tree_kernels.uses_gram(0, 0, 64 * 2**20)


def test_block_over_gram_rule():
    """Hand values: a block is kept over the Gram form when its float32 weights fit 1 MiB
    (a core's L2) and it has a 64-byte cache line of problems (16) a feature."""
    f = _tree_kernels.block_over_gram
    assert f(1000, 16)  # 64 KB of weights, a full line a feature
    assert not f(1000, 15)  # a narrower block
    assert not f(1000, 2)
    assert f(2**20 // 64, 16) and not f(2**20 // 64 + 1, 16)  # 1 MiB of weights, then more
    assert f(2**20 // 400, 100) and not f(2**20 // 400 + 1, 100)


@pytest.mark.parametrize("L,form", [(4, "gram"), (20, "block")])
def test_train_node_picks_the_form_by_block_over_gram(L, form):
    """A node that both forms can solve (its block fits, and few long rows): 4 problems go
    to the Gram form (bit for bit the one-by-one result, block_bytes=0), 20 problems over
    400 features (31 KB of weights) stay a lockstep block (bit for bit the block's result,
    gram_bytes=0); ``_tree_build.uses_block`` says the same."""
    X, Y = long_rows(n=50, d=400, L=L, density=0.3, seed=5)
    rows, tgt_indptr, tgt_indices, sq = gram_node(X, Y)
    seeds = np.arange(L, dtype=np.int64) + 3
    args = (X.indptr, X.indices, X.data, sq, rows, tgt_indptr, tgt_indices, seeds, 0, 1.5,
            1.0, 0.1, 50, 0.0, X.shape[1])
    got = _tree_kernels.train_node(*args)
    gram = _tree_kernels.train_node(*args, 0)  # no block: one by one, on the Gram matrix
    block = _tree_kernels.train_node(*args, _tree_kernels.BLOCK_BYTES, 0)  # no Gram form
    same = {"gram": gram, "block": block}[form]
    other = {"gram": block, "block": gram}[form]
    assert all(np.array_equal(a, b) for a, b in zip(got, same))
    assert not all(np.array_equal(a, b) for a, b in zip(got, other))  # the forms differ
    task = _tree_build.NodeTask(0, 0, 0, rows, tgt_indptr, tgt_indices, seeds)
    assert _tree_build.uses_block(X, task, _dcd.LOSS_SQUARED_HINGE) == (form == "block")
    assert _tree_build.uses_gram(X, task, _dcd.LOSS_SQUARED_HINGE) == (form == "gram")


def test_train_node_gram_form_over_spread_features():
    """The Gram form keeps a node's weights over its own features, numbered in ascending
    order: with the columns spread out (feature f at 3f + 1, the rest of X empty) and only
    a subset of the rows, it returns the same weights bit for bit, at the mapped ids."""
    X, Y = long_rows(n=60, d=150, L=3, density=0.4, seed=7)
    X = sp.csr_matrix(X)
    n, d = X.shape
    wide = sp.csr_matrix((X.data, X.indices * 3 + 1, X.indptr), shape=(n, 3 * d + 2))
    rows = np.arange(2, 60, 2, dtype=np.int64)
    Yc = sp.csc_matrix(Y[rows])
    Yc.sort_indices()
    out = []
    for M in (X, wide):
        assert _tree_kernels.uses_gram(rows.size, M[rows].nnz, _tree_kernels.GRAM_BYTES)
        sq = _dcd.row_sq_norms(M.indptr, M.data, 1.0)
        out.append(_tree_kernels.train_node(
            M.indptr, M.indices, M.data, sq, rows, Yc.indptr.astype(np.int64),
            Yc.indices.astype(np.int64), np.arange(3, dtype=np.int64), 0, 1.0, 1.0, 0.1, 50,
            0.05, M.shape[1], 0))  # no block: the Gram form
    (c0, f0, v0, b0, i0), (c1, f1, v1, b1, i1) = out
    assert c0.sum() > 0 and np.array_equal(c0, c1)
    assert np.array_equal(f1, f0 * 3 + 1)
    assert np.array_equal(v0, v1) and np.array_equal(b0, b1) and np.array_equal(i0, i1)


def test_train_node_gram_and_plain_one_by_one_agree():
    """train_node on few long rows solved one by one: the kernel form (default) and the
    plain solver (gram_bytes=0) give the same classifiers up to the tolerance."""
    X, Y = long_rows(n=80, L=4)
    rows, tgt_indptr, tgt_indices, sq = gram_node(X, Y)
    args = (X.indptr, X.indices, X.data, sq, rows, tgt_indptr, tgt_indices,
            np.arange(4, dtype=np.int64) + 9, 0, 1.5, 1.0, 1e-9, 100000, 0.0, X.shape[1], 0)
    gram = _tree_kernels.train_node(*args)
    plain = _tree_kernels.train_node(*args, 0)
    for a, b in zip(gram[:4], plain[:4]):
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, atol=1e-5)
        else:
            assert np.array_equal(a, b)


def test_block_compaction_gives_each_problem_its_lone_result():
    """Problems of one lockstep block stop at different epochs (their columns are swapped
    out of the live prefix); each problem's weights equal, bit for bit, those of a block
    holding it alone (the same shared row order), for any feature numbering ``loc``."""
    X, Y = long_rows(n=70, d=120, L=6, density=0.2)
    X = sp.csr_matrix(X)
    n = X.shape[0]
    rows = np.arange(n, dtype=np.int64)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    Yc = sp.csc_matrix(Y)
    Yc.sort_indices()
    feats = np.unique(X.indices)
    rng = np.random.default_rng(0)
    for loc_order in (np.arange(feats.size), rng.permutation(feats.size)):
        loc = np.zeros(X.shape[1], np.int32)
        loc[feats] = loc_order
        m = Y.shape[1]
        W = np.zeros((feats.size, m), np.float32)
        wb, n_iter = np.zeros(m), np.zeros(m, np.int64)
        _dcd.sq_hinge_block(X.indptr, X.indices, X.data, sq, rows, loc,
                            Yc.indptr.astype(np.int64), Yc.indices.astype(np.int64),
                            np.full(wb.size, 0.9), 1.0, 0.05, 60, 4, W, wb, n_iter)
        assert len(set(n_iter.tolist())) > 1  # they did stop at different epochs
        for j in range(m):
            pos = Yc.indices[Yc.indptr[j]:Yc.indptr[j + 1]].astype(np.int64)
            W1 = np.zeros((feats.size, 1), np.float32)
            wb1, it1 = np.zeros(1), np.zeros(1, np.int64)
            _dcd.sq_hinge_block(X.indptr, X.indices, X.data, sq, rows, loc,
                                np.array([0, pos.size], np.int64), pos, np.full(1, 0.9), 1.0,
                                0.05, 60, 4, W1, wb1, it1)
            assert np.array_equal(W[:, j], W1[:, 0]) and wb[j] == wb1[0]
            assert n_iter[j] == it1[0]


def block_reference(X, sq, rows, loc, tgt_indptr, tgt_indices, C, bias, tol, max_iter, seed,
                    n_local):
    """A plain loop of the lockstep block's arithmetic: every problem, every row of the
    shared shuffled order, its margin summed one feature at a time in row order, no
    compaction (a stopped problem is skipped). Returns ``(W, wb, n_iter)``."""
    n, m = rows.shape[0], tgt_indptr.shape[0] - 1
    y = -np.ones((n, m))
    for j in range(m):
        y[tgt_indices[tgt_indptr[j]:tgt_indptr[j + 1]], j] = 1.0
    W = np.zeros((n_local, m), np.float32)
    wb, alpha = np.zeros(m), np.zeros((n, m))
    n_iter, live = np.zeros(m, np.int64), np.ones(m, bool)
    index, state = np.arange(n), np.ones(1, np.uint64)
    _dcd._seed_state(seed, state)
    diag, it = 0.5 / C, 0
    while it < max_iter and live.any():
        pg_max, pg_min = np.full(m, -np.inf), np.full(m, np.inf)
        _dcd._shuffle(index, n, state)
        for t in index:
            i = rows[t]
            span = range(X.indptr[i], X.indptr[i + 1])
            for j in np.flatnonzero(live):
                acc = wb[j] * bias
                for p in span:
                    acc += float(W[loc[X.indices[p]], j]) * float(X.data[p])
                a_old = alpha[t, j]
                g = y[t, j] * acc - 1.0 + a_old * diag
                pg = g if (a_old > 0.0 or g < 0.0) else 0.0
                pg_max[j], pg_min[j] = max(pg_max[j], pg), min(pg_min[j], pg)
                alpha[t, j] = max(a_old - g / (sq[i] + diag), 0.0)
                step = (alpha[t, j] - a_old) * y[t, j]
                if step != 0.0:
                    for p in span:
                        f = loc[X.indices[p]]
                        W[f, j] = np.float32(float(W[f, j]) + step * float(X.data[p]))
                    wb[j] += step * bias
        it += 1
        for j in np.flatnonzero(live):
            n_iter[j] = it
            live[j] = pg_max[j] - pg_min[j] > tol
    return W, wb, n_iter


@pytest.mark.parametrize(("density", "pad"), [(0.05, 0), (0.3, 0), (0.3, 70_000)])
def test_block_equals_a_plain_loop_bit_for_bit(density, pad):
    """The lockstep block (rows renumbered through a scratch buffer, margins summed four
    features a sweep) gives exactly the numbers of a plain one-feature-at-a-time loop: the
    same sums in the same order, over a subset of rows in any order and any numbering.
    ``pad`` unused rows make W larger than ``PREFETCH_BYTES``, so the block prefetches the
    next row's weight rows: still the same numbers."""
    X, Y = long_rows(seed=3, n=40, d=90, L=4, density=density)
    X = sp.csr_matrix(X)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    rng = np.random.default_rng(1)
    rows = rng.permutation(X.shape[0])[:31].astype(np.int64)
    feats = np.unique(X[rows].indices)
    loc = np.full(X.shape[1], -1, np.int32)
    loc[feats] = rng.permutation(feats.size)
    Yc = sp.csc_matrix(Y[rows])
    Yc.sort_indices()
    tgt_indptr, tgt_indices = Yc.indptr.astype(np.int64), Yc.indices.astype(np.int64)
    assert len(set((np.diff(X.indptr)[rows] % 4).tolist())) > 1  # rows of every remainder
    m = Y.shape[1]
    W = np.zeros((feats.size + pad, m), np.float32)
    assert (W.nbytes > _dcd.PREFETCH_BYTES) == (pad > 0)
    wb, n_iter = np.zeros(m), np.zeros(m, np.int64)
    _dcd.sq_hinge_block(X.indptr, X.indices, X.data, sq, rows, loc, tgt_indptr, tgt_indices,
                        np.full(wb.size, 0.8), 1.0, 0.05, 12, 9, W, wb, n_iter)
    W_ref, wb_ref, it_ref = block_reference(X, sq, rows, loc, tgt_indptr, tgt_indices, 0.8,
                                            1.0, 0.05, 12, 9, feats.size + pad)
    assert np.array_equal(W, W_ref) and np.array_equal(wb, wb_ref)
    assert np.array_equal(n_iter, it_ref) and np.abs(W).sum() > 0


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3])
def test_train_node_block_keeps_the_weights_a_plain_prune_keeps(threshold):
    """train_node's block path (branch-free placement into a buffer with a spare slot per
    classifier, then compacted) returns, per classifier, exactly the non-zero weights of
    the block's W with ``|w| >= threshold``, features ascending (a plain filter of W)."""
    X, Y = long_rows(seed=5, n=50, d=120, L=6, density=0.2)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    rows = np.arange(3, 47, dtype=np.int64)
    Yc = sp.csc_matrix(Y[rows])
    Yc.sort_indices()
    tgt_indptr, tgt_indices = Yc.indptr.astype(np.int64), Yc.indices.astype(np.int64)
    m = Y.shape[1]
    seeds = np.arange(11, 11 + m, dtype=np.int64)
    counts, feat, vals, bias_w, n_iter = _tree_kernels.train_node(
        X.indptr, X.indices, X.data, sq, rows, tgt_indptr, tgt_indices, seeds,
        _dcd.LOSS_SQUARED_HINGE, 0.7, 1.0, 0.05, 15, threshold, X.shape[1],
        _tree_kernels.BLOCK_BYTES, 0)  # no Gram form: these few long rows would take it
    feats = np.unique(X[rows].indices).astype(np.int64)
    loc = _tree_kernels._frequency_order(X.indptr, X.indices, rows, feats, X.shape[1])
    W = np.zeros((feats.size, m), np.float32)
    wb, it = np.zeros(m), np.zeros(m, np.int64)
    _dcd.sq_hinge_block(X.indptr, X.indices, X.data, sq, rows, loc, tgt_indptr, tgt_indices,
                        np.full(wb.size, 0.7), 1.0, 0.05, 15, seeds[0], W, wb, it)
    assert np.array_equal(bias_w, wb) and np.array_equal(n_iter, it)
    ref_f, ref_v, ref_c = [], [], []
    for j in range(m):
        col = W[loc[feats], j]
        keep = (col != 0) & (np.abs(col) >= threshold)
        ref_f += feats[keep].tolist()
        ref_v += col[keep].tolist()
        ref_c.append(int(keep.sum()))
    assert counts.tolist() == ref_c and feat.tolist() == ref_f
    assert vals.dtype == np.float32 and np.array_equal(vals, np.array(ref_v, np.float32))
    assert 0 < len(ref_f) and (threshold == 0.0 or len(ref_f) < W.size)


def test_prefetch_hint_compiles_for_any_entry_and_changes_nothing():
    """``_dcd._prefetch`` (the block's hint for the next row's weight rows) compiles for
    float32 and float64 arrays and int32 / int64 indices, accepts every entry, the last
    one included, and leaves the array as it was."""
    from numba import njit

    @njit
    def touch_all(A, rid):
        s = 0.0
        for r in rid:
            for c in range(A.shape[1]):
                _dcd._prefetch(A, r, c)
                s += A[r, c]
        return s

    for dtype, idx in ((np.float32, np.int32), (np.float64, np.int64)):
        A = np.arange(5 * 37, dtype=dtype).reshape(5, 37)
        before = A.copy()
        rid = np.array([4, 0, 2], idx)
        assert touch_all(A, rid) == before[rid].sum()
        assert np.array_equal(A, before)


def test_frequency_order_numbers_features_by_descending_count():
    X = sp.csr_matrix(np.array([[1, 0, 2, 0, 3], [0, 0, 1, 0, 1], [4, 0, 0, 0, 1]],
                               np.float32))
    rows = np.array([0, 1, 2], np.int64)
    feats = np.array([0, 2, 4], np.int64)
    loc = _tree_kernels._frequency_order(X.indptr, X.indices, rows, feats, 5)
    # counts: feature 4 three times, 0 and 2 twice each (ties by id)
    assert loc[4] == 0 and loc[0] == 1 and loc[2] == 2


def test_label_tree_on_long_rows_same_model_either_solver(monkeypatch):
    """A whole LabelTree fit on long rows: the kernel form (default) and the plain solver
    (GRAM_BYTES = 0) give the same top-3 predictions and near weights."""
    X, Y = long_rows(n=90, L=5, seed=3)
    a = LabelTree(n_threads=2, tol=1e-6, max_iter=2000, random_state=0).fit(X, Y)
    monkeypatch.setattr(_tree_kernels, "GRAM_BYTES", 0)
    b = LabelTree(n_threads=2, tol=1e-6, max_iter=2000, random_state=0).fit(X, Y)
    Sa, Sb = a.decision_function(X, k=3), b.decision_function(X, k=3)
    assert np.array_equal(Sa.indices, Sb.indices)
    np.testing.assert_allclose(Sa.data, Sb.data, atol=1e-4)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=1e-4)


def test_blocks_too_big_are_cut_into_blocks_that_fit(monkeypatch):
    """A node whose lockstep block passes BLOCK_BYTES is cut into the fewest pieces that fit,
    each solved as a block (not one by one); the cut does not depend on n_threads, and the
    pieces reach the optimum the one-by-one solver reaches."""
    from test_models_tree import clustered_data, dense_weights

    X, Y = clustered_data(n=200, L=24)
    Xn = _tree_build.l2_normalize_rows(X)
    root = _tree_build.training_tasks(
        sp.csc_matrix(Y), _tree_build.build_tree(
            _tree_build.label_representations(Xn, sp.csc_matrix(Y)), branching=2,
            max_leaf_size=30, cluster_iters=3, seed=0), tree=0, clf_offset=0, seed=0)
    assert len(root) == 1 and root[0].seeds.shape[0] == 24
    nf = _tree_kernels.count_row_features(Xn.indptr, Xn.indices, root[0].rows, Xn.shape[1])
    per = (nf + 200) * 8
    hinge = _dcd.LOSS_SQUARED_HINGE
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", per * 10)  # 10 classifiers a block
    assert _tree_build.block_pieces(Xn, root[0], hinge) == 3
    assert _tree_build.block_pieces(Xn, root[0], _dcd.LOSS_LOGISTIC) == 0
    for threads in (1, 2):
        pieces = _tree_build.split_tasks(Xn, root, loss=hinge, n_threads=threads)
        assert [p.seeds.shape[0] for p in pieces] == [8, 8, 8]  # ceil(24 / 10) = 3 pieces
        assert all(p.block and _tree_build.uses_block(Xn, p, hinge) for p in pieces)
        assert np.array_equal(np.concatenate([p.seeds for p in pieces]), root[0].seeds)
        assert [p.clf_start for p in pieces] == [0, 8, 16]
    # a block that would not fit even for two classifiers is left to the one-by-one solver
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", 2 * per - 1)
    assert _tree_build.block_pieces(Xn, root[0], hinge) == 0
    # few long rows go to the kernel form instead
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", per * 10)
    monkeypatch.setattr(_tree_kernels, "uses_gram", lambda n, nnz, b: True)
    assert _tree_build.block_pieces(Xn, root[0], hinge) == 0
    monkeypatch.undo()
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", per * 10)
    kw = dict(max_leaf_size=30, random_state=3)
    a = LabelTree(n_threads=1, **kw).fit(X, Y)
    b = LabelTree(n_threads=2, **kw).fit(X, Y)
    sa, _ = a._get_state()
    sb, _ = b._get_state()
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", 0)
    c = LabelTree(n_threads=1, tol=1e-4, max_iter=500, prune_threshold=0.0, **kw).fit(X, Y)
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", per * 10)
    d = LabelTree(n_threads=1, tol=1e-4, max_iter=500, prune_threshold=0.0, **kw).fit(X, Y)
    np.testing.assert_allclose(d.intercept_, c.intercept_, atol=2e-3)
    np.testing.assert_allclose(dense_weights(d), dense_weights(c), atol=2e-3)


def test_pieces_of_a_gram_node_share_one_matrix(monkeypatch):
    """A root on few long rows (too big for a block) is cut over two threads; its Gram
    matrix is built once and shared, and the model is bit for bit the one-thread model
    (which builds it in train_node) and the model of pieces that each build their own."""
    X, Y = long_rows(n=90, L=6, seed=4)
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", 0)  # no lockstep block
    built = []
    real = _tree_build.gram_matrix

    def spy(X, task, bias, n_threads=1):
        built.append(task.node)
        return real(X, task, bias, n_threads)

    monkeypatch.setattr(_tree_build, "gram_matrix", spy)
    two = LabelTree(n_threads=2, random_state=0).fit(X, Y)
    assert built == [0]
    one = LabelTree(n_threads=1, random_state=0).fit(X, Y)
    assert built == [0]  # one piece: nothing shared, train_node builds its own
    monkeypatch.setattr(_tree_build, "uses_gram", lambda X, task, loss: False)
    own = LabelTree(n_threads=2, random_state=0).fit(X, Y)
    assert built == [0]
    s2, _ = two._get_state()
    for other in (one, own):
        s, _ = other._get_state()
        for key in s2:
            assert np.array_equal(s2[key], s[key]), key
