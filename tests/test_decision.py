"""Decision policies: brute-force references, leakage, persistence, sparse top-k inputs."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.decision import (
    Combined,
    GlobalThreshold,
    PerLabelThreshold,
    PrecisionTarget,
    TopK,
    load_policy,
    policy_from_dict,
)
from labelwise.decision._entries import entries
from labelwise.decision._search import global_path, per_group_best
from labelwise.errors import DataFormatError, NotFittedError
from labelwise.metrics import LabelSets, f1_score


def _data(n=60, L=4, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    S = np.round(rng.normal(size=(n, L)), 1)  # rounding makes ties
    Y = (rng.random((n, L)) < 1 / (1 + np.exp(-2 * S))).astype(float)
    if sparse:
        keep = S >= np.sort(S, axis=1)[:, [-2]]  # top-2 per row (ties may add more)
        S = sp.csr_matrix(np.where(keep, S, 0.0) + 0.0)
        S = sp.csr_matrix((S.toarray()[keep], np.nonzero(keep)[1], np.r_[0, np.cumsum(keep.sum(1))]),
                          shape=(n, L))
    return S, Y


def _f1_ref(Y, pred, average):
    return f1_score(Y, LabelSets(sp.csr_matrix(pred)), average=average)


def _apply_ref(S, thr):
    """Slow reference: accept stored (i, j) with S[i, j] >= thr[j]."""
    out = np.zeros(S.shape)
    M = sp.csr_matrix(S) if sp.issparse(S) else None
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            if M is not None:
                row = M.indices[M.indptr[i]:M.indptr[i + 1]]
                if j not in row:
                    continue
                v = M[i, j]
            else:
                v = S[i, j]
            if v >= thr[j]:
                out[i, j] = 1
    return out


@pytest.mark.parametrize("objective,average", [("micro-f1", "micro"), ("macro-f1", "macro"),
                                               ("samples-f1", "samples")])
@pytest.mark.parametrize("sparse", [False, True])
def test_global_threshold_is_brute_force_optimum(objective, average, sparse):
    S, Y = _data(sparse=sparse)
    pol = GlobalThreshold(objective=objective).fit(S, Y)
    vals = np.unique(sp.csr_matrix(S).data if sparse else S)
    best = max(_f1_ref(Y, _apply_ref(S, np.full(4, t)), average) for t in vals)
    best = max(best, 0.0)
    got = _f1_ref(Y, pol.apply(S).toarray(), average)
    assert got == pytest.approx(best, abs=1e-12)
    assert pol.tuned_value_ == pytest.approx(best, abs=1e-12)


def test_per_label_macro_matches_per_label_brute_force():
    S, Y = _data(n=50, L=3, seed=3)
    pol = PerLabelThreshold(objective="macro-f1", shrinkage=0.0).fit(S, Y)
    for j in range(3):
        cands = [np.inf, *np.unique(S[:, j])]
        best = max(_f1_ref(Y[:, [j]], (S[:, [j]] >= t) * 1.0, "macro") for t in cands)
        got = _f1_ref(Y[:, [j]], (S[:, [j]] >= pol.thresholds_[j]) * 1.0, "macro")
        assert got == pytest.approx(best, abs=1e-12)


def test_per_label_micro_is_exact_optimum_over_all_threshold_vectors():
    S, Y = _data(n=25, L=3, seed=5)
    pol = PerLabelThreshold(objective="micro-f1", shrinkage=0.0).fit(S, Y)
    cands = [[np.inf, *np.unique(S[:, j])] for j in range(3)]
    best = max(_f1_ref(Y, (S >= np.array(t)[None, :]) * 1.0, "micro")
               for t in itertools.product(*cands))
    assert _f1_ref(Y, pol.apply(S).toarray(), "micro") == pytest.approx(best, abs=1e-12)


def test_per_label_samples_not_worse_than_global():
    for seed in range(3):
        S, Y = _data(n=80, L=5, seed=seed)
        g = GlobalThreshold(objective="samples-f1").fit(S, Y)
        p = PerLabelThreshold(objective="samples-f1", shrinkage=0.0).fit(S, Y)
        assert _f1_ref(Y, p.apply(S).toarray(), "samples") >= \
            _f1_ref(Y, g.apply(S).toarray(), "samples") - 1e-12


def test_shrinkage_pulls_rare_labels_to_global():
    S, Y = _data(n=200, L=3, seed=1)
    Y[:, 2] = 0
    Y[:3, 2] = 1  # 3 positives
    pol = PerLabelThreshold(objective="macro-f1", shrinkage=10.0).fit(S, Y)
    w = 3 / 13
    assert pol.thresholds_[2] == pytest.approx(w * pol.tuned_[2] + (1 - w) * pol.global_threshold_)
    big = PerLabelThreshold(objective="macro-f1", shrinkage=1e9).fit(S, Y)
    assert np.allclose(big.thresholds_, big.global_threshold_, atol=1e-6)
    ex = pol.explain()["labels"][2]
    assert ex["positives"] == 3 and ex["threshold"] == pytest.approx(pol.thresholds_[2])


def test_per_group_best_reference():
    rng = np.random.default_rng(0)
    v = np.round(rng.normal(size=40), 1)
    g = rng.integers(0, 5, 40)
    w = (rng.random(40) < 0.5).astype(float)
    pos = np.bincount(g, weights=w, minlength=6) + 1
    thr, val, _ = per_group_best(v, g, 6, w, lambda tp, m, gg: 2 * tp / (m + pos[gg]))
    for k in range(5):
        vk, wk = v[g == k], w[g == k]
        ref = max([0.0] + [2 * wk[vk >= t].sum() / ((vk >= t).sum() + pos[k]) for t in vk])
        assert val[k] == pytest.approx(ref)
        assert 2 * wk[vk >= thr[k]].sum() / ((vk >= thr[k]).sum() + pos[k]) == pytest.approx(ref)
    assert np.isnan(thr[5])


def test_global_path_micro_reference():
    rng = np.random.default_rng(1)
    v = np.round(rng.random(30), 1)
    h = rng.random(30) < 0.5
    thr, obj = global_path(v, np.zeros(30, np.int64), h, np.array([h.sum() + 2]))
    for t, o in zip(thr, obj, strict=True):
        acc = v >= t
        assert o == pytest.approx(2 * h[acc].sum() / (acc.sum() + h.sum() + 2))


def test_poisoned_evaluation_set_cannot_change_thresholds():
    from labelwise.crossfit import cross_fit_scores
    from labelwise.models import OneVsRest

    rng = np.random.default_rng(0)
    n, d, L = 240, 20, 4
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, L))
    Y = (X @ W + rng.normal(size=(n, L)) > 1).astype(float)
    tr, ev = np.arange(160), np.arange(160, n)
    model = OneVsRest(random_state=0, prune_threshold=0.0)
    S_oof = cross_fit_scores(model, X[tr], Y[tr], cv=4, k=L)
    model.fit(X[tr], Y[tr])

    def run(Y_eval):
        pol = PerLabelThreshold(objective="macro-f1").fit(S_oof, Y[tr])
        sets = pol.apply(model.decision_function(X[ev], k=L))
        return pol.thresholds_.copy(), f1_score(Y_eval, LabelSets(sets), average="macro")

    t_clean, f_clean = run(Y[ev])
    t_poison, f_poison = run(1.0 - Y[ev])  # every evaluation label flipped
    assert np.array_equal(t_clean, t_poison)
    assert f_clean != f_poison  # the evaluation itself does see the poison
    for cls in (TopK, GlobalThreshold, PerLabelThreshold, PrecisionTarget, Combined):
        params = inspect.signature(cls.fit).parameters
        # tuning scores, their truth and (keyword only) the training rows' fold ids
        assert list(params) == ["self", "S", "Y", "folds"]
        assert params["folds"].kind is inspect.Parameter.KEYWORD_ONLY


def test_topk_and_ties_by_lower_label_id():
    S = np.array([[0.5, 0.9, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    out = TopK(2).fit(S, np.zeros((2, 4))).apply(S).toarray()
    assert out.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def test_sparse_unretrieved_never_accepted_and_dtypes():
    S, Y = _data(sparse=True)
    pol = GlobalThreshold(-100.0).fit(S, Y)
    sets, scores = pol.apply(S, return_scores=True)
    M = sp.csr_matrix(S)
    assert sets.nnz == M.nnz and sets.indices.dtype in (np.int32, np.int64)
    assert sets.dtype == np.float32 and np.all(sets.data == 1)
    assert np.allclose(scores.toarray(), M.toarray())


def test_precision_target_reaches_target_and_matches_coverage_metric():
    from labelwise.metrics import coverage_at_precision

    rng = np.random.default_rng(2)
    P = rng.random((300, 5))
    Y = (rng.random((300, 5)) < P).astype(float)
    pol = PrecisionTarget(0.8).fit(P, Y)
    ref = coverage_at_precision(Y, P, target=0.8, mode="labels")
    assert pol.threshold_ == pytest.approx(ref.threshold)
    assert pol.coverage_ == pytest.approx(ref.coverage)
    assert pol.precision_ >= 0.8
    pw = PrecisionTarget(0.8, mode="pointwise").fit(P, Y)
    assert pw.threshold_ == 0.8 and np.all(P[pw.apply(P).toarray() > 0] >= 0.8)
    assert pol.coverage(P) == pytest.approx(pol.coverage_)


def test_combined_top_k_and_at_least_one():
    S = np.array([[0.9, 0.8, 0.7], [0.1, 0.3, 0.2], [0.95, 0.1, 0.99]])
    pol = Combined(GlobalThreshold(0.5), k=1).fit(S, np.zeros((3, 3)))
    assert pol.apply(S).toarray().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    pol2 = Combined(GlobalThreshold(0.5), at_least_one=False).fit(S, np.zeros((3, 3)))
    assert pol2.apply(S).toarray().tolist() == [[1, 1, 1], [0, 0, 0], [1, 0, 1]]


@pytest.mark.parametrize("pol", [TopK(2), GlobalThreshold(objective="macro-f1"),
                                 PerLabelThreshold(objective="micro-f1"), PrecisionTarget(0.7),
                                 PrecisionTarget(0.7, confidence=0.9),
                                 Combined(PerLabelThreshold(), k=2)])
def test_save_load_roundtrip(tmp_path, pol):
    S, Y = _data(sparse=True)
    pol.fit(S, Y)
    pol.save(tmp_path)
    back = load_policy(tmp_path)
    assert type(back) is type(pol)
    assert (back.apply(S) != pol.apply(S)).nnz == 0
    again = policy_from_dict(pol.to_dict(), pol.arrays())
    assert (again.apply(S) != pol.apply(S)).nnz == 0
    assert back.explain() == pol.explain()


def test_load_refuses_tampered_npz(tmp_path):
    S, Y = _data()
    PerLabelThreshold().fit(S, Y).save(tmp_path)
    (tmp_path / "decision.npz").write_bytes((tmp_path / "decision.npz").read_bytes() + b"x")
    with pytest.raises(DataFormatError, match="sha256"):
        load_policy(tmp_path)


def test_errors():
    S, Y = _data()
    with pytest.raises(NotFittedError):
        TopK(1).apply(S)
    with pytest.raises(DataFormatError, match="objective"):
        PerLabelThreshold(objective="f2").fit(S, Y)
    with pytest.raises(DataFormatError, match="shape"):
        GlobalThreshold().fit(S, Y[:, :2])
    bad = S.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataFormatError, match=r"S\[3, 1\]"):
        GlobalThreshold().fit(bad, Y)
    pol = GlobalThreshold().fit(S, Y)
    with pytest.raises(DataFormatError, match="labels"):
        pol.apply(S[:, :2])
    with pytest.raises(DataFormatError, match="unknown decision policy"):
        policy_from_dict({"policy": "os.system"}, {})


def test_entries_dense_and_sparse_agree():
    S, _ = _data()
    S = S + 10.0  # no zeros: the CSR stores every pair
    a, b = entries(S), entries(sp.csr_matrix(S))
    for f in ("rows", "cols", "values", "indptr"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert a.dense and not b.dense


# ------------------------------------------------------------------ selection by cross-validation
def test_clone_policy_copies_parameters_not_state():
    from labelwise.decision import clone_policy

    S, Y = _data()
    p = PerLabelThreshold(objective="micro-f1", shrinkage=3.0, max_rounds=7).fit(S, Y)
    c = clone_policy(p)
    assert type(c) is PerLabelThreshold and c._params() == p._params()
    assert not hasattr(c, "thresholds_")
    comb = Combined(GlobalThreshold(0.2), k=2, at_least_one=False)
    cc = clone_policy(comb)
    assert cc.k == 2 and cc.at_least_one is False and cc.threshold is not comb.threshold
    assert cc.threshold.threshold == 0.2
    with pytest.raises(TypeError):
        clone_policy("top-k")


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("metric", ["macro-f1", "micro-f1", "samples-f1"])
def test_cross_validated_score_matches_a_plain_loop(sparse, metric):
    from labelwise.decision import cross_validated_score
    from labelwise.split import IterativeStratifiedKFold

    S, Y = _data(n=80, L=5, seed=3, sparse=sparse)
    pol = PerLabelThreshold(objective="macro-f1", shrinkage=2.0)
    got = cross_validated_score(pol, S, Y, cv=4, metric=metric, random_state=5)
    Sd = S.toarray() if sparse else S
    stored = np.ones((80, 5), bool)
    if sparse:  # the stored pattern (a stored 0.0 is still retrieved)
        stored[:] = False
        stored[np.repeat(np.arange(80), np.diff(S.indptr)), S.indices] = True
    pred = np.zeros_like(Y)
    for tr, te in IterativeStratifiedKFold(n_splits=4, random_state=5).split(np.zeros((80, 1)), Y):
        p = PerLabelThreshold(objective="macro-f1", shrinkage=2.0).fit(
            S[tr] if sparse else Sd[tr], Y[tr])
        pred[te] = (Sd[te] >= p.thresholds_) & stored[te]
    assert got == pytest.approx(_f1_ref(Y, pred, metric.split("-")[0]))
    assert not hasattr(pol, "thresholds_")  # the candidate itself is never fitted


def test_cross_validated_score_only_sees_its_rows():
    """The score of a policy depends on the tuning rows alone: rows outside S (a poisoned
    evaluation set) cannot move it, and so cannot move select_policy's choice."""
    from labelwise.decision import cross_validated_score, select_policy

    S, Y = _data(n=90, L=4, seed=4)
    cands = [PerLabelThreshold(shrinkage=s) for s in (0.0, 5.0, 50.0)]
    best, scores = select_policy(cands, S, Y, cv=3)
    assert scores == [cross_validated_score(c, S, Y, cv=3) for c in cands]
    i = int(np.argmax(scores))
    assert best.shrinkage == cands[i].shrinkage
    np.testing.assert_array_equal(best.thresholds_,
                                  PerLabelThreshold(shrinkage=cands[i].shrinkage)
                                  .fit(S, Y).thresholds_)


