"""Blends in ``--model auto``: the Blend model against a by-hand reference, the blends auto
scores, calibration that never sees the scored fold's labels, the choice and the budget."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.auto import (
    KEEP_PER_FAMILY,
    AutoModel,
    Family,
    _Candidate,
    _fold_calibrated,
    _Kept,
    _prune_kept,
    blend_sets,
)
from labelwise.calibration import PlattCalibrator
from labelwise.models.blend import Blend
from labelwise.models.forest import LabelForest
from labelwise.models.ovr import OneVsRest
from labelwise.pipeline import Pipeline
from labelwise.split import IterativeStratifiedKFold


def _data(n=180, d=10, L=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, L))
    Z = X @ W + 0.8 * np.abs(X[:, :L])  # partly linear, partly not
    Y = (Z > np.quantile(Z, 0.7, axis=0)).astype(np.float32)
    return X, sp.csr_matrix(Y)


MEMBERS = [["OneVsRest", {"loss": "logistic", "C": 2.0}],
           ["LabelForest", {"kind": "extra", "n_estimators": 6}]]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_blend_equals_the_mean_of_platt_mapped_members_by_hand():
    X, Y = _data()
    n, L = Y.shape
    blend = Blend(MEMBERS, cv=3, n_threads=1, random_state=5).fit(X, Y)
    makers = [lambda: OneVsRest(loss="logistic", C=2.0, n_threads=1, random_state=5),
              lambda: LabelForest(kind="extra", n_estimators=6, n_threads=1, random_state=5)]
    splits = list(IterativeStratifiedKFold(n_splits=3, random_state=5).split(np.zeros((n, 1)), Y))
    probs = []
    for i, make in enumerate(makers):
        oof = np.zeros((n, L))
        for tr, te in splits:  # out-of-fold scores, every label
            oof[te] = make().fit(X[tr], Y[tr]).decision_function(X[te], k=L).toarray()
        cal = PlattCalibrator(per_label=True).fit(oof, Y)
        np.testing.assert_allclose(blend.platt_a_[i], cal.a_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(blend.platt_b_[i], cal.b_, rtol=1e-9, atol=1e-12)
        full = make().fit(X, Y).decision_function(X, k=L).toarray()
        probs.append(_sigmoid(cal.a_ * full + cal.b_))
    expect = np.mean(probs, axis=0)
    got = blend.decision_function(X, k=L).toarray()
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blend.predict_members(X), np.stack(probs), rtol=1e-5, atol=1e-6)
    # probabilities: the default rule is 0.5 on the mean probability
    np.testing.assert_array_equal(blend.predict(X).toarray() > 0, expect > 0.5)


@pytest.mark.parametrize("members,match", [
    ([], "non-empty"),
    ([["Blend", {}]], "not Blend"),
    ([["NoSuchModel", {}]], "saved model classes"),
    ([["OneVsRest"]], r"\[class name, params dict\]"),
])
def test_blend_refuses_bad_members(members, match):
    X, Y = _data(n=30)
    with pytest.raises(ValueError, match=match):
        Blend(members).fit(X, Y)
    with pytest.raises(ValueError, match="cv must be an int >= 2"):
        Blend(MEMBERS, cv=1).fit(X, Y)


def _kept(family, mean, index, S=None):
    fam = Family(family, OneVsRest, applies=lambda f: True, settings=lambda f: [{}],
                 cost=lambda f, s: 1.0)
    return _Kept(mean, index, _Candidate(fam, {"i": index}, 0, 1.0),
                 np.zeros((2, 2)) if S is None else S, 1.0)


def test_kept_candidates_and_the_blends_scored():
    kept = [_kept("a", 0.70, 0), _kept("a", 0.72, 1), _kept("a", 0.71, 2), _kept("b", 0.69, 3),
            _kept("c", 0.60, 4), _kept("b", 0.50, 5), _kept("b", 0.65, 6)]
    kept = _prune_kept(kept)
    assert KEEP_PER_FAMILY == 2
    assert [k.index for k in kept] == [1, 2, 3, 6, 4]  # best two per family, by score
    # best two (a1, a2), best three (+ b3), best + best other family (a1, b3), + c4
    by_index = [tuple(sorted(kept[i].index for i in g)) for g in blend_sets(kept)]
    assert by_index == [(1, 2), (1, 2, 3), (1, 3), (1, 3, 4)]
    # one family only: the best two and three, no cross-family blend
    only = _prune_kept([_kept("a", 0.5, 0), _kept("a", 0.6, 1)])
    assert [tuple(sorted(only[i].index for i in g)) for g in blend_sets(only)] == [(0, 1)]


def test_fold_calibration_never_uses_the_scored_folds_labels():
    X, Y = _data(n=90)
    n, L = Y.shape
    rng = np.random.default_rng(1)
    S = rng.normal(size=(n, L)) + 2.0 * Y.toarray()
    folds = np.arange(n) % 3
    kc = _kept("a", 0.5, 0, S)
    cal = _fold_calibrated([kc], Y, folds, 3)[0]
    assert len(cal) == 4
    flipped = Y.toarray().copy()
    flipped[folds == 1] = 1 - flipped[folds == 1]  # other labels on fold 1's rows only
    cal2 = _fold_calibrated([kc], sp.csr_matrix(flipped), folds, 3)[0]
    np.testing.assert_allclose(cal2[1], cal[1])  # fold 1's mapping: fitted without them
    assert not np.allclose(cal2[0], cal[0]) and not np.allclose(cal2[3], cal[3])
    ref = PlattCalibrator(per_label=True).fit(S[folds != 1], Y[folds != 1]).transform(S)
    np.testing.assert_allclose(cal[1], ref)


def _forests():
    # two small forests differing only in seed: their blend is a bigger forest, which
    # cross-validates better than either here (fixed seeds: deterministic)
    return (Family("forest", LabelForest, applies=lambda f: True,
                   settings=lambda f: [{"kind": "extra", "n_estimators": 3, "random_state": 1},
                                       {"kind": "extra", "n_estimators": 3, "random_state": 2}],
                   cost=lambda f, s: 0.01),)


def test_auto_chooses_a_blend_that_beats_every_candidate_and_saves_it(tmp_path):
    X, Y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = AutoModel(budget=120, cv=3, families=_forests(), n_threads=1).fit(X, Y)
    board = auto.leaderboard_
    singles = [e for e in board if e["family"] == "forest"]
    blends = [e for e in board if e["family"] == "blend"]
    assert len(singles) == 2 and len(blends) == 1  # the best two = both; nothing else
    assert blends[0]["status"] == "done"
    assert blends[0]["mean_score"] > max(e["mean_score"] for e in singles)
    # scored again on a second partition, as its members (step 7)
    assert auto.partitions_ == 2
    assert [len(e["fold_scores"]) for e in board] == [6, 6, 6]
    assert auto.chosen_ == board[0] == blends[0]
    model = auto.pipeline_.model
    assert isinstance(model, Blend)
    key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
    assert sorted(model.members, key=key) == sorted(
        (["LabelForest", e["settings"]] for e in singles), key=key)
    # the chosen blend is a plain Blend fit of those members on all rows
    plain = Pipeline(model=Blend(model.members, cv=3, n_threads=1, random_state=0)).fit(X, Y)
    np.testing.assert_allclose(auto.decision_function(X, k=4).toarray(),
                               plain.decision_function(X, k=4).toarray(), rtol=1e-6)
    auto.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "pipeline.json").read_text())
    assert doc["tuning"]["auto"]["chosen"].startswith("blend(")
    loaded = Pipeline.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X).toarray(), auto.predict(X).toarray())
    np.testing.assert_allclose(loaded.predict_proba(X, k=4).toarray(),
                               auto.predict_proba(X, k=4).toarray(), rtol=1e-6)

    # blend=False: no blend is scored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = AutoModel(budget=120, cv=3, families=_forests(), blend=False, n_threads=1).fit(X, Y)
    assert {e["family"] for e in off.leaderboard_} == {"forest"}


def test_a_blend_whose_fit_would_not_end_in_time_is_skipped(monkeypatch):
    X, Y = _data()
    import labelwise.auto as auto_mod

    real = auto_mod._Kept

    def slow(mean, index, cand, S, fit_cost_s):  # a member's fit said to take an hour
        return real(mean, index, cand, S, 3600.0)

    monkeypatch.setattr(auto_mod, "_Kept", slow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = AutoModel(budget=60, cv=3, families=_forests(), n_threads=1).fit(X, Y)
    blend = [e for e in auto.leaderboard_ if e["family"] == "blend"][0]
    assert blend["status"] == "skipped" and "would not end in time" in blend["reason"]
    assert auto.chosen_["family"] == "forest"
    assert not isinstance(auto.pipeline_.model, Blend)


def test_many_labels_beyond_k_are_not_blended():
    X, Y = _data(L=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = AutoModel(budget=60, cv=3, k=4, families=_forests(), n_threads=1).fit(X, Y)
    assert {e["family"] for e in auto.leaderboard_} == {"forest"}


def test_blends_are_not_scored_when_scoring_would_overrun_the_budget(monkeypatch):
    import labelwise.auto as auto_mod

    real = auto_mod.fold_score

    def slow_score(*args, **kwargs):  # scoring dominates: 1 s a fold, whatever the load
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(auto_mod, "fold_score", slow_score)
    X, Y = _data()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = AutoModel(budget=16, cv=3, families=_forests(), n_threads=1).fit(X, Y)
    took = time.perf_counter() - t0
    singles = [e for e in auto.leaderboard_ if e["family"] == "forest"]
    assert [e["status"] for e in singles] == ["done", "done"]
    # 2 members x (estimated) 2 x 3 s of calibration + 3 s of scoring: not started
    blend = [e for e in auto.leaderboard_ if e["family"] == "blend"]
    assert len(blend) == 1 and blend[0]["status"] == "skipped"
    assert blend[0]["mean_score"] is None and blend[0]["reason"].startswith("not scored")
    assert took < 16
