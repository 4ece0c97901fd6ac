"""MLkNN against a plain loop implementation of Zhang & Zhou (2007)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from conformance import small_data
from labelwise.models.mlknn import MLkNN


def _reference(X, Y, Q, k, s, exclude_self):
    """Plain ML-kNN: cosine similarities with loops, neighbours by sorting (ties: lower
    index), priors and likelihood tables by counting, posteriors by Bayes' rule."""
    X = np.asarray(X, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    Y = np.asarray(Y, dtype=bool)
    n, L = Y.shape

    def unit(A):
        out = A.copy()
        for i in range(len(A)):
            norm = np.sqrt(sum(v * v for v in A[i]))
            if norm > 0:
                out[i] = A[i] / norm
        return out

    Xn, Qn = unit(X), unit(Q)

    def neighbours(q, skip):
        sims = [(-float(np.dot(q, Xn[t])), t) for t in range(n) if t != skip]
        return [t for _, t in sorted(sims)[:k]]

    def counts(q, skip):
        nb = neighbours(q, skip)
        return [sum(Y[t, j] for t in nb) for j in range(L)]

    prior = [(s + Y[:, j].sum()) / (2 * s + n) for j in range(L)]
    c1 = np.zeros((L, k + 1))
    c0 = np.zeros((L, k + 1))
    for i in range(n):
        cnt = counts(Xn[i], i)
        for j in range(L):
            (c1 if Y[i, j] else c0)[j, cnt[j]] += 1
    post = np.zeros((len(Q), L))
    for i in range(len(Q)):
        cnt = counts(Qn[i], i if exclude_self else -1)
        for j in range(L):
            p1 = prior[j] * (s + c1[j, cnt[j]]) / (s * (k + 1) + c1[j].sum())
            p0 = (1 - prior[j]) * (s + c0[j, cnt[j]]) / (s * (k + 1) + c0[j].sum())
            post[i, j] = p1 / (p1 + p0)
    return post


@pytest.mark.parametrize("products", ["dense", "sparse"])
@pytest.mark.parametrize("k,s,block", [(3, 1.0, 7), (6, 0.5, 100)])
def test_posteriors_equal_plain_reference(k, s, block, products, monkeypatch):
    import labelwise.models.mlknn as mlknn_module

    # both similarity paths: BLAS products of dense copies, and sparse products
    monkeypatch.setattr(mlknn_module, "_is_dense", lambda M: products == "dense")
    X, Y = small_data(seed=k, n=50, d=6, n_labels=4)
    X = X.toarray()
    X[5] = X[9]  # exact ties between training rows
    X[12] = 0.0  # an all-zero row (every similarity 0: neighbours by index)
    Q, _ = small_data(seed=11, n=20, d=6, n_labels=4)
    model = MLkNN(k=k, s=s, block_rows=block, n_threads=2).fit(X, Y)
    ref = _reference(X, Y.toarray(), Q.toarray(), k, s, exclude_self=False)
    assert np.allclose(model.posteriors(Q), ref, atol=1e-6)
    assert np.allclose(model.posteriors(sp.csr_matrix(Q)), ref, atol=1e-6)


def test_threads_and_blocks_do_not_change_scores():
    X, Y = small_data(seed=2, n=90)
    a = MLkNN(k=5, block_rows=7, n_threads=3).fit(X, Y).posteriors(X)
    b = MLkNN(k=5, block_rows=1000, n_threads=1).fit(X, Y).posteriors(X)
    assert np.array_equal(a, b)


def test_k_must_be_below_training_rows():
    X, Y = small_data(n=10)
    with pytest.raises(ValueError, match="more than 10 training rows"):
        MLkNN(k=10).fit(X, Y)
    with pytest.raises(ValueError, match="k must be"):
        MLkNN(k=0).fit(X, Y)


def test_auto_standardises_dense_features(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) * np.array([1.0, 10.0, 100.0, 0.1, 1.0]) + 5.0
    X[:, 4] = 3.0  # a constant column
    _, Y = small_data(seed=1, n=60, d=5, n_labels=3)
    Q = rng.normal(size=(15, 5)) * np.array([1.0, 10.0, 100.0, 0.1, 1.0]) + 5.0
    model = MLkNN(k=4).fit(X, Y)  # "auto": every entry stored -> standardised
    Xf = X.astype(np.float32).astype(np.float64)
    mean, std = Xf.mean(axis=0), Xf.std(axis=0)
    std[std < 1e-12] = 1.0
    ref = _reference((Xf - mean) / std, Y.toarray(), (Q.astype(np.float32) - mean) / std, 4,
                     1.0, exclude_self=False)
    assert np.allclose(model.posteriors(Q), ref, atol=1e-6)
    model.save(tmp_path / "m")
    assert np.array_equal(MLkNN.load(tmp_path / "m").posteriors(Q), model.posteriors(Q))
    assert MLkNN(k=4, normalize="l2").fit(X, Y).col_mean_.size == 0