def test_cross_validated_score_prefers_the_honest_policy():
    """A global threshold beats a per-label one without shrinkage when labels share one
    true threshold and have few positives (per-label tuning fits noise)."""
    from labelwise.decision import cross_validated_score

    rng = np.random.default_rng(0)
    n, L = 300, 30
    S = rng.normal(size=(n, L))
    Y = (rng.random((n, L)) < 1 / (1 + np.exp(-3 * (S - 1.5)))).astype(float)
    glob = cross_validated_score(GlobalThreshold(objective="micro-f1"), S, Y, metric="micro-f1")
    per = cross_validated_score(PerLabelThreshold(objective="micro-f1", shrinkage=0.0), S, Y,
                                metric="micro-f1")
    assert glob > per


def test_cross_validated_score_with_transform_fits_inside_folds():
    from labelwise.calibration import PlattCalibrator
    from labelwise.decision import cross_validated_score

    S, Y = _data(n=80, L=3, seed=6)
    seen = []

    def platt(S_fit, Y_fit, S_eval):
        seen.append((S_fit.shape[0], S_eval.shape[0]))
        c = PlattCalibrator().fit(S_fit, Y_fit)
        return c.transform(S_fit), c.transform(S_eval)

    v = cross_validated_score(PerLabelThreshold(), S, Y, cv=4, transform=platt)
    assert 0.0 <= v <= 1.0
    assert len(seen) == 4 and all(a + b == 80 for a, b in seen)


