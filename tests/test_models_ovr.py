"""OneVsRest and its kernels: DCD against a plain-Python solver, scipy and liblinear; top-k
kernels against plain-Python references; pruning, warnings, memory guard, real-data sanity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

import labelwise.models as models
from labelwise.errors import ResourceLimitError
from labelwise.models import OneVsRest, _dcd, linear_topk, topk_csr, topk_dense

# ---------------------------------------------------------------------------- references


def primal(w, X, y, C, bias, loss):
    """0.5 |w|^2 + C sum loss(y_i w.[x_i, bias]); w has n_features + 1 entries."""
    m = y * (X @ w[:-1] + bias * w[-1])
    if loss == "squared_hinge":
        losses = np.maximum(0.0, 1.0 - m) ** 2
    else:
        losses = np.logaddexp(0.0, -m)
    return 0.5 * w @ w + C * losses.sum()


def primal_optimum(X, y, C, bias, loss):
    """The primal minimiser by scipy's L-BFGS on the explicit objective and gradient."""
    Xa = np.hstack([X, np.full((X.shape[0], 1), bias)])

    def fg(w):
        m = y * (Xa @ w)
        if loss == "squared_hinge":
            r = np.maximum(0.0, 1.0 - m)
            return 0.5 * w @ w + C * (r**2).sum(), w - 2 * C * Xa.T @ (y * r)
        s = 1.0 / (1.0 + np.exp(m))
        return 0.5 * w @ w + C * np.logaddexp(0.0, -m).sum(), w - C * Xa.T @ (y * s)

    res = minimize(fg, np.zeros(Xa.shape[1]), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 20000})
    return res.x


def plain_dcd_squared_hinge(X, y, C, bias, tol=1e-10, max_epochs=5000):
    """Hsieh et al. 2008 dual CD for the L2-loss SVM, rows in order, no shrinking."""
    n, d = X.shape
    Xa = [list(X[i]) + [bias] for i in range(n)]
    w = [0.0] * (d + 1)
    alpha = [0.0] * n
    diag = 0.5 / C
    for _ in range(max_epochs):
        pg_max, pg_min = -np.inf, np.inf
        for i in range(n):
            g = y[i] * sum(wj * xj for wj, xj in zip(w, Xa[i])) - 1.0 + diag * alpha[i]
            pg = min(g, 0.0) if alpha[i] == 0.0 else g
            pg_max, pg_min = max(pg_max, pg), min(pg_min, pg)
            new = max(alpha[i] - g / (sum(x * x for x in Xa[i]) + diag), 0.0)
            step = (new - alpha[i]) * y[i]
            alpha[i] = new
            w = [wj + step * xj for wj, xj in zip(w, Xa[i])]
        if pg_max - pg_min <= tol:
            break
    return np.array(w), np.array(alpha)


def dual_squared_hinge(alpha, X, y, C, bias):
    """Dual objective (to minimise): 0.5 a'Qa - sum a + sum a^2 / (4C)."""
    Xa = np.hstack([X, np.full((X.shape[0], 1), bias)])
    v = Xa.T @ (alpha * y)
    return 0.5 * v @ v - alpha.sum() + (alpha**2).sum() / (4 * C)


def dual_logistic(alpha, X, y, C, bias):
    """Dual objective (to minimise): 0.5 a'Qa + sum a log a + (C - a) log(C - a)."""
    Xa = np.hstack([X, np.full((X.shape[0], 1), bias)])
    v = Xa.T @ (alpha * y)
    return 0.5 * v @ v + np.sum(alpha * np.log(alpha) + (C - alpha) * np.log(C - alpha))


def binary_problem(seed, n=60, d=8, density=0.6):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * (rng.random((n, d)) < density)).astype(np.float32)
    y = np.where(X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0.1, 1.0, -1.0)
    return X, y


