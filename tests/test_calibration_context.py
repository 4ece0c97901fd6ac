"""PlattCalibrator(per_label=True, context=True): the per-label Platt map followed by a
logistic map of each pair with its row and label (labelwise.calibration._context)."""

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.calibration import PlattCalibrator, calibrator_from_dict
from labelwise.calibration._context import FEATURES, context_features
from labelwise.decision import PrecisionTarget
from labelwise.decision._entries import entries
from labelwise.errors import DataFormatError


def _logit(p):
    p = min(max(p, 1e-6), 1 - 1e-6)
    return np.log(p / (1 - p))


def _features_ref(P, S, ceiling, positives):
    """Slow reference: one entry at a time, the row's top three found by sorting the row."""
    out = []
    for i in range(S.shape[0]):
        a, b = S.indptr[i], S.indptr[i + 1]
        cols = S.indices[a:b].tolist()
        raw = dict(zip(cols, S.data[a:b].tolist(), strict=True))
        prob = dict(zip(cols, P[a:b].tolist(), strict=True))
        order = sorted(cols, key=lambda j: (-raw[j], j))
        top3 = order[:3]
        for j in sorted(cols):
            r = order.index(j)
            others = [prob[c] for c in top3 if c != j]
            other = max(others) if others else 0.0
            out.append([_logit(prob[j]), r == 0, r == 1, r == 2, _logit(other),
                        prob[j] - other, np.log(max(sum(prob[c] for c in top3), 1e-6)),
                        _logit(ceiling[j]), np.log1p(positives[j])])
    return np.array(out, np.float64)


def test_context_features_match_a_slow_reference():
    rng = np.random.default_rng(3)
    M = np.round(rng.normal(size=(40, 7)), 1)  # ties in raw scores: lower column first
    mask = rng.random(M.shape) < 0.5
    mask[:2] = False  # rows 0 and 1: no entries
    mask[2, :] = False
    mask[2, 4] = True  # row 2: one entry (no rival)
    r, c = np.nonzero(mask)
    S = sp.csr_matrix((M[r, c], (r, c)), shape=M.shape)
    S.sort_indices()
    E = entries(S)
    P = rng.random(E.nnz)
    ceiling = rng.uniform(0.2, 0.95, 7)
    positives = rng.integers(0, 50, 7)
    got = context_features(P, E.values, E.rows, E.cols, E.indptr, ceiling, positives)
    assert got.shape == (E.nnz, len(FEATURES))
    np.testing.assert_allclose(got, _features_ref(P, S, ceiling, positives), atol=1e-12)
    # a hand case: one row, raw 3 > 2 > 1 > 0 at columns 3, 0, 2, 1, probabilities by column
    E1 = entries(np.array([[2.0, 0.0, 1.0, 3.0]]))  # dense: every pair stored
    p1 = np.array([0.5, 0.9, 0.2, 0.8])  # columns 0, 1, 2, 3
    f = context_features(p1, E1.values, E1.rows, E1.cols, E1.indptr, np.full(4, 0.5),
                         np.zeros(4, np.int64))
    # column 1: rank 3 (not in the top three), its rival the top three's best 0.8
    np.testing.assert_allclose(f[1, :7], [_logit(0.9), 0, 0, 0, _logit(0.8), 0.1,
                                          np.log(1.5)])
    # column 3: rank 0, rival max(0.5, 0.2)
    np.testing.assert_allclose(f[3, :7], [_logit(0.8), 1, 0, 0, _logit(0.5), 0.3,
                                          np.log(1.5)])