def test_selection_bad_arguments():
    from labelwise.decision import cross_validated_score, select_policy

    S, Y = _data(n=10, L=2)
    with pytest.raises(DataFormatError, match="metric"):
        cross_validated_score(TopK(1), S, Y, metric="f1")
    with pytest.raises(DataFormatError, match="cv"):
        cross_validated_score(TopK(1), S, Y, cv=1)
    with pytest.raises(DataFormatError, match="at least"):
        cross_validated_score(TopK(1), S[:3], Y[:3], cv=4)
    with pytest.raises(DataFormatError, match="candidate"):
        select_policy([], S, Y)


# ------------------------------------------------------------------ fold-averaged thresholds
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("objective", ["macro-f1", "micro-f1"])
def test_fold_averaged_thresholds_are_the_mean_of_per_fold_fits(sparse, objective):
    S, Y = _data(n=90, L=4, seed=7, sparse=sparse)
    folds = np.arange(90) % 3
    pol = PerLabelThreshold(objective=objective, shrinkage=2.0).fit(S, Y, folds=folds)
    per_fold = []
    for f in range(3):
        rows = np.flatnonzero(folds == f)
        per_fold.append(PerLabelThreshold(objective=objective, shrinkage=2.0).fit(
            S[rows], Y[rows]).thresholds_)
    assert np.allclose(pol.thresholds_, np.mean(per_fold, axis=0))
    assert pol.n_folds_ == 3 and pol.explain()["n_folds"] == 3
    assert pol.n_positives_.tolist() == Y.sum(0).astype(int).tolist()
    Sd = S.toarray() if sparse else S
    stored = (np.zeros(Sd.shape, bool) if sparse else np.ones(Sd.shape, bool))
    if sparse:
        stored[np.repeat(np.arange(90), np.diff(S.indptr)), S.indices] = True
    assert np.array_equal(pol.apply(S).toarray() > 0, (Sd >= pol.thresholds_) & stored)
    plain = PerLabelThreshold(objective=objective, shrinkage=2.0).fit(S, Y)
    assert plain.n_folds_ is None and not np.allclose(plain.thresholds_, pol.thresholds_)


