"""LabelEmbedding (PLST, CPLST) and OutputCodes against slow numpy references: explicit SVD /
hat matrix + ridge by augmented least squares + back-projection; codewords by hand and
loss-based decoding by a loop over candidate label sets. Also: saved arrays of the three new
families (with CalibratedLabelRanking) that do not fit are refused on load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from conformance import small_data
from labelwise.errors import ResourceLimitError
from labelwise.models.codes import OutputCodes, code_matrix, encode
from labelwise.models.embedding import LabelEmbedding, ridge_fit
from labelwise.models.pairwise import CalibratedLabelRanking


def _ridge_reference(X, T, alpha):
    """argmin |X W + 1 b' - T|^2 + alpha |W|^2 by least squares on [X 1; sqrt(alpha) I 0]."""
    n, d = X.shape
    A = np.vstack([np.c_[X, np.ones(n)], np.c_[np.sqrt(alpha) * np.eye(d), np.zeros(d)]])
    B = np.vstack([T, np.zeros((d, T.shape[1]))])
    sol = np.linalg.lstsq(A, B, rcond=None)[0]
    return sol[:d], sol[d]


def _data(n, d, L, seed=0):
    X, Y = small_data(seed=seed, n=n, d=d, n_labels=L)
    return X.toarray().astype(np.float64), Y


@pytest.mark.parametrize("n,d", [(50, 8), (20, 40)])  # primal (d <= n) and dual (d > n)
@pytest.mark.parametrize("density", [1.0, 0.1])  # dense products, sparse products
def test_ridge_fit_equals_least_squares(n, d, density):
    X, _ = _data(n, d, 3)
    X = X * (np.random.default_rng(2).random(X.shape) < density)
    T = np.random.default_rng(1).normal(size=(n, 4))
    W, b = ridge_fit(sp.csr_matrix(X), T, 0.7)
    Wr, br = _ridge_reference(X, T, 0.7)
    assert np.allclose(W, Wr, atol=1e-8) and np.allclose(b, br, atol=1e-8)


@pytest.mark.parametrize("n,d", [(60, 8), (25, 40)])
def test_plst_equals_svd_ridge_backprojection(n, d):
    X, Y = _data(n, d, 7)
    Yd = Y.toarray()
    mu = Yd.mean(axis=0)
    Z = Yd - mu
    V = np.linalg.svd(Z)[2][:3].T  # top-3 right singular vectors
    W, b = _ridge_reference(X, Z @ V, 0.5)
    ref = (X @ W + b) @ V.T + mu
    model = LabelEmbedding(n_components=3, alpha=0.5, normalize=None).fit(X, Y)
    assert model.n_components_ == 3
    assert np.allclose(model.predict_values(X), ref, atol=1e-6)  # eigh of Z'Z vs svd of Z
    S = model.decision_function(X, k=7).toarray()
    assert np.allclose(S, ref, atol=1e-5)
    assert np.array_equal(model.predict(X).toarray() > 0, S > 0.5)  # PLST's rounding
    # n_components as a fraction: the fewest directions with that share of Z's variance
    s2 = np.linalg.svd(Z, compute_uv=False) ** 2
    want = int(np.searchsorted(np.cumsum(s2) / s2.sum(), 0.8) + 1)
    assert LabelEmbedding(n_components=0.8, normalize=None).fit(X, Y).n_components_ == want


def test_cplst_equals_hat_matrix_eigenvectors():
    n, d, L = 40, 6, 6
    X, Y = _data(n, d, L, seed=2)
    Yd = Y.toarray()
    mu = Yd.mean(axis=0)
    Z = Yd - mu
    alpha = 2.0
    Xc = X - X.mean(axis=0)
    H = np.ones((n, n)) / n + Xc @ np.linalg.inv(Xc.T @ Xc + alpha * np.eye(d)) @ Xc.T
    eig, U = np.linalg.eigh(Z.T @ H @ Z)
    V = U[:, np.argsort(-eig)[:2]]
    W, b = _ridge_reference(X, Z @ V, alpha)
    ref = (X @ W + b) @ V.T + mu
    model = LabelEmbedding(method="cplst", n_components=2, alpha=alpha, normalize=None)
    assert np.allclose(model.fit(X, Y).predict_values(X), ref, atol=1e-6)
    # with every direction kept, PLST and CPLST are both plain ridge regression of Y
    full_p = LabelEmbedding(n_components=L, alpha=alpha, normalize=None).fit(X, Y)
    full_c = LabelEmbedding(method="cplst", n_components=L, alpha=alpha, normalize=None)
    Wy, by = _ridge_reference(X, Yd, alpha)
    assert np.allclose(full_p.predict_values(X), X @ Wy + by, atol=1e-8)
    assert np.allclose(full_c.fit(X, Y).predict_values(X), X @ Wy + by, atol=1e-8)


