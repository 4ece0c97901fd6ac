"""OneVsRest's lockstep blocks (labelwise.models.ovr.lockstep_width, _dcd.train_chunk_lockstep):
every label reaches its own optimum (against scipy's L-BFGS on the primal and the label by
label solver), a label's weights do not depend on which labels share its block or thread,
the warm start solves the proximal problem, and the rule picks the block where it serves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize

from labelwise.models import OneVsRest, _dcd
from labelwise.models.ovr import (
    LOCKSTEP_BYTES,
    LOCKSTEP_MIN,
    fit_linear,
    fit_linear_from,
    lockstep_width,
    train_label_block,
)


def problem(seed=0, n=90, d=14, L=11, dense=False):
    rng = np.random.default_rng(seed)
    if dense:
        X = sp.csr_matrix(rng.standard_normal((n, d)).astype(np.float32))
    else:
        X = sp.random(n, d, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    S = X @ rng.standard_normal((d, L)) + 0.3 * rng.standard_normal((n, L))
    Y = (S > np.quantile(S, 0.7, axis=0)).astype(np.float32)
    return X, sp.csr_matrix(Y)


def optimum(X, y, C, c=None, loss="squared_hinge"):
    """argmin 0.5 |w - c|^2 + C sum loss(y w.[x, 1]) by L-BFGS (w has d + 1 entries)."""
    Xa = np.c_[X.toarray().astype(np.float64), np.ones(X.shape[0])]
    c = np.zeros(Xa.shape[1]) if c is None else c

    def fg(w):
        m = y * (Xa @ w)
        if loss == "logistic":
            s = 1.0 / (1.0 + np.exp(m))
            return (0.5 * (w - c) @ (w - c) + C * np.logaddexp(0.0, -m).sum(),
                    (w - c) - C * Xa.T @ (y * s))
        r = np.maximum(0.0, 1.0 - m)
        return 0.5 * (w - c) @ (w - c) + C * (r ** 2).sum(), (w - c) - 2 * C * Xa.T @ (y * r)

    return minimize(fg, c.copy(), jac=True, method="L-BFGS-B",
                    options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 20000}).x


def as_dense(result):
    coef, intercept, n_iter = result
    return np.r_[coef.toarray(), intercept[None, :]], n_iter


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
@pytest.mark.parametrize("dense", [False, True])
def test_each_label_reaches_its_optimum(dense, loss):
    X, Y = problem(1, dense=dense)
    C = 0.8
    kw = dict(loss=loss, C=C, tol=1e-9, max_iter=100000, prune_threshold=0.0)
    got, n_iter = as_dense(fit_linear(X, Y, lockstep=True, **kw))
    single, _ = as_dense(fit_linear(X, Y, lockstep=False, **kw))
    assert np.all(n_iter < 100000)
    for j in range(Y.shape[1]):
        y = 2.0 * Y[:, j].toarray().ravel() - 1.0
        ref = optimum(X, y, C, loss=loss)
        np.testing.assert_allclose(got[:, j], ref, atol=2e-4 * max(1.0, np.abs(ref).max()))
    # the label by label solver, to its own rounding (its weights are float64 until the end)
    np.testing.assert_allclose(got, single, atol=2e-4)


def test_a_labels_weights_do_not_depend_on_its_block_or_thread():
    X, Y = problem(2, n=70, d=20, L=41)
    kw = dict(C=0.5, tol=0.1, prune_threshold=0.05, seed=9, lockstep=True)
    one = fit_linear(X, Y, n_threads=1, **kw)
    two = fit_linear(X, Y, n_threads=2, **kw)
    for a, b in zip(one, two, strict=True):
        a, b = (a.toarray(), b.toarray()) if sp.issparse(a) else (a, b)
        assert np.array_equal(a, b)
    # any split into blocks (as Dask tasks make): label 7 alone, with 3 others, among 30
    Yc = sp.csc_matrix(Y)
    Yc.sort_indices()
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    data = (X, sq, Yc.indptr.astype(np.int64), Yc.indices.astype(np.int64))
    params = (_dcd.LOSS_SQUARED_HINGE, 0.5, 1.0, 0.1, 1000, 0.05, 9, X.shape[1], 4)
    W1 = one[0].toarray()
    for labels in ([7], [5, 6, 7, 8], list(range(30))):
        counts, feat, vals, bias_w, _ = train_label_block(data, np.array(labels), params)
        start = np.r_[0, np.cumsum(counts)]
        at = labels.index(7)
        w = np.zeros(X.shape[1], np.float32)
        w[feat[start[at]:start[at + 1]]] = vals[start[at]:start[at + 1]]
        assert np.array_equal(w, W1[:, 7]) and np.float32(bias_w[at]) == one[1][7]


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_warm_start_in_lockstep_solves_the_proximal_problem(loss):
    X, Y = problem(3, n=60, d=8, L=9)
    rng = np.random.default_rng(4)
    L = Y.shape[1]
    centre = sp.csr_matrix(rng.standard_normal((8, L)))
    cb = rng.standard_normal(L)
    C = rng.uniform(0.3, 2.0, L)
    W, b, _ = fit_linear_from(X, Y, centre, cb, C, loss=loss, tol=1e-10, max_iter=100000,
                              prune_threshold=0.0, n_threads=2, lockstep=True)
    for j in range(L):
        y = 2.0 * Y[:, j].toarray().ravel() - 1.0
        ref = optimum(X, y, C[j], np.r_[centre[:, j].toarray().ravel(), cb[j]], loss=loss)
        got = np.r_[W[:, j].toarray().ravel(), b[j]]
        np.testing.assert_allclose(got, ref, atol=3e-4 * max(1.0, np.abs(ref).max()))
    # a zero centre at fit_linear's C is fit_linear, bit for bit (the same rule chooses)
    plain = fit_linear(X, Y, loss=loss, C=0.7, seed=4, max_iter=50)
    zero = fit_linear_from(X, Y, sp.csr_matrix((8, L)), np.zeros(L), np.full(L, 0.7), loss=loss,
                           seed=4, max_iter=50)
    assert lockstep_width(loss, *X.shape, L) > 0
    for p, z in zip(plain, zero, strict=True):
        p, z = (p.toarray(), z.toarray()) if sp.issparse(p) else (p, z)
        assert np.array_equal(p, z)


def test_the_rule():
    assert lockstep_width("squared_hinge", 1500, 103, 14) == 14  # yeast: one block
    assert lockstep_width("squared_hinge", 4880, 1836, 159) == 64  # bibtex: blocks of 64
    assert lockstep_width("squared_hinge", 1211, 294, 6) == 0  # scene: too few labels
    assert lockstep_width("squared_hinge", 100, 10, LOCKSTEP_MIN) == LOCKSTEP_MIN
    assert lockstep_width("logistic", 1500, 103, 14) == 14
    n = LOCKSTEP_BYTES // (9 * LOCKSTEP_MIN) + 1  # 8 labels' duals alone exceed the budget
    assert lockstep_width("squared_hinge", n, 10, 50) == 0
    from labelwise.models.ovr import _pieces

    labels = np.arange(164, dtype=np.int64)  # yeast's label sets: as many blocks a thread
    assert [p.size for p in _pieces(labels, 64, 2, "logistic")] == [41] * 4
    assert [p.size for p in _pieces(labels[:20], 20, 2, "squared_hinge")] == [20]
    assert [p.size for p in _pieces(labels[:20], 20, 2, "logistic")] == [10, 10]
    assert [p.size for p in _pieces(labels[:100], 0, 2, "squared_hinge")] == [13] * 7 + [9]
    n = LOCKSTEP_BYTES // (17 * LOCKSTEP_MIN) + 1  # a logistic dual is a pair
    assert lockstep_width("squared_hinge", n, 10, 50) > 0 == lockstep_width("logistic", n, 10, 50)


def test_one_vs_rest_uses_the_block_by_the_rule(monkeypatch):
    calls = []
    real = _dcd.train_chunk_lockstep

    def spy(*args):
        calls.append(args[6].size)
        return real(*args)

    monkeypatch.setattr(_dcd, "train_chunk_lockstep", spy)
    X, Y = problem(5, L=20)
    OneVsRest(n_threads=2).fit(X, Y)
    assert calls == [20]  # one block: two of 10 would leave the SIMD lanes idle
    calls.clear()
    X, Y = problem(5, L=40)
    OneVsRest(n_threads=2).fit(X, Y)
    assert calls == [20, 20]  # one block a thread
    calls.clear()
    OneVsRest(n_threads=2, loss="logistic").fit(X, Y)
    assert calls == [20, 20]
    calls.clear()
    X, Y = problem(5, L=6)
    OneVsRest(n_threads=2).fit(X, Y)
    assert calls == []  # label by label