def test_fold_average_resists_a_fold_on_its_own_scale():
    """A rare label whose out-of-fold scores come from fold models on different scales: the
    pooled tuning mixes the scales, the per-fold tuning does not."""
    rng = np.random.default_rng(11)
    n = 300
    folds = np.arange(n) % 3
    y = np.zeros(n)
    y[rng.choice(n, 30, replace=False)] = 1
    s = y * 2.0 + rng.normal(size=n) * 0.5
    s[folds == 2] -= 3.0  # fold 2's model scores everything 3 lower
    pooled = PerLabelThreshold(shrinkage=0.0).fit(s[:, None], y[:, None])
    averaged = PerLabelThreshold(shrinkage=0.0).fit(s[:, None], y[:, None], folds=folds)
    per_fold = [PerLabelThreshold(shrinkage=0.0).fit(s[folds == f, None], y[folds == f, None])
                .thresholds_[0] for f in range(3)]
    assert averaged.thresholds_[0] == pytest.approx(np.mean(per_fold))
    # a new model on the average scale (scores shifted by -1): the averaged threshold keeps
    # the positives apart better than the pooled one
    s_new = y * 2.0 + rng.normal(size=n) * 0.5 - 1.0

    def f1_at(t):
        pred = s_new >= t
        return 2 * (pred & (y > 0)).sum() / (pred.sum() + y.sum())

    assert f1_at(averaged.thresholds_[0]) > f1_at(pooled.thresholds_[0])


