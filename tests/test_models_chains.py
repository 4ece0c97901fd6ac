"""ClassifierChain: beam search against exhaustive enumeration, orders, ensembles, bases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from conformance import small_data
from labelwise.models._learners import NotSavableError
from labelwise.models.chains import ClassifierChain


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _enumerate(model, X):
    """Joint probability of every label vector (rows x 2**L) by the chain's conditionals,
    computed from the saved arrays with plain loops; returns (vectors in label order, P)."""
    Xn = model._prepare_X(sp.csr_matrix(X, dtype=np.float32)).toarray().astype(np.float64)
    L = len(model.labels_)
    order = model.orders_[0]
    Wx = model.coef_.toarray()[:, :L]
    vectors = np.array(list(itertools.product([0, 1], repeat=L)), dtype=bool)  # position order
    P = np.ones((Xn.shape[0], len(vectors)))
    for v, vec in enumerate(vectors):
        for p in range(L):
            z = Xn @ Wx[:, p] + model.intercept_[0, p]
            for q in range(p):
                z = z + vec[q] * model.label_coef_[0, q, p]
            p1 = _sigmoid(z)
            P[:, v] *= p1 if vec[p] else 1 - p1
    in_label_order = np.zeros_like(vectors)
    in_label_order[:, order] = vectors
    return in_label_order, P


@pytest.mark.parametrize("L", [4, 6])
def test_beam_search_equals_exhaustive_enumeration(L):
    X, Y = small_data(seed=L, n=60, d=8, n_labels=L)
    model = ClassifierChain(order="random", inference="beam", beam_width=2 ** L,
                            random_state=1, n_threads=1).fit(X, Y)
    vectors, P = _enumerate(model, X)
    assert np.allclose(P.sum(axis=1), 1.0)
    # exact marginals
    marg = P @ vectors.astype(np.float64)
    assert np.allclose(model.predict_marginals(X), marg, atol=1e-9)
    # exact joint mode
    mode = vectors[np.argmax(P, axis=1)]
    assert np.array_equal(model.predict_joint(X).toarray() == 1, mode)
    # a narrow beam finds the mode on most rows and its joint probability is never higher
    narrow = model.predict_joint(X, beam_width=2).toarray() == 1
    idx = [np.flatnonzero((vectors == r).all(axis=1))[0] for r in narrow]
    got = P[np.arange(len(idx)), idx]
    assert np.all(got <= P.max(axis=1) + 1e-12)
    assert np.mean(np.isclose(got, P.max(axis=1))) >= 0.8


def _plain_beam_marginals(model, X, width):
    """A narrow beam's label scores by plain loops: keep the ``width`` most probable partial
    vectors, then average each position's conditional P(y_p = 1 | x, the vector's labels
    before p) over the kept vectors, weighted by their renormalised joint probabilities."""
    Xn = model._prepare_X(sp.csr_matrix(X, dtype=np.float32)).toarray().astype(np.float64)
    L = len(model.labels_)
    Wx = model.coef_.toarray()[:, :L]
    out = np.zeros((Xn.shape[0], L))
    for i in range(Xn.shape[0]):
        beam = [(0.0, [], [])]  # (log-prob, labels so far, their conditionals)
        for p in range(L):
            cand = []
            for logp, vec, conds in beam:
                z = Xn[i] @ Wx[:, p] + model.intercept_[0, p]
                z += sum(model.label_coef_[0, q, p] for q in range(p) if vec[q])
                p1 = _sigmoid(z)
                cand.append((logp + np.log1p(-p1), vec + [0], conds + [p1]))
                cand.append((logp + np.log(p1), vec + [1], conds + [p1]))
            beam = sorted(cand, key=lambda c: -c[0])[:width]
        w = np.exp(np.array([b[0] for b in beam]) - max(b[0] for b in beam))
        w /= w.sum()
        score = sum(wb * np.array(b[2]) for wb, b in zip(w, beam))
        out[i, model.orders_[0]] = score
    return out


@pytest.mark.parametrize("numpy_beam", [False, True])
def test_narrow_beam_scores_are_the_beams_mean_conditionals(numpy_beam):
    X, Y = small_data(seed=9, n=50, d=8, n_labels=6)
    model = ClassifierChain(order="random", inference="beam", beam_width=3, random_state=4,
                            n_threads=1).fit(X, Y)
    model._numpy_beam = numpy_beam
    got = model.predict_marginals(X)
    assert np.allclose(got, _plain_beam_marginals(model, X, 3), atol=1e-9)
    # a label no kept vector carries still gets its conditional's scale, not 0: the kept
    # vectors' hard votes would give it exactly 0
    beams, logp, _ = model._beam(0, model._prepare_X(X), 3)
    absent = ~beams.any(axis=1)  # (rows, positions)
    assert absent.any()
    scores = got[:, model.orders_[0]]
    assert np.all(scores[absent] > 0)


def test_greedy_path_is_beam_of_width_one():
    X, Y = small_data(seed=2, n_labels=5)
    model = ClassifierChain(order="frequency", inference="greedy", random_state=0,
                            n_threads=1).fit(X, Y)
    greedy = model.predict_marginals(X) > 0.5
    assert np.array_equal(model.predict_joint(X, beam_width=1).toarray() == 1, greedy)


def test_orders():
    X, Y = small_data(seed=1)
    freq = np.asarray(Y.sum(axis=0)).ravel()
    m = ClassifierChain(order="frequency", n_threads=1).fit(X, Y)
    assert np.all(np.diff(freq[m.orders_[0]]) <= 0)
    m = ClassifierChain(order=[5, 4, 3, 2, 1, 0], n_threads=1).fit(X, Y)
    assert list(m.orders_[0]) == [5, 4, 3, 2, 1, 0]
    m = ClassifierChain(order="random", n_chains=3, random_state=4, n_threads=1).fit(X, Y)
    assert len({tuple(o) for o in m.orders_}) > 1
    with pytest.raises(ValueError, match="permutation"):
        ClassifierChain(order=[0, 1, 1, 2, 3, 4]).fit(X, Y)
    with pytest.raises(ValueError, match="order must be"):
        ClassifierChain(order="alphabetical").fit(X, Y)


def test_ensemble_averages_its_chains():
    X, Y = small_data(seed=3)
    ens = ClassifierChain(order="random", n_chains=3, bootstrap=True, random_state=5,
                          n_threads=1).fit(X, Y)
    parts = []
    for c in range(3):
        one = ClassifierChain(order="random", random_state=5, n_threads=1).fit(X, Y)
        one.orders_ = ens.orders_[c:c + 1]
        L = Y.shape[1]
        one.coef_ = ens.coef_[:, c * L:(c + 1) * L]
        one.label_coef_ = ens.label_coef_[c:c + 1]
        one.intercept_ = ens.intercept_[c:c + 1]
        parts.append(one.predict_marginals(X))
    assert np.allclose(ens.predict_marginals(X), np.mean(parts, axis=0))
    with pytest.raises(ValueError, match="single chain"):
        ens.predict_joint(X)


def test_sklearn_bases(tmp_path):
    X, Y = small_data(seed=4)
    lr = ClassifierChain(base=LogisticRegression(C=10.0), inference="beam").fit(X, Y)
    lr.save(tmp_path / "lr")
    back = ClassifierChain.load(tmp_path / "lr")
    assert back.get_params()["base"]["sklearn"] == "LogisticRegression"
    assert np.allclose(back.predict_marginals(X), lr.predict_marginals(X))
    back.fit(X, Y)  # a saved linear base can be trained again
    assert np.allclose(back.predict_marginals(X), lr.predict_marginals(X), atol=1e-6)
    tree = ClassifierChain(base=DecisionTreeClassifier(max_depth=3, random_state=0),
                           inference="beam", beam_width=4).fit(X, Y)
    assert np.mean((tree.predict(X).toarray() == 1) == (Y.toarray() == 1)) > 0.8
    with pytest.raises(NotSavableError, match="never pickles"):
        tree.save(tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


def test_beam_kernel_equals_numpy_beam():
    X, Y = small_data(seed=6, n_labels=7)
    model = ClassifierChain(order="random", n_chains=2, inference="beam", beam_width=5,
                            random_state=2, n_threads=2).fit(X, Y)
    fast = model.predict_marginals(X)
    joint = ClassifierChain(inference="beam", beam_width=3, n_threads=1).fit(X, Y)
    fast_joint = joint.predict_joint(X).toarray()
    model._numpy_beam = joint._numpy_beam = True
    assert np.allclose(model.predict_marginals(X), fast, atol=1e-12)
    assert np.array_equal(joint.predict_joint(X).toarray(), fast_joint)


def test_positions_trained_side_by_side_give_the_same_chain():
    """The linear base's positions are trained on the threads at once: the same weights, bit
    for bit, as one after another; each position's classifier is the one fit_binary gives
    alone on X and the true labels before it."""
    from labelwise.models._learners import fit_binary

    X, Y = small_data(seed=6)
    kw = dict(order="random", n_chains=2, bootstrap=True, random_state=3)
    one = ClassifierChain(n_threads=1, **kw).fit(X, Y)
    two = ClassifierChain(n_threads=2, **kw).fit(X, Y)
    for a, b in ((one.coef_.toarray(), two.coef_.toarray()),
                 (one.label_coef_, two.label_coef_), (one.intercept_, two.intercept_)):
        assert np.array_equal(a, b)
    single = ClassifierChain(n_threads=2, random_state=3).fit(X, Y)
    Xn = single._prepare_X(sp.csr_matrix(X, dtype=np.float32))
    Yd = Y.toarray() > 0
    d, p = X.shape[1], 2
    XA = sp.hstack([Xn, sp.csr_matrix(Yd.astype(np.float32))], format="csr")
    seed = single.random_state
    w, b = fit_binary(XA[:, :d + p], Yd[:, p], "linear", C=single.C, seed=(seed + p) % 2**32)
    assert np.array_equal(single.coef_.toarray()[:, p].astype(np.float64), w[:d])
    assert np.array_equal(single.label_coef_[0, :p, p], w[d:]) and single.intercept_[0, p] == b


def test_linear_binary_learner_is_fit_linear_of_one_label():
    """fit_binary's linear learner (a chain position's, one kernel call) gives fit_linear's
    weights and intercept for the one label, bit for bit."""
    from labelwise.models._learners import fit_binary
    from labelwise.models.ovr import fit_linear

    X, Y = small_data(seed=8)
    X = sp.csr_matrix(X, dtype=np.float32)
    y = Y.toarray()[:, 1] > 0
    for C, seed in ((1.0, 0), (0.3, 12345)):
        w, b = fit_binary(X, y, "linear", C=C, seed=seed)
        coef, intercept, _ = fit_linear(X, sp.csr_matrix(y.astype(np.float32)[:, None]),
                                        loss="logistic", C=C, prune_threshold=0.0, seed=seed)
        assert np.array_equal(w, coef.toarray()[:, 0].astype(np.float64))
        assert b == float(intercept[0])


def augmented(X: sp.csr_matrix, Y: np.ndarray) -> sp.csr_matrix:
    """A chain's XA: X and the labels (1.0 where set) after its columns, indices sorted."""
    from labelwise.models.base import dense_to_csr

    XA = sp.hstack([X, dense_to_csr(Y.astype(np.float32))], format="csr")
    XA.sort_indices()
    return XA