def numba_solve(X, y, loss, C, bias, tol=1e-9, seed=1, max_iter=100000):
    Xs = sp.csr_matrix(X)
    sq = _dcd.row_sq_norms(Xs.indptr, Xs.data, bias)
    code = _dcd.LOSS_SQUARED_HINGE if loss == "squared_hinge" else _dcd.LOSS_LOGISTIC
    return _dcd.dcd_solve(Xs.indptr, Xs.indices, Xs.data, sq, y, code, C, bias, tol, max_iter,
                          seed, X.shape[1])


# ---------------------------------------------------------------------------- DCD solver


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_dcd_full_rows_read_in_order_solve_exactly_as_through_their_indices(loss):
    """A row storing every feature (dense X) is read without its index array; the same
    problem with one more, empty, feature column (so no row is full) takes the index path:
    the solutions are equal bit for bit (same operations in the same order)."""
    X, y = binary_problem(7, n=50, d=6, density=0.6)
    X[::3] = np.where(X[::3] == 0, 0.25, X[::3])  # every third row full
    wide = np.hstack([X, np.zeros((X.shape[0], 1), np.float32)])
    assert (sp.csr_matrix(X).getnnz(axis=1) == X.shape[1]).sum() >= 17
    w, alpha, it = numba_solve(X, y, loss, 1.0, 1.0, tol=1e-3)
    w_wide, alpha_wide, it_wide = numba_solve(wide, y, loss, 1.0, 1.0, tol=1e-3)
    assert it == it_wide
    assert np.array_equal(alpha, alpha_wide)
    assert np.array_equal(w[:-1], w_wide[:-2]) and w_wide[-2] == 0.0 and w[-1] == w_wide[-1]


@pytest.mark.parametrize("seed,C,bias", [(0, 1.0, 1.0), (1, 0.1, 1.0), (2, 10.0, 0.5),
                                         (3, 1.0, 0.0)])
def test_dcd_squared_hinge_matches_plain_python(seed, C, bias):
    X, y = binary_problem(seed, n=40, d=6)
    w, alpha, _ = numba_solve(X, y, "squared_hinge", C, bias)
    w_ref, alpha_ref = plain_dcd_squared_hinge(X.astype(np.float64), y, C, bias)
    np.testing.assert_allclose(w, w_ref, atol=1e-6)
    np.testing.assert_allclose(alpha, alpha_ref, atol=1e-6)
    # w = sum a_i y_i [x_i, bias]; strong duality P(w*) = -D(a*)
    Xa = np.hstack([X, np.full((X.shape[0], 1), bias)])
    np.testing.assert_allclose(w, Xa.T @ (alpha * y), atol=1e-9)
    p = primal(w, X, y, C, bias, "squared_hinge")
    assert abs(p + dual_squared_hinge(alpha, X, y, C, bias)) <= 1e-6 * abs(p)


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
@pytest.mark.parametrize("seed,C,bias", [(0, 1.0, 1.0), (4, 0.05, 1.0), (5, 20.0, 2.0)])
def test_dcd_reaches_primal_optimum(loss, seed, C, bias):
    X, y = binary_problem(seed)
    w, alpha, n_iter = numba_solve(X, y, loss, C, bias, tol=1e-8)
    assert n_iter < 100000
    w_opt = primal_optimum(X.astype(np.float64), y, C, bias, loss)
    p, p_opt = primal(w, X, y, C, bias, loss), primal(w_opt, X, y, C, bias, loss)
    assert p <= p_opt * (1 + 1e-6) + 1e-9
    np.testing.assert_allclose(w, w_opt, atol=1e-4 * max(1.0, np.abs(w_opt).max()))
    dual = dual_squared_hinge if loss == "squared_hinge" else dual_logistic
    constant = 0.0 if loss == "squared_hinge" else len(y) * C * np.log(C)
    gap = p + dual(alpha, X, y, C, bias) - constant
    assert -1e-8 * p <= gap <= 1e-5 * p, f"duality gap {gap}"


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_dcd_default_tolerance_within_1e3_of_optimum(loss):
    X, y = binary_problem(6, n=200, d=20)
    w, _, _ = numba_solve(X, y, loss, 1.0, 1.0, tol=0.1)
    w_opt = primal_optimum(X.astype(np.float64), y, 1.0, 1.0, loss)
    p, p_opt = primal(w, X, y, 1.0, 1.0, loss), primal(w_opt, X, y, 1.0, 1.0, loss)
    assert p_opt <= p * (1 + 1e-9) and p <= p_opt * (1 + 1e-3)


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_dcd_matches_liblinear(loss):
    X, y = binary_problem(7, n=120, d=10)
    C, bias = 0.7, 1.5
    w, _, _ = numba_solve(X, y, loss, C, bias, tol=1e-10)
    common = dict(C=C, tol=1e-10, max_iter=1000000, intercept_scaling=bias, random_state=0)
    if loss == "squared_hinge":
        ref = LinearSVC(loss="squared_hinge", dual=True, **common)
    else:
        ref = LogisticRegression(solver="liblinear", dual=True, **common)
    ref.fit(X.astype(np.float64), y)
    w_lib = np.r_[ref.coef_.ravel(), ref.intercept_ / bias]
    np.testing.assert_allclose(w, w_lib, atol=1e-6)
    p, p_lib = primal(w, X, y, C, bias, loss), primal(w_lib, X, y, C, bias, loss)
    assert abs(p - p_lib) <= 1e-9 * p_lib
    # the whole OneVsRest path gives the same weights (no pruning)
    model = OneVsRest(loss=loss, C=C, bias=bias, tol=1e-10, max_iter=1000000,
                      prune_threshold=0.0, normalize=None).fit(
                          X, (y > 0)[:, None].astype(np.float32))
    np.testing.assert_allclose(model.coef_.toarray().ravel(), ref.coef_.ravel(), atol=1e-5)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, atol=1e-5)
    if loss == "logistic":
        P = model.predict_proba(X, k=1).toarray().ravel()
        np.testing.assert_allclose(P, ref.predict_proba(X.astype(np.float64))[:, 1], atol=1e-5)