def test_fold_arguments_refused():
    S, Y = _data(n=30)
    with pytest.raises(DataFormatError, match="one fold id per row"):
        PerLabelThreshold().fit(S, Y, folds=np.zeros(29, int))
    with pytest.raises(DataFormatError, match="integers"):
        PerLabelThreshold().fit(S, Y, folds=np.zeros(30))
    for pol in (TopK(1), GlobalThreshold(), PrecisionTarget(0.8), Combined()):
        with pytest.raises(DataFormatError, match="does not take folds"):
            pol.fit(S, Y, folds=np.zeros(30, int))
    d = PerLabelThreshold().fit(S, Y, folds=np.arange(30) % 2).to_dict()
    d["state"]["n_folds"] = "2"
    with pytest.raises(DataFormatError, match="n_folds"):
        policy_from_dict(d, PerLabelThreshold().fit(S, Y).arrays())


def test_fold_averaged_policy_roundtrip(tmp_path):
    S, Y = _data(sparse=True)
    pol = PerLabelThreshold().fit(S, Y, folds=np.arange(S.shape[0]) % 4)
    pol.save(tmp_path)
    back = load_policy(tmp_path)
    assert back.n_folds_ == 4 and np.array_equal(back.thresholds_, pol.thresholds_)
    assert back.explain() == pol.explain()


def test_cross_validated_score_with_folds_matches_a_plain_loop():
    from labelwise.decision import cross_validated_score, select_policy
    from labelwise.split import IterativeStratifiedKFold

    S, Y = _data(n=120, L=4, seed=5)
    folds = np.arange(120) % 3
    pol = PerLabelThreshold(shrinkage=1.0)
    got = cross_validated_score(pol, S, Y, cv=4, random_state=2, folds=folds)
    pred = np.zeros_like(Y)
    for tr, te in IterativeStratifiedKFold(n_splits=4, random_state=2).split(
            np.zeros((120, 1)), Y):
        ths = []
        for f in range(3):
            rows = tr[folds[tr] == f]
            ths.append(PerLabelThreshold(shrinkage=1.0).fit(S[rows], Y[rows]).thresholds_)
        pred[te] = S[te] >= np.mean(ths, axis=0)
    assert got == pytest.approx(_f1_ref(Y, pred, "macro"))
    assert got != pytest.approx(cross_validated_score(pol, S, Y, cv=4, random_state=2))
    best, scores = select_policy([PerLabelThreshold(shrinkage=1.0), PerLabelThreshold(
        shrinkage=50.0)], S, Y, cv=4, random_state=2, folds=folds)
    assert scores[0] == pytest.approx(got) and best.n_folds_ == 3


# ------------------------------------------------------------------ precision lower bound
def test_precision_lower_bound_hand_values():
    from labelwise.decision._bounds import precision_lower_bound

    # k = n: the bound solves p^n = 1 - c
    assert precision_lower_bound(np.array([10]), np.array([10]), 0.95)[0] == pytest.approx(
        0.05 ** (1 / 10))
    # k = 1 of n = 1
    assert precision_lower_bound(np.array([1]), np.array([1]), 0.9)[0] == pytest.approx(0.1)
    assert precision_lower_bound(np.array([0]), np.array([5]), 0.95)[0] == 0.0
    # the bound is the p where P(Binomial(n, p) >= k) = 1 - c
    from scipy.stats import binom

    lb = precision_lower_bound(np.array([45]), np.array([50]), 0.95)[0]
    assert binom.sf(44, 50, lb) == pytest.approx(0.05, abs=1e-9)