def sparse_chain_data(seed: int, n: int, d: int, L: int, density: float, values):
    """Sparse X (n, d) with values drawn by ``values(rng, size)``, Y (n, L) bool and XA."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed + 1,
                  dtype=np.float32)
    X.data = values(rng, X.nnz).astype(np.float32)
    Y = rng.random((n, L)) < 0.3
    return X, Y, augmented(X, Y)


def test_positions_on_masked_label_columns_equal_the_slices():
    """A sparse chain position solved on all of XA with the later labels' columns stored as
    zeros (what _fit_positions does instead of slicing) gives the slice's weights and bias
    bit for bit; position_masks refuses positions whose slice, or the whole width, the
    Newton solver would take."""
    from labelwise._csr import trusted_csr
    from labelwise.models._learners import chain_row_norms, fit_binary, position_masks

    X, Y, XA = sparse_chain_data(8, 90, 40, 6, 0.1, lambda rng, k: rng.random(k))
    rng = np.random.default_rng(9)
    norms = chain_row_norms(XA, Y, 40)
    assert position_masks(XA, Y, 40) == [True] * 6
    for p in range(6):
        masked = trusted_csr(np.where(XA.indices >= 40 + p, np.float32(0), XA.data),
                             XA.indices, XA.indptr, XA.shape, sorted_indices=True)
        w, b = fit_binary(masked, Y[:, p], "linear", C=2.0, seed=11 + p, sq=norms[p])
        w_s, b_s = fit_binary(XA[:, :40 + p], Y[:, p], "linear", C=2.0, seed=11 + p,
                              sq=norms[p])
        assert np.array_equal(w[:40 + p], w_s) and not w[40 + p:].any() and b == b_s
        if p < 5:  # the later labels' columns unmasked: other weights
            w_u, _ = fit_binary(XA, Y[:, p], "linear", C=2.0, seed=11 + p, sq=norms[p])
            assert not np.array_equal(w_u[:40 + p], w_s)
    # dense X: its slices take the Newton solver, so no position is masked
    Xd = sp.csr_matrix(rng.random((90, 8)).astype(np.float32))
    assert position_masks(augmented(Xd, Y), Y, 8) == [False] * 6
    # sparse X whose label columns make the whole width dense: none masked either
    Yd = np.ones((90, 60), bool)
    Yd[::7, :] = False
    assert position_masks(augmented(X, Yd), Yd, 40) == [False] * 60


def test_chain_row_norms_are_the_position_matrices_norms():
    from labelwise.models._learners import chain_row_norms
    from labelwise.models.ovr import row_sq_norms

    X, Y, XA = sparse_chain_data(21, 80, 30, 7, 0.2, lambda rng, k: rng.standard_normal(k))
    norms = chain_row_norms(XA, Y, 30)
    assert len(norms) == 7
    for p, sq in enumerate(norms):
        assert np.array_equal(sq, row_sq_norms(XA[:, :30 + p], 1.0))  # bit for bit