# ---------------------------------------------------------------------------- top-k kernels


def ref_topk(S: np.ndarray, k: int) -> list[list[int]]:
    """Plain Python: the ids of the k best scores per row, ties to the lower id, ids sorted."""
    out = []
    for row in S.tolist():
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        out.append(sorted(order))
    return out


def assert_topk(T: sp.csr_matrix, S: np.ndarray, k: int) -> None:
    expect = ref_topk(S, k)
    assert T.shape == S.shape
    for i, ids in enumerate(expect):
        got = T.indices[T.indptr[i]:T.indptr[i + 1]].tolist()
        assert got == ids, f"row {i}: {got} != {ids}"
        np.testing.assert_allclose(T.data[T.indptr[i]:T.indptr[i + 1]],
                                   S[i, ids].astype(np.float32))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.integers(1, 14), st.integers(0, 2**31 - 1),
       st.sampled_from([0.0, -1.0, 1.0]))
def test_topk_kernels_match_reference(n, L, k, seed, missing):
    rng = np.random.default_rng(seed)
    S = rng.integers(-2, 3, size=(n, L)).astype(np.float64)  # many ties
    assert_topk(topk_dense(S, k), S, k)
    mask = rng.random((n, L)) < 0.4
    stored = sp.csr_matrix((S[mask], np.nonzero(mask)), shape=(n, L))
    full = np.where(mask, S, missing)
    assert_topk(topk_csr(stored, k, missing=missing, n_threads=2), full, k)


def test_topk_ties_go_to_lower_id_and_threads_agree():
    S = np.zeros((300, 50))
    S[:, 10] = 1.0
    T1 = topk_dense(S, 3, n_threads=1)
    T2 = topk_dense(S, 3, n_threads=2)
    assert np.array_equal(T1.indices, T2.indices)
    assert T1.indices[:3].tolist() == [0, 1, 10]