def _draw(rng, n, L=6, keep_noisy=0.86):
    """Relevance 30 %, raw score 2.5 r - 1.25 + N(0, 1); the last half of the labels are
    tags that are left off a relevant row 14 % of the time (as cooking's askers do)."""
    R = rng.random((n, L)) < 0.3
    S = 2.5 * R - 1.25 + rng.normal(size=(n, L))
    keep = np.where(np.arange(L) < L // 2, 1.0, keep_noisy)
    return S, (R & (rng.random((n, L)) < keep)).astype(float)


def test_context_probabilities_do_not_depend_on_k():
    """Tuning retrieves top 100, ingest top 5: a pair's probability must be the same."""
    rng = np.random.default_rng(5)
    S, Y = _draw(rng, 600)
    cal = PlattCalibrator(per_label=True, context=True).fit(S, Y)
    assert cal.context_ is not None
    dense = cal.transform(S)

    def top(k):
        idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
        rows = np.repeat(np.arange(S.shape[0]), k)
        M = sp.csr_matrix((S[rows, idx.ravel()], (rows, idx.ravel())), shape=S.shape)
        M.sort_indices()
        return M

    for k in (3, 4, 6):
        Pk = cal.transform(top(k)).tocoo()
        np.testing.assert_allclose(Pk.data, dense[Pk.row, Pk.col], rtol=2e-6)
    # the map differs from plain per-label Platt (it reads rows and labels)
    plain = PlattCalibrator(per_label=True).fit(S, Y).transform(S)
    assert np.abs(plain - dense).max() > 0.05


def test_context_round_trip_old_files_and_bad_weights():
    rng = np.random.default_rng(6)
    S, Y = _draw(rng, 300)
    cal = PlattCalibrator(per_label=True, context=True).fit(S, Y)
    d, arrays = cal.to_dict(), cal.arrays()
    back = calibrator_from_dict(d, arrays)
    np.testing.assert_array_equal(back.transform(S), cal.transform(S))
    assert set(cal.explain()["context"]) == {*FEATURES, "intercept"}
    # a file from before the context step: no "context" in params or state
    old = PlattCalibrator(per_label=True).fit(S, Y)
    od = old.to_dict()
    del od["params"]["context"], od["state"]["context"]
    np.testing.assert_array_equal(calibrator_from_dict(od, old.arrays()).transform(S),
                                  old.transform(S))
    bad = {**d, "state": {**d["state"], "context": d["state"]["context"][:-1]}}
    with pytest.raises(DataFormatError, match="context weights"):
        calibrator_from_dict(bad, arrays)
    short = {k: v for k, v in arrays.items() if k != "ceiling"}
    with pytest.raises(DataFormatError):
        calibrator_from_dict(d, short)


def test_context_needs_both_classes_else_plain_platt():
    rng = np.random.default_rng(7)
    S = rng.normal(size=(30, 4))
    Y = np.zeros_like(S)
    Y[:5, 0] = 1  # 5 true pairs: too few for the context fit
    cal = PlattCalibrator(per_label=True, context=True).fit(S, Y)
    assert cal.context_ is None and cal.explain()["context"] is None
    plain = PlattCalibrator(per_label=True).fit(S, Y)
    np.testing.assert_array_equal(cal.transform(S), plain.transform(S))


def test_context_certificate_keeps_the_promise():
    """The context map is fitted on other rows than those that certify (as tune does: fit
    rows' out-of-fold scores vs held-out rows), so the fixed-sequence certificate on its
    probabilities keeps its promise: over 80 simulated tunings (target 0.9; half the labels'
    confident pairs are only 86 % right) the chosen threshold's true precision (on 5,000
    fresh rows) is below the target in at most 5 % of runs; the point estimate's cut (the
    lowest whose held-out precision reaches the target, no bound) fails far more often, so
    the simulation sees a broken rule."""
    rng = np.random.default_rng(22)
    target, runs = 0.9, 80
    S_ref, Y_ref = _draw(rng, 4000)
    fail = fail_point = cert = 0
    for _ in range(runs):
        S_f, Y_f = _draw(rng, 300)
        S_c, Y_c = _draw(rng, 500)
        cal = PlattCalibrator(per_label=True, context=True).fit(S_f, Y_f)
        P_c, P_r = cal.transform(S_c), cal.transform(S_ref)

        def true_precision(t, P_r=P_r):
            m = P_r >= t
            return Y_ref[m].mean() if m.any() else 1.0

        t = PrecisionTarget(target, confidence=0.95).fit(P_c, Y_c).threshold_
        cert += bool(np.isfinite(t))
        fail += bool(np.isfinite(t) and true_precision(t) < target)
        t_point = PrecisionTarget(target).fit(P_c, Y_c).threshold_
        fail_point += bool(np.isfinite(t_point) and true_precision(t_point) < target)
    assert cert >= 0.8 * runs  # the promise is not kept by certifying nothing
    assert fail <= 0.05 * runs
    assert fail_point > 0.3 * runs


def test_ridge_logistic_matches_scikit_learn():
    """The context fit's Newton solver against scikit-learn's LogisticRegression (C = 1)."""
    from sklearn.linear_model import LogisticRegression

    from labelwise.calibration._context import _ridge_logistic

    rng = np.random.default_rng(8)
    Z = rng.normal(size=(2000, 5))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(Z @ [1.0, -2.0, 0.5, 0.0, 3.0] + 0.3))))
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=5000).fit(Z, y)
    got = _ridge_logistic(Z, y.astype(float))
    np.testing.assert_allclose(got[:-1], ref.coef_[0], atol=1e-6)
    assert abs(got[-1] - ref.intercept_[0]) < 1e-6


