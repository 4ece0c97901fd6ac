"""The primal Newton solver for dense features (labelwise.models._newton): every label
reaches its own optimum (against scipy's L-BFGS on the primal), in float32 and float64 inner
arrays, with a mask (a chain's positions) and from a centre (the warm start); a label's
result does not depend on the labels beside it; the rule sends dense features to it and
sparse ones to the DCD; and the families' batched calls give what their one-by-one calls
give."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.models import ClassifierChain, OneVsRest, RAkEL, _newton
from labelwise.models._learners import (
    _fit_linear_alone,
    fit_binary,
    fit_chain_linear,
    fit_multiclass,
    fit_multiclass_many,
)
from labelwise.models._newton import newton_fit, uses_newton
from labelwise.models.ovr import LOCKSTEP_MAX, fit_linear, fit_linear_from
from test_ovr_lockstep import optimum as lbfgs_optimum


def problem(seed=0, n=150, d=12, L=7):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    S = X @ rng.standard_normal((d, L)) + 0.5 * rng.standard_normal((n, L))
    q = rng.uniform(0.5, 0.9, L)
    Y = S > np.array([np.quantile(S[:, j], q[j]) for j in range(L)])
    return X, Y


def optimum(Xa, y, C, loss, c=None, use=None):
    """argmin 0.5 |w - c|^2 + C sum loss(y w.x) over the columns ``use`` of ``Xa`` (its
    last column the bias, always used), by test_ovr_lockstep's L-BFGS reference."""
    d = Xa.shape[1] - 1
    use = np.arange(d + 1) if use is None else np.asarray(use)
    assert use[-1] == d
    w = lbfgs_optimum(sp.csr_matrix(Xa[:, use[:-1]]), y, C,
                      None if c is None else np.asarray(c)[use], loss=loss)
    out = np.zeros(d + 1)
    out[use] = w
    return out


def with_bias(X):
    return np.c_[X, np.ones(X.shape[0])]


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_each_label_reaches_its_optimum(loss):
    X, Y = problem(1)
    Xa = with_bias(X)
    C = np.linspace(0.3, 2.0, Y.shape[1])
    W, n_iter = newton_fit(Xa, Y, C, loss, 1e-9, 1000)
    assert np.all(n_iter < 1000)
    for j in range(Y.shape[1]):
        ref = optimum(Xa, 2.0 * Y[:, j] - 1.0, C[j], loss)
        np.testing.assert_allclose(W[:, j], ref, atol=1e-5 * max(1.0, np.abs(ref).max()))


def objective(Xa, Y, W, C, loss):
    M = np.where(Y, 1.0, -1.0) * (Xa @ W)
    terms = np.maximum(0, 1 - M) ** 2 if loss == "squared_hinge" else np.logaddexp(0, -M)
    return 0.5 * (W * W).sum(0) + C * terms.sum(0)


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_float32_inner_arrays_at_the_default_tolerance_reach_the_optimum_closely(loss):
    X, Y = problem(2, n=400, d=30, L=9)
    Xa = with_bias(X / np.linalg.norm(X, axis=1, keepdims=True))
    C = np.full(Y.shape[1], 0.5)
    assert _newton.FLOAT32_TOL <= 0.1
    W, _ = newton_fit(Xa, Y, C, loss, 0.1, 1000)
    best = np.stack([optimum(Xa, 2.0 * Y[:, j] - 1.0, C[j], loss)
                     for j in range(Y.shape[1])], axis=1)
    got, low = objective(Xa, Y, W, C, loss), objective(Xa, Y, best, C, loss)
    assert np.all(got >= low * (1 - 1e-9)) and np.all(got <= low * (1 + 1e-3))