def test_linear_topk_matches_dense_product():
    rng = np.random.default_rng(3)
    X = sp.random(40, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    X.sort_indices()
    W = sp.random(30, 17, density=0.3, format="csr", random_state=2, dtype=np.float32)
    b = rng.normal(size=17).astype(np.float32)
    full = X.toarray().astype(np.float64) @ W.toarray().astype(np.float64) + b
    for k in (1, 4, 17):
        T = linear_topk(X, W, b, k, n_threads=2)
        for i, ids in enumerate(ref_topk(full, k)):
            assert T.indices[T.indptr[i]:T.indptr[i + 1]].tolist() == ids
        np.testing.assert_allclose(T.toarray()[T.toarray() != 0],
                                   full.astype(np.float32)[T.toarray() != 0], rtol=1e-6)


# ---------------------------------------------------------------------------- OneVsRest


def multilabel(seed=0, n=120, d=20, L=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.5)
    M = X @ rng.normal(size=(d, L))
    Y = (M > np.quantile(M, 0.75, axis=0)).astype(np.float32)
    return sp.csr_matrix(X.astype(np.float32)), sp.csr_matrix(Y)


def test_pruning_drops_only_small_weights():
    X, Y = multilabel()
    full = OneVsRest(prune_threshold=0.0, random_state=1).fit(X, Y)
    pruned = OneVsRest(prune_threshold=0.2, random_state=1).fit(X, Y)
    Wf = full.coef_.toarray()
    expect = np.where(np.abs(Wf) >= 0.2, Wf, 0.0)
    np.testing.assert_array_equal(pruned.coef_.toarray(), expect)
    assert pruned.coef_.nnz == np.count_nonzero(expect) < full.coef_.nnz
    assert np.all(np.abs(pruned.coef_.data) >= 0.2)
    np.testing.assert_array_equal(pruned.intercept_, full.intercept_)  # bias never pruned


def test_threads_do_not_change_the_model():
    X, Y = multilabel(L=20)
    a = OneVsRest(n_threads=1, random_state=5).fit(X, Y)
    b = OneVsRest(n_threads=2, random_state=5).fit(X, Y)
    assert (a.coef_ != b.coef_).nnz == 0
    np.testing.assert_array_equal(a.intercept_, b.intercept_)


def test_labels_without_positives_are_reported_and_score_negative():
    X, Y = multilabel(L=5)
    Y = Y.tolil()
    Y[:, 1] = 0
    Y[:, 3] = 0
    Y = Y.tocsr()
    with pytest.warns(UserWarning, match="2 of 5 labels have no positive"):
        model = OneVsRest().fit(X, Y)
    assert model.labels_without_positives_.tolist() == [1, 3]
    assert model.labels_without_positives_.dtype == np.int64
    S = model.decision_function(X, k=5).toarray()
    assert np.all(S[:, [1, 3]] < 0)
    assert model.predict(X)[:, [1, 3]].nnz == 0


def test_convergence_warning_counts_labels():
    X, Y = multilabel(L=3)
    with pytest.warns(ConvergenceWarning, match="3 of 3 labels reached max_iter=1"):
        OneVsRest(max_iter=1, tol=1e-12).fit(X, Y)


def test_memory_limit_refuses_with_the_estimate():
    X, Y = multilabel()
    model = OneVsRest(memory_limit=1000)
    est = model.estimate_memory(X, Y)
    assert est > 1000
    # weights counted unpruned: grows linearly with labels
    _, Y2 = multilabel(L=14)
    assert model.estimate_memory(X, Y2) > est
    with pytest.raises(ResourceLimitError, match=r"MiB \(estimate_memory\)"):
        model.fit(X, Y)
    assert not hasattr(model, "labels_")
    OneVsRest(memory_limit=None).fit(X, Y)
    OneVsRest(memory_limit=est * 2).fit(X, Y)
    assert models.ovr.available_memory() > 0


@pytest.mark.parametrize("bad", [dict(loss="hinge"), dict(C=0.0), dict(C=-1), dict(bias=-1.0),
                                 dict(tol=0), dict(max_iter=0), dict(prune_threshold=-0.1),
                                 dict(n_threads=0), dict(random_state=-1),
                                 dict(random_state=np.random.RandomState(0)),
                                 dict(memory_limit="lots"), dict(normalize="l1")])
def test_bad_params_are_refused(bad):
    X, Y = multilabel(L=2)
    with pytest.raises(ValueError):
        OneVsRest(**bad).fit(X, Y)


def test_normalize_l2_trains_and_scores_on_unit_rows():
    """normalize="l2" (the default) is the unnormalised model fitted and applied on X with
    every row scaled to unit length, in every scoring path."""
    X, Y = multilabel(seed=3)
    X = X.tolil()
    X[5] = 0  # an all-zero row stays zero
    X = X.tocsr()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    Xn = sp.csr_matrix(sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-30), 0.0)) @ X,
                       dtype=np.float32)
    ours = OneVsRest(random_state=2).fit(X, Y)
    assert ours.get_params()["normalize"] == "l2" and ours.get_params()["C"] == 0.5
    ref = OneVsRest(normalize=None, random_state=2).fit(Xn, Y)
    np.testing.assert_allclose(ours.coef_.toarray(), ref.coef_.toarray(), atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)
    np.testing.assert_allclose(ours.decision_function(X, k=7).toarray(),
                               ref.decision_function(Xn, k=7).toarray(), atol=1e-5)
    np.testing.assert_allclose(ours.decision_function_dense(X),
                               ref.decision_function_dense(Xn), atol=1e-5)
    # scaling a row does not change its scores; without normalisation it does
    np.testing.assert_allclose(ours.decision_function_dense(X * 7.0),
                               ours.decision_function_dense(X), atol=1e-5)
    raw = OneVsRest(normalize=None, random_state=2).fit(X, Y)
    assert np.abs(raw.decision_function_dense(X * 7.0) - raw.decision_function_dense(X)).max() > 1