def _pipeline(seed, n_labels, **tune):
    """A OneVsRest pipeline on random sparse rows, tuned with the context map (or ``tune``)."""
    from labelwise import Pipeline
    from labelwise.models import OneVsRest

    rng = np.random.default_rng(seed)
    X = sp.random(300, 30, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(30, n_labels)) > 0.3).astype(np.float32))
    pipe = Pipeline(model=OneVsRest(n_threads=1, random_state=0)).fit(X, Y)
    tune = {"objective": "precision=0.8", "calibration": "platt-per-label+context", **tune}
    pipe.tune(X, Y, cv=3, k=4, select_c=False, **tune)
    return pipe, X


def test_pipeline_tunes_with_context_and_reloads_it(tmp_path):
    """tune(calibration="platt-per-label+context"): the certified policy is fitted on its
    probabilities, and a saved pipeline gives the same probabilities and sets back."""
    from labelwise import Pipeline

    pipe, X = _pipeline(9, 5)
    assert pipe.calibrator_.context and pipe.tuning_["calibration"] == "platt-per-label+context"
    assert pipe.calibrator_.context_ is not None
    pipe.save(tmp_path / "p")
    again = Pipeline.load(tmp_path / "p")
    assert again.calibrator_.context
    np.testing.assert_array_equal(again.predict_proba(X).toarray(), pipe.predict_proba(X).toarray())
    assert (again.predict(X) != pipe.predict(X)).nnz == 0


def test_pipeline_context_probabilities_do_not_depend_on_the_k_asked():
    """predict_proba(k=1 or 2) on a context-tuned pipeline: the row's top pairs are still
    read (scored at k >= 3, then cut), so each kept pair has the probability it has at k=4,
    and the kept pairs are the top raw scores."""
    pipe, X = _pipeline(11, 6)
    assert pipe.calibrator_.context_ is not None and pipe.calibrator_.min_k == 3
    P4 = pipe.predict_proba(X, k=4).toarray()
    S4 = pipe.decision_function(X, k=4).toarray()
    for k in (1, 2):
        Pk = pipe.predict_proba(X, k=k).tocoo()
        assert np.all(np.diff(pipe.predict_proba(X, k=k).indptr) == k)
        np.testing.assert_array_equal(Pk.data, P4[Pk.row, Pk.col])
        for i in range(X.shape[0]):  # the kept labels are the row's k best raw scores
            stored = np.flatnonzero(S4[i] != 0)
            best = stored[np.lexsort((stored, -S4[i, stored]))][:k]
            assert sorted(Pk.col[Pk.row == i]) == sorted(best)
    # plain per-label Platt reads each pair alone: nothing more is scored
    plain, _ = _pipeline(11, 6, objective="micro-f1", calibration="platt-per-label")
    assert plain.calibrator_.min_k == 1