def test_a_mask_solves_each_label_on_its_own_features():
    X, Y = problem(3, d=10, L=5)
    Xa = with_bias(X)
    mask = np.zeros((11, 5), bool)
    uses = [np.r_[np.arange(4 + j), 10] for j in range(5)]  # a chain: more features each
    for j, u in enumerate(uses):
        mask[u, j] = True
    W, _ = newton_fit(Xa, Y, np.full(5, 0.9), "logistic", 1e-9, 1000, mask)
    for j, u in enumerate(uses):
        ref = optimum(Xa, 2.0 * Y[:, j] - 1.0, 0.9, "logistic", use=u)
        assert np.all(W[~mask[:, j], j] == 0.0)
        np.testing.assert_allclose(W[:, j], ref, atol=1e-5 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_a_labels_result_does_not_depend_on_the_labels_beside_it(loss):
    X, Y = problem(4, L=9)
    Xa = with_bias(X)
    C = np.full(9, 0.7)
    for tol in (0.1, 1e-6):  # float32 and float64 inner arrays
        W, it = newton_fit(Xa, Y, C, loss, tol, 1000)
        for cols in ([4], [2, 4, 8]):
            Ws, its = newton_fit(Xa, Y[:, cols], C[cols], loss, tol, 1000)
            assert np.array_equal(its, it[cols])
            np.testing.assert_allclose(Ws, W[:, cols], rtol=1e-5, atol=1e-6)


def test_a_step_that_no_longer_moves_the_weights_stops_the_label():
    X, Y = problem(5)
    # a tolerance no float reaches: the labels stop when their steps vanish, long before
    # max_iter
    W, n_iter = newton_fit(with_bias(X), Y, np.full(Y.shape[1], 1.0), "squared_hinge", 1e-30,
                           10000)
    assert np.all(n_iter < 200)
    assert np.all(np.isfinite(W))


def test_the_rule_sends_dense_features_to_newton_and_sparse_ones_to_the_dcd(monkeypatch):
    for loss in ("squared_hinge", "logistic"):
        assert uses_newton(90 * 10, 90, 10, 5, loss) and uses_newton(50 * 10, 90, 10, 5, loss)
        assert not uses_newton(40 * 10, 90, 10, 5, loss)  # under half the values stored
        assert not uses_newton(90 * 10, 90, 10, 0, loss) and not uses_newton(0, 0, 10, 5, loss)
        n = _newton.NEWTON_BYTES // (12 * 2 + _newton.NEWTON_ROW_BYTES) + 1  # must fit
        assert not uses_newton(n, n, 1, 1, loss) and uses_newton(n - 1, n - 1, 1, 1, loss)
    # the squared hinge's DCD is faster from a full lockstep block of labels
    assert _newton.SQUARED_HINGE_LABELS == LOCKSTEP_MAX
    assert uses_newton(900, 90, 10, 63, "squared_hinge")
    assert not uses_newton(900, 90, 10, 64, "squared_hinge")
    assert uses_newton(900, 90, 10, 500, "logistic")
    calls = []
    real = _newton.newton_fit
    monkeypatch.setattr("labelwise.models.ovr.newton_fit",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    X, Y = problem(6)
    OneVsRest().fit(X, Y.astype(np.float32))
    assert calls == [1]
    Xs = sp.random(150, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
    OneVsRest().fit(Xs, Y.astype(np.float32))
    assert calls == [1]


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_fit_linear_by_newton_equals_the_dcd_to_the_tolerance(loss):
    X, Y = problem(7, L=9)
    Xc = sp.csr_matrix(X.astype(np.float32))
    Ys = sp.csr_matrix(Y.astype(np.float32))
    kw = dict(loss=loss, C=0.6, tol=1e-8, max_iter=100000, prune_threshold=0.0)
    newton = fit_linear(Xc, Ys, **kw)
    dcd = fit_linear(Xc, Ys, lockstep=False, **kw)
    np.testing.assert_allclose(newton[0].toarray(), dcd[0].toarray(), atol=1e-4)
    np.testing.assert_allclose(newton[1], dcd[1], atol=1e-4)
    # pruning as the DCD path prunes: float32, |w| < threshold dropped, the bias kept
    pruned = fit_linear(Xc, Ys, loss=loss, C=0.6, prune_threshold=0.2)
    assert pruned[0].dtype == np.float32
    assert np.all(np.abs(pruned[0].data) >= 0.2)


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_the_warm_start_by_newton_solves_the_proximal_problem(loss):
    X, Y = problem(8, L=6)
    rng = np.random.default_rng(8)
    d, L = X.shape[1], Y.shape[1]
    centre = rng.standard_normal((d, L))
    cb = rng.standard_normal(L)
    C = rng.uniform(0.3, 2.0, L)
    Xc = sp.csr_matrix(X.astype(np.float32))
    W, b, _ = fit_linear_from(Xc, sp.csr_matrix(Y.astype(np.float32)), sp.csr_matrix(centre),
                              cb, C, loss=loss, tol=1e-9, max_iter=100000, prune_threshold=0.0)
    Xa = with_bias(Xc.toarray().astype(np.float64))
    for j in range(L):
        ref = optimum(Xa, 2.0 * Y[:, j] - 1.0, C[j], loss, c=np.r_[centre[:, j], cb[j]])
        got = np.r_[W[:, j].toarray().ravel(), b[j]]
        np.testing.assert_allclose(got, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
    # a zero centre at fit_linear's C is fit_linear (the same solver, the same rule)
    plain = fit_linear(Xc, sp.csr_matrix(Y.astype(np.float32)), loss=loss, C=0.7)
    zero = fit_linear_from(Xc, sp.csr_matrix(Y.astype(np.float32)), sp.csr_matrix((d, L)),
                           np.zeros(L), np.full(L, 0.7), loss=loss)
    for p, z in zip(plain, zero, strict=True):
        p, z = (p.toarray(), z.toarray()) if sp.issparse(p) else (p, z)
        assert np.array_equal(p, z)


def test_a_chains_positions_in_one_call_are_its_positions_one_by_one():
    X, Y = problem(9, d=10, L=6)
    Y[:, 3] = True  # one position with one class: the constant
    XA = sp.csr_matrix(np.c_[X, Y].astype(np.float32))
    batch = fit_chain_linear(XA, Y, 10, 0.8)
    for p in range(6):
        alone = fit_binary(XA[:, :10 + p], Y[:, p], "linear", C=0.8, seed=0)
        assert batch[p][0].shape == (10 + p,)
        np.testing.assert_allclose(batch[p][0], alone[0], rtol=1e-4, atol=1e-5)
        assert batch[p][1] == pytest.approx(alone[1], rel=1e-4, abs=1e-5)
    sparse = sp.random(150, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
    assert fit_chain_linear(sparse, Y, 40, 0.8) is None  # one position at a time, by the DCD


def test_rakels_labelsets_in_one_call_are_its_labelsets_one_by_one():
    X, Y = problem(10, d=10, L=6)
    Xc = sp.csr_matrix(X.astype(np.float32))
    problems = []
    for cols in ([0, 1, 2], [3, 4], [5]):
        _, c = np.unique(Y[:, cols], axis=0, return_inverse=True)
        problems.append((np.asarray(c).ravel().astype(np.int64), int(c.max()) + 1))
    problems.append((np.zeros(150, np.int64), 1))  # one class: the constant
    many = fit_multiclass_many(Xc, problems, 1.3)
    for (c, k), (kind, learner) in zip(problems, many, strict=True):
        ref_kind, ref = fit_multiclass(Xc, c, k, "linear", C=1.3, seed=0, n_threads=1)
        assert kind == ref_kind
        if kind == "sigmoid":
            np.testing.assert_allclose(learner[0], ref[0], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(learner[1], ref[1], rtol=1e-4, atol=1e-5)


def test_the_families_fit_by_newton_on_dense_features():
    X, Y = problem(11, d=10, L=6)
    for model in (ClassifierChain(), RAkEL(k=2)):
        P = model.fit(X, Y.astype(np.float32)).predict_proba(X, k=6).toarray()
        assert P.shape == (150, 6) and np.all((P >= 0) & (P <= 1))
    # a small labelset's classes alone (one thread) go to Newton too
    yp = np.flatnonzero(Y[:, 0]).astype(np.int64)
    W, b = _fit_linear_alone(sp.csr_matrix(X.astype(np.float32)), np.array([0, yp.size]), yp,
                             1.0, 0)
    assert W.shape == (10, 1) and np.isfinite(b).all()


@pytest.mark.parametrize("tol", [0.1, 0.001])  # float32 and float64 inner arrays
def test_the_memory_estimate_covers_a_newton_fit(tol):
    import tracemalloc

    X, Y = problem(12, n=3000, d=40, L=30)
    model = OneVsRest(memory_limit=None, tol=tol)
    Ys = sp.csr_matrix(Y.astype(np.float32))
    assert uses_newton(X.size, 3000, 40, 30, "squared_hinge")
    tracemalloc.start()
    model.fit(X, Ys)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= model.estimate_memory(X, Ys)


@pytest.mark.parametrize("bias", [0.0, 1.0, 1.7])
def test_row_sq_norms_in_numpy_are_the_kernels_numbers(bias, monkeypatch):
    from labelwise.models import _dcd, ovr

    rng = np.random.default_rng(13)
    X = sp.random(300, 50, density=0.1, format="csr", random_state=2, dtype=np.float32)
    X.data = (rng.standard_normal(X.nnz) * 10 ** rng.uniform(-3, 3, X.nnz)).astype(np.float32)
    X = sp.csr_matrix(X.toarray() * (np.arange(300) % 7 != 0)[:, None])  # empty rows too
    ref = _dcd.row_sq_norms(X.indptr, X.data, bias)
    got = ovr.row_sq_norms(X, bias)
    assert got.dtype == np.float64 and np.array_equal(got, ref)
    monkeypatch.setattr(ovr, "NUMPY_NORMALIZE_MAX", 0)  # above the bound: the kernel
    assert np.array_equal(ovr.row_sq_norms(X, bias), ref)