def _start_ref(target, level, share):
    """Slow reference of a sequence's start: the fewest pairs n at which floor(share * n)
    correct of n pass, by the binomial tail (the Clopper-Pearson lower bound of k of n
    reaches the target iff P(Binomial(n, target) >= k) <= 1 - level)."""
    import math

    from scipy.stats import binom

    for n in range(1, 5000):
        k = math.floor(share * n + 1e-12)
        if k > 0 and binom.sf(k - 1, n, target) <= 1 - level + 1e-12:
            return n
    return None


def _target_ref(P, Y, target, confidence):
    """Slow reference of the Bonferroni pair of fixed sequences: distinct values as
    thresholds from the highest down, each sequence at level 1 - (1 - c) / 2; the first
    skips thresholds accepting fewer pairs than its zero-error start, the second fewer than
    its half-way start; each tests by the binomial tail and stops at its first failure; the
    lowest threshold either passed is kept."""
    from scipy.stats import binom

    level = 1 - (1 - confidence) / 2
    best = float("inf")
    for share in (1.0, (1 + target) / 2):
        start = _start_ref(target, level, share)
        for t in sorted(set(P.ravel().tolist()), reverse=True):
            acc = P >= t
            n = int(acc.sum())
            if n < start:
                continue
            k = int(Y[acc].sum())
            if k == 0 or binom.sf(k - 1, n, target) > 1 - level:
                break
            best = min(best, t)
    return best


# hand example (target 0.5, each test at level 0.75, i.e. c = 0.5): a bound of k of n
# reaches 0.5 iff P(Binomial(n, 1/2) >= k) <= 1/4. The zero-error start is 2 pairs
# (2 of 2: 1/4); the half-way start (share 0.75) is 7 pairs: floor(0.75 n) of n gives
# n=4: 3 of 4, 5/16; n=5: 3 of 5, 1/2; n=6: 4 of 6, 22/64; n=7: 5 of 7, 29/128 <= 1/4.
# Cuts: 1 of 1 (below the starts), 2 of 2 (1/4: passes), 2 of 4 (11/16: fails),
# 6 of 7 (8/128: passes), 7 of 9 (46/512: passes), 7 of 12 (1586/4096: fails).
_HAND_K = np.array([1, 2, 2, 6, 7, 7])
_HAND_N = np.array([1, 2, 4, 7, 9, 12])


def test_sequence_start_hand_values():
    from labelwise.decision._bounds import sequence_start

    assert sequence_start(0.5, 0.75) == 2 and sequence_start(0.5, 0.75, 0.75) == 7
    # share 1: ceil(log(1 - c) / log(target)): log(0.05) / log(0.9) = 28.43 -> 29
    assert sequence_start(0.9, 0.95) == 29 and sequence_start(0.9, 0.975) == 36
    assert sequence_start(0.5, 0.75, 0.5) is None and sequence_start(1.0, 0.75) is None
    for target, level in ((0.9, 0.975), (0.95, 0.975), (0.85, 0.9)):
        half = (1 + target) / 2
        assert sequence_start(target, level, half) == _start_ref(target, level, half)
        assert sequence_start(target, level) == _start_ref(target, level, 1.0)


def test_fixed_sequence_cut_hand_values():
    from labelwise.decision._bounds import fixed_sequence_cut

    k, n = _HAND_K, _HAND_N
    # from the zero-error start (2 pairs): 2 of 2 passes, 2 of 4 fails
    assert fixed_sequence_cut(k, n, 0.5, 0.75) == 1
    # from the half-way start (7 pairs): 6 of 7 and 7 of 9 pass, 7 of 12 fails
    assert fixed_sequence_cut(k, n, 0.5, 0.75, start_pairs=7) == 4
    # a later cut that would pass is never reached after a failure
    assert fixed_sequence_cut(np.array([2, 2, 6]), np.array([2, 4, 7]), 0.5, 0.75) == 0
    assert fixed_sequence_cut(np.array([0, 0]), np.array([2, 3]), 0.5, 0.75) == -1
    assert fixed_sequence_cut(k, n, 1.0, 0.75) == -1
    assert fixed_sequence_cut(k, n, 0.5, 0.75, start_pairs=13) == -1


def test_certified_cut_hand_values():
    from labelwise.decision._bounds import certified_cut

    j, ends, starts, level = certified_cut(_HAND_K, _HAND_N, 0.5, 0.5)
    assert (j, ends, starts) == (4, [1, 4], [2, 7]) and level == pytest.approx(0.75)
    # the zero-error sequence alone certifies when the other cannot start
    j, ends, starts, _ = certified_cut(_HAND_K[:3], _HAND_N[:3], 0.5, 0.5)
    assert (j, ends, starts) == (1, [1, -1], [2, 7])


