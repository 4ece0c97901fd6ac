"""LabelPowerset (pruning) and RAkEL (labelsets that cover every label, soft votes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from conformance import small_data
from labelwise.models.powerset import LabelPowerset, RAkEL, prune_label_sets, rakel_labelsets


@pytest.mark.parametrize("mode", ["disjoint", "overlapping"])
@pytest.mark.parametrize("seed", range(5))
def test_rakel_on_7_labels_k3_covers_every_label(mode, seed):
    sets = rakel_labelsets(7, 3, mode, None, np.random.default_rng(seed))
    assert set(np.concatenate(sets).tolist()) == set(range(7))
    if mode == "disjoint":
        assert sorted(s.size for s in sets) == [1, 3, 3]
        assert np.concatenate(sets).size == 7
    else:
        assert len(sets) == 14 and all(s.size == 3 for s in sets)
        assert len({tuple(s) for s in sets}) == 14
    X, Y = small_data(seed=seed, n_labels=7)
    model = RAkEL(k=3, mode=mode, random_state=seed, n_threads=1).fit(X, Y)
    covered = np.zeros(7)
    for labelset, _, _, _ in model.parts_:
        covered[labelset] += 1
    assert np.all(covered >= 1)
    assert np.all(np.isfinite(model.predict_marginals(X)))


def test_rakel_overlapping_terminates_at_every_size():
    rng = np.random.default_rng(0)
    for L in range(1, 10):
        for k in range(1, L + 2):
            total = math.comb(L, min(k, L))
            sets = rakel_labelsets(L, k, "overlapping", total, rng)  # all of them
            assert len({tuple(s) for s in sets}) == total
            assert set(np.concatenate(sets).tolist()) == set(range(L))
    with pytest.raises(ValueError, match="distinct"):
        rakel_labelsets(5, 2, "overlapping", 11, rng)
    with pytest.raises(ValueError, match="cover"):
        rakel_labelsets(7, 3, "overlapping", 2, rng)


def test_pruning_replaces_rare_sets_by_frequent_subsets():
    Y = np.array([[1, 1, 0]] * 3 + [[1, 0, 0]] * 2 + [[0, 0, 1]] * 2 + [[1, 1, 1]] + [[0, 1, 1]],
                 dtype=bool)
    classes, rows, cls, n_rep, n_drop = prune_label_sets(Y, 2, 2)
    assert classes.tolist() == [[False, False, True], [True, False, False], [True, True, False]]
    # {0,1,2} -> {0,1} (largest) and {0} or {2} (next largest, more frequent first: tie -> {0}
    # seen 2 times, {2} seen 2 times; the sets' order breaks it)
    got = sorted(zip(rows.tolist(), cls.tolist()))
    assert (7, 2) in got and (7, 0) in got and len([r for r, _ in got if r == 7]) == 2
    # {1,2} -> {2} only ({1} is not frequent)
    assert [c for r, c in got if r == 8] == [0]
    assert n_rep == 2 and n_drop == 0
    assert sorted(r for r, _ in got if r < 7) == list(range(7))
    with pytest.raises(ValueError, match="min_count"):
        prune_label_sets(Y, 10, 2)


def test_label_powerset_marginals_equal_sklearn_class_probabilities():
    X, Y = small_data(seed=2, n_labels=4)
    model = LabelPowerset(base=LogisticRegression(C=5.0, max_iter=1000),
                          normalize=None).fit(X, Y)
    Yd = Y.toarray().astype(bool)
    sets, inverse = np.unique(Yd, axis=0, return_inverse=True)
    ref = LogisticRegression(C=5.0, max_iter=1000, random_state=0).fit(X, inverse.ravel())
    P = np.zeros((X.shape[0], len(sets)))
    P[:, ref.classes_] = ref.predict_proba(X)
    assert np.allclose(model.predict_marginals(X), P @ sets.astype(float), atol=1e-6)


def test_pruned_powerset_warns_and_saves(tmp_path):
    X, Y = small_data(seed=1, n_labels=6)
    with pytest.warns(UserWarning, match="replaced by frequent subsets"):
        model = LabelPowerset(min_count=3, random_state=0, n_threads=1).fit(X, Y)
    model.save(tmp_path / "m")
    back = LabelPowerset.load(tmp_path / "m")
    assert np.array_equal(back.predict_marginals(X), model.predict_marginals(X))
    r = RAkEL(k=4, mode="overlapping", n_models=5, base=LogisticRegression(),
              random_state=0).fit(X, Y)
    r.save(tmp_path / "r")
    assert np.allclose(RAkEL.load(tmp_path / "r").predict_marginals(X), r.predict_marginals(X))


def test_rakel_scores_average_the_labelsets():
    X, Y = small_data(seed=4, n_labels=5)
    model = RAkEL(k=2, mode="overlapping", n_models=6, random_state=1, n_threads=1).fit(X, Y)
    M = model.predict_marginals(X)
    Xn = model._prepare_X(sp.csr_matrix(X))
    tot, votes = np.zeros_like(M), np.zeros(5)
    for labelset, classes, _kind, (W, b) in model.parts_:
        S = 1 / (1 + np.exp(-(Xn.toarray() @ W + b)))
        P = S / S.sum(axis=1, keepdims=True)
        for j, lab in enumerate(labelset):
            tot[:, lab] += P[:, classes[:, j]].sum(axis=1)
            votes[lab] += 1
    assert np.allclose(M, tot / votes, atol=1e-9)


def test_rakel_labelsets_trained_side_by_side_give_the_same_model():
    """RAkEL's labelsets are fitted on the threads at once (one thread each): the same model,
    bit for bit, as one after another, each part the multiclass fit of its labelset alone."""
    from labelwise.models._learners import fit_multiclass

    X, Y = small_data(seed=5, n_labels=6)
    kw = dict(k=3, mode="overlapping", n_models=5, random_state=2)
    one = RAkEL(n_threads=1, **kw).fit(X, Y)
    two = RAkEL(n_threads=2, **kw).fit(X, Y)
    assert len(one.parts_) == len(two.parts_) == 5
    for a, b in zip(one.parts_, two.parts_, strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
        for x, y in zip(a[3], b[3], strict=True):
            assert np.array_equal(x, y)
    Xn = two._prepare_X(sp.csr_matrix(X, dtype=np.float32))
    t = 3
    labelset, classes, kind, learner = two.parts_[t]
    _, rows, cls, _, _ = prune_label_sets(Y.toarray()[:, labelset] > 0, two.min_count,
                                          two.max_subsets)
    ref_kind, ref = fit_multiclass(Xn[rows], cls, classes.shape[0], "linear", C=two.C,
                                   seed=(2 + 7919 * t) % 2**32, n_threads=1)
    assert kind == ref_kind and all(np.array_equal(x, y) for x, y in zip(learner, ref))


def test_multiclass_linear_learner_alone_is_fit_linear():
    """A labelset's classes solved one by one on one thread (one kernel call, no scipy
    conversions) give fit_linear's weights bit for bit, as they do on two threads."""
    from labelwise.models._learners import fit_multiclass

    X, Y = small_data(seed=9, n_labels=3)
    X = sp.csr_matrix(X, dtype=np.float32)
    c = (Y.toarray()[:, :2] > 0).astype(np.int64) @ np.array([1, 2])
    _, c = np.unique(c, return_inverse=True)
    K = int(c.max()) + 1
    assert 2 <= K < 8  # label by label (lockstep starts at 8)
    one = fit_multiclass(X, c, K, "linear", C=0.7, seed=11, n_threads=1)
    two = fit_multiclass(X, c, K, "linear", C=0.7, seed=11, n_threads=2)
    assert one[0] == two[0] == "sigmoid"
    assert all(np.array_equal(a, b) for a, b in zip(one[1], two[1], strict=True))
    assert one[1][0].shape == (X.shape[1], K) and one[1][0].dtype == np.float64