def test_models_saved_before_normalize_load_unnormalised(tmp_path):
    """A manifest without the normalize parameter (written before it existed) describes
    a model trained on X as given: it loads with normalize=None and the same scores."""
    import json

    from labelwise.models import load_model

    X, Y = multilabel(seed=4)
    old = OneVsRest(normalize=None).fit(X, Y)
    old.save(tmp_path / "old")
    mpath = tmp_path / "old" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    del manifest["params"]["normalize"]
    mpath.write_text(json.dumps(manifest))
    back = load_model(tmp_path / "old")
    assert back.normalize is None
    np.testing.assert_array_equal(back.decision_function_dense(X * 3.0),
                                  old.decision_function_dense(X * 3.0))
    new = OneVsRest().fit(X, Y)
    new.save(tmp_path / "new")
    assert load_model(tmp_path / "new").normalize == "l2"


def test_squared_hinge_proba_is_sigmoid_of_margin():
    X, Y = multilabel()
    model = OneVsRest().fit(X, Y)
    S, P = model.decision_function(X, k=3), model.predict_proba(X, k=3)
    np.testing.assert_allclose(P.data, 1 / (1 + np.exp(-S.data.astype(np.float64))), rtol=1e-6)
    dense = model.decision_function_dense(X)
    np.testing.assert_allclose(model.decision_function(X, k=7).toarray(), dense, rtol=1e-5,
                               atol=1e-5)


def test_edge_shapes():
    X, Y = multilabel(L=1)
    model = OneVsRest().fit(X, Y)
    S = model.decision_function(X, k=5)
    assert S.shape == (X.shape[0], 1) and np.all(np.diff(S.indptr) == 1)
    empty = X[:0]
    assert model.decision_function(empty).shape == (0, 1)
    assert model.predict(empty).shape == (0, 1)
    assert model.predict(empty, k=1).shape == (0, 1)
    # a row without features scores the intercepts
    X2, Y2 = multilabel(L=4)
    m2 = OneVsRest().fit(X2, Y2)
    zero = sp.csr_matrix((1, X2.shape[1]), dtype=np.float32)
    np.testing.assert_allclose(m2.decision_function(zero, k=4).toarray().ravel(), m2.intercept_)
    # ties go to the lower label id: without bias a featureless row scores 0 everywhere
    m0 = OneVsRest(bias=0.0).fit(X2, Y2)
    assert np.all(m0.intercept_ == 0)
    assert m0.decision_function(zero, k=2).indices.tolist() == [0, 1]
    # Y as lists of label ids
    rows = [list(np.flatnonzero(r)) for r in Y2.toarray()]
    m3 = OneVsRest().fit(X2, rows, labels=list("abcd"))
    assert (m3.coef_ != m2.coef_).nnz == 0