def test_sequence_trace_hand_values(tmp_path):
    """PrecisionTarget.sequence_: why the certificate stops where it does (the hand example
    above: level 0.75 each, target 0.5, starts 2 and 7 pairs)."""
    from labelwise.decision.policies import _sequence_trace

    t = _sequence_trace(_HAND_K, _HAND_N, 0.5, 0.75, [1, 4], [2, 7])
    assert t["pairs"] == 12 and t["level"] == 0.75 and t["chosen"] == 1
    zero, half = t["sequences"]
    assert zero["start_share"] == 1.0 and zero["min_pairs"] == 2 and zero["passed"] == 1
    assert zero["first_test"] == {"correct": 2, "pairs": 2, "lower_bound": pytest.approx(0.5)}
    assert zero["last_pass"] == zero["first_test"]
    assert zero["first_failure"]["correct"] == 2 and zero["first_failure"]["pairs"] == 4
    assert half["start_share"] == 0.75 and half["min_pairs"] == 7 and half["passed"] == 2
    assert (half["first_test"]["correct"], half["first_test"]["pairs"]) == (6, 7)
    assert (half["last_pass"]["correct"], half["last_pass"]["pairs"]) == (7, 9)
    assert (half["first_failure"]["correct"], half["first_failure"]["pairs"]) == (7, 12)
    # the bounds are the Clopper-Pearson ones: P(Binomial(9, b) >= 7) = 1/4 at 7 of 9
    from scipy.stats import binom

    assert binom.sf(6, 9, half["last_pass"]["lower_bound"]) == pytest.approx(0.25)
    assert half["first_failure"]["lower_bound"] < 0.5 <= half["last_pass"]["lower_bound"]
    none = _sequence_trace(np.array([0, 0]), np.array([2, 3]), 0.5, 0.75, [-1, -1], [2, 7])
    assert none["chosen"] is None
    assert none["sequences"][0]["passed"] == 0 and none["sequences"][0]["last_pass"] is None
    assert none["sequences"][0]["first_test"] == {"correct": 0, "pairs": 2, "lower_bound": 0.0}
    assert none["sequences"][0]["first_failure"] == none["sequences"][0]["first_test"]
    assert none["sequences"][1]["first_test"] is None  # 3 pairs: the half-way start is 7
    # a fitted policy carries it (and saves it): 4 pairs, all correct, target 0.5, c = 0.5
    P = np.array([[0.9, 0.8], [0.7, 0.6]])
    pol = PrecisionTarget(0.5, confidence=0.5).fit(P, np.ones((2, 2)))
    seq = pol.sequence_
    assert seq["chosen"] == 0 and seq["sequences"][0]["passed"] == 3
    assert seq["sequences"][0]["first_failure"] is None and pol.threshold_ == 0.6
    assert pol.explain()["sequence"] == seq
    from labelwise.decision.policies import load_policy

    pol.save(tmp_path)
    assert load_policy(tmp_path).sequence_ == seq
    assert PrecisionTarget(0.5).fit(P, np.ones((2, 2))).sequence_ is None


def test_precision_target_with_confidence_matches_reference_and_is_stricter():
    # 800 rows (200 before the fixed-sequence rule): the sequence starts at its first cut
    # with >= log(1 - c) / log(target) pairs, and one miss there stops it; on 200 rows that
    # happened at c = 0.95, leaving nothing accepted
    rng = np.random.default_rng(12)
    P = np.round(rng.random((800, 4)), 2)
    Y = (rng.random((800, 4)) < P).astype(float)
    for conf in (0.8, 0.95):
        pol = PrecisionTarget(0.85, confidence=conf).fit(P, Y)
        assert pol.threshold_ == _target_ref(P, Y, 0.85, conf)
        assert pol.precision_lower_bound_ >= 0.85 and pol.precision_ >= 0.85
    point = PrecisionTarget(0.85).fit(P, Y)
    strict = PrecisionTarget(0.85, confidence=0.95).fit(P, Y)
    assert strict.threshold_ > point.threshold_ and strict.coverage_ < point.coverage_
    assert point.precision_lower_bound_ is None


def test_precision_target_with_confidence_holds_on_new_rows():
    """Tuned on 300 rows of calibrated probabilities, the point rule falls short of the
    target on new rows about half the time; the lower-bound rule rarely does."""
    rng = np.random.default_rng(13)
    short_point, short_lcb = 0, 0
    for _ in range(40):
        P = rng.beta(2, 2, size=(300, 3))
        Y = (rng.random(P.shape) < P).astype(float)
        P2 = rng.beta(2, 2, size=(20000, 3))
        Y2 = (rng.random(P2.shape) < P2).astype(float)
        for pol, count in ((PrecisionTarget(0.85), "p"),
                           (PrecisionTarget(0.85, confidence=0.95), "l")):
            acc = pol.fit(P, Y).apply(P2).toarray() > 0
            if acc.any() and Y2[acc].mean() < 0.85:
                if count == "p":
                    short_point += 1
                else:
                    short_lcb += 1
    assert short_point >= 12 and short_lcb <= 4