def test_embedding_params_and_limits():
    X, Y = small_data(n_labels=4)
    for kw, match in (({"method": "pca"}, "method"), ({"n_components": 0}, "n_components"),
                      ({"n_components": 1.5}, "fraction"), ({"alpha": 0.0}, "alpha"),
                      ({"n_components": 5}, "more than the 4 labels"),
                      ({"max_gram": 0}, "max_gram")):
        with pytest.raises(ValueError, match=match):
            LabelEmbedding(**kw).fit(X, Y)
    with pytest.raises(ResourceLimitError, match="max_gram=10"):
        LabelEmbedding(max_gram=10).fit(X, Y)


def test_codes_by_hand():
    rng = np.random.default_rng(0)
    G = code_matrix(5, "ecc", 9, 2, rng)
    assert np.array_equal(G[:5], np.eye(5, dtype=bool)) and np.all(G[5:].sum(axis=1) == 2)
    Y = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    B = encode(Y, G, "ecc")
    for i in range(3):
        for b in range(9):
            assert B[i, b] == (sum(Y[i, j] for j in range(5) if G[b, j]) % 2 == 1)
    for seed in range(5):
        G = code_matrix(7, "random", 4, 2, np.random.default_rng(seed))
        assert G.any(axis=0).all(), "every label in some bit"
        B = encode(Y[:, :5].repeat(2, axis=1)[:, :7], G, "random")
        assert np.array_equal(B, (Y[:, :5].repeat(2, axis=1)[:, :7].astype(int)
                                  @ G.T.astype(int)) > 0)
    with pytest.raises(ValueError, match="n_bits >= n_labels"):
        code_matrix(5, "ecc", 4, 2, rng)
    with pytest.raises(ValueError, match="cover every label"):
        code_matrix(7, "random", 3, 2, rng)
    with pytest.raises(ValueError, match="tell none apart"):
        code_matrix(3, "random", 6, 3, rng)


@pytest.mark.parametrize("code", ["ecc", "random"])
def test_loss_based_decoding_equals_loop_over_candidates(code):
    X, Y = small_data(seed=3, n=70, d=10, n_labels=5)
    model = OutputCodes(code=code, n_bits=8, base=LogisticRegression(C=3.0, max_iter=1000),
                        normalize=None).fit(X, Y)
    G = model.code_
    Yd = Y.toarray() > 0
    B = encode(Yd, G, code)
    # each bit: a LogisticRegression on the codeword bit
    M = np.stack([LogisticRegression(C=3.0, max_iter=1000).fit(X, B[:, b].astype(int))
                  .decision_function(X) for b in range(8)], axis=1)
    assert np.allclose(model.bit_margins(X), M, atol=1e-5)
    cands = {tuple(r) for r in Yd} | {(False,) * 5} | {tuple(np.eye(5, dtype=bool)[j])
                                                      for j in range(5)}
    ref = np.zeros((70, 5))
    for i in range(70):
        weights, sets = [], []
        for c in sorted(cands):
            cw = encode(np.array([c]), G, code)[0]
            s = np.where(cw, 1.0, -1.0)
            loss = np.sum(np.log1p(np.exp(-s * M[i])))
            weights.append(np.exp(-loss))
            sets.append(c)
        weights = np.array(weights) / np.sum(weights)
        ref[i] = weights @ np.array(sets, dtype=float)
    assert np.allclose(model.predict_marginals(X), ref, atol=1e-5)


def test_codes_params():
    X, Y = small_data(n_labels=4)
    for kw, match in (({"code": "bch"}, "code"), ({"n_bits": 0}, "n_bits"),
                      ({"subset_size": 0}, "subset_size"), ({"C": -1.0}, "C must"),
                      ({"n_bits": 3}, "n_bits >= n_labels")):
        with pytest.raises(ValueError, match=match):
            OutputCodes(**kw).fit(X, Y)


@pytest.mark.parametrize("make,name,bad", [
    (lambda: CalibratedLabelRanking(n_threads=1), "coef_features", lambda a: a + 10_000),
    (lambda: OutputCodes(n_threads=1), "code_labels", lambda a: a + 100),
    (lambda: LabelEmbedding(), "components", lambda a: a[:-1]),
])
def test_arrays_that_do_not_fit_are_refused(make, name, bad, tmp_path):
    """Out-of-range label/feature ids or wrong shapes in a saved model: a clear error on load,
    never an out-of-bounds read (checksums skipped, as for a hand-edited file)."""
    import json

    from labelwise.errors import DataFormatError

    X, Y = small_data(seed=2)
    model = make().fit(X, Y)
    model.save(tmp_path / "m")
    arr = bad(np.load(tmp_path / "m" / f"{name}.npy"))
    np.save(tmp_path / "m" / f"{name}.npy", arr)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["arrays"][name]["shape"] = list(arr.shape)  # the manifest edited alike
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="do not fit"):
        type(model).load(tmp_path / "m", verify=False)