def test_exports_pinned():
    assert models.__all__ == sorted(models.__all__)
    assert models.__all__ == ["Blend", "CalibratedLabelRanking", "ClassifierChain", "FewShot", "FineTuned", "FineTunedFewShot", "LabelAttention", "LabelEmbedding", "LabelForest", "LabelPowerset", "LabelTree", "MLPHead", "MLkNN", "MODEL_CLASSES", "MultiLabelModel",
                              "OneVsRest", "OutputCodes", "RAkEL", "ZeroShot", "as_feature_matrix", "fit_linear",
                              "imbalance_ratios", "linear_topk", "load_model", "ml_ros", "save_model", "topk_csr", "topk_dense"]


# ---------------------------------------------------------------------------- real data


def test_yeast_accuracy_close_to_sklearn():
    from sklearn.datasets import load_svmlight_file
    from sklearn.multiclass import OneVsRestClassifier

    from conftest import shared_dataset_dir

    folder = shared_dataset_dir("libsvm-yeast-napkinxc")

    def read(name):
        X, y = load_svmlight_file(str(folder / name), multilabel=True, zero_based=False,
                                  n_features=103)
        rows = np.repeat(np.arange(len(y)), [len(r) for r in y])
        cols = np.array([int(v) for r in y for v in r], dtype=np.int64)
        Y = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols)), shape=(len(y), 14))
        X = sp.csr_matrix((X.data.astype(np.float32), X.indices.astype(np.int32),
                           X.indptr.astype(np.int32)), shape=X.shape)
        return X, Y

    Xtr, Ytr = read("yeast_train.txt")
    Xte, Yte = read("yeast_test.txt")

    def scores(P, top1):
        p1 = float(np.asarray(Yte[np.arange(Yte.shape[0]), top1]).mean())
        tp = P.multiply(Yte).sum()
        return p1, 2 * tp / (P.sum() + Yte.sum())

    model = OneVsRest(prune_threshold=0.0).fit(Xtr, Ytr)
    ours = scores(model.predict(Xte), model.decision_function(Xte, k=1).indices)
    ref = OneVsRestClassifier(LinearSVC(dual=True, tol=0.1, max_iter=1000)).fit(Xtr, Ytr.toarray())
    D = ref.decision_function(Xte)
    theirs = scores(sp.csr_matrix((D > 0).astype(np.float32)), D.argmax(axis=1))
    assert ours[0] >= theirs[0] - 0.02 and ours[1] >= theirs[1] - 0.02, (ours, theirs)
    assert ours[0] > 0.7 and ours[1] > 0.6


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 7), st.integers(0, 6), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_dense_to_csr_is_scipys_csr(n, d, density, seed):
    """base.dense_to_csr against scipy's own conversion: the same stored entries, order,
    index arrays and dtype, for empty shapes, empty rows, full rows and NaN."""
    from labelwise.models.base import dense_to_csr

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)).astype(np.float32)
    A[rng.random((n, d)) >= density] = 0.0
    if n and d and seed % 3 == 0:
        A[0, 0] = np.nan
    got, ref = dense_to_csr(A), sp.csr_matrix(A)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    for a, b in ((got.indptr, ref.indptr), (got.indices, ref.indices)):
        assert np.array_equal(a, b)
    assert np.array_equal(got.data, ref.data, equal_nan=True)
    assert got.has_canonical_format
    full = np.ones((3, 4), np.float32)
    assert np.array_equal(dense_to_csr(full).indices, np.tile(np.arange(4), 3))