def _step_precision(t):
    """True precision of the pairs with score >= t when scores are uniform on (0, 1) and a
    pair is right with probability 0.97 above 0.9 and 0.8 below."""
    if t >= 0.9:
        return 0.97
    return (0.097 + 0.8 * (0.9 - t)) / (1 - t)


def test_precision_target_certificate_holds_under_the_search():
    """The promise of confidence=0.95 (the precision of the chosen threshold is >= target)
    fails in at most 5 % of 400 simulated tunings, with the true precision known exactly.
    Scanning every cut and keeping the lowest passing one (the former rule) fails more often:
    below t = 0.65 the true precision is just under the target, and many cuts there get a
    chance to pass by luck."""
    from labelwise.decision._bounds import precision_lower_bound

    rng = np.random.default_rng(20)
    target, runs = 0.85, 400
    fail_seq, fail_any = 0, 0
    assert _step_precision(0.7) > target > _step_precision(0.6)
    for _ in range(runs):
        S = rng.random((200, 3))
        Y = (rng.random(S.shape) < np.where(S >= 0.9, 0.97, 0.8)).astype(float)
        t = PrecisionTarget(target, confidence=0.95).fit(S, Y).threshold_
        fail_seq += bool(np.isfinite(t) and _step_precision(t) < target)
        order = np.argsort(-S.ravel(), kind="stable")
        k = np.cumsum(Y.ravel()[order])
        n = np.arange(1, k.size + 1)
        ok = np.flatnonzero(precision_lower_bound(k, n, 0.95) >= target)
        fail_any += bool(ok.size and _step_precision(S.ravel()[order][ok[-1]]) < target)
    assert fail_seq <= 0.05 * runs
    assert fail_any > fail_seq


def _top_error_precision(t):
    """True precision of the pairs with score >= t when scores are uniform on (0, 1) and a
    pair is right with probability 0.95 above 0.5 and 0.7 below (0.85 at t = 1/6)."""
    if t >= 0.5:
        return 0.95
    return (0.475 + 0.7 * (0.5 - t)) / (1 - t)


def test_precision_target_pair_of_sequences_keeps_the_promise_and_certifies_more():
    """Top pairs 95 % right, target 0.85: a single sequence from the zero-error start (23 of
    23 top pairs right at level 0.975, 29 of 29 at 0.95) stops at once in most runs; the
    half-way sequence of the Bonferroni pair certifies in most of them. The promise (the
    chosen threshold's true precision >= target) still fails in at most 5 % of 400
    simulated tunings, though below t = 1/6 the true precision is just under the target (the
    lowest passing cut of all fails there more often)."""
    from labelwise.decision._bounds import fixed_sequence_cut, precision_lower_bound

    rng = np.random.default_rng(21)
    target, runs = 0.85, 400
    fail_pair = fail_any = cert_pair = cert_single = 0
    assert _top_error_precision(0.2) > target > _top_error_precision(0.1)
    for _ in range(runs):
        S = rng.random((300, 3))
        Y = (rng.random(S.shape) < np.where(S >= 0.5, 0.95, 0.7)).astype(float)
        t = PrecisionTarget(target, confidence=0.95).fit(S, Y).threshold_
        cert_pair += bool(np.isfinite(t))
        fail_pair += bool(np.isfinite(t) and _top_error_precision(t) < target)
        order = np.argsort(-S.ravel(), kind="stable")
        k = np.cumsum(Y.ravel()[order])
        n = np.arange(1, k.size + 1)
        cert_single += fixed_sequence_cut(k, n, target, 0.95) >= 0
        ok = np.flatnonzero(precision_lower_bound(k, n, 0.95) >= target)
        fail_any += bool(ok.size and _top_error_precision(S.ravel()[order][ok[-1]]) < target)
    assert fail_pair <= 0.05 * runs
    assert fail_any > fail_pair
    assert cert_single < 0.5 * runs < 0.8 * runs < cert_pair


def test_precision_target_confidence_errors():
    P, Y = _data()
    with pytest.raises(DataFormatError, match="confidence"):
        PrecisionTarget(0.8, confidence=1.0).fit(np.abs(P) / 4, Y)
    with pytest.raises(DataFormatError, match="mode='set'"):
        PrecisionTarget(0.8, mode="pointwise", confidence=0.9).fit(np.abs(P) / 4, Y)
