"""Repeats in ``--model auto`` (module docstring, step 7): the leading candidates scored again
on a second partition into folds, by hand; the choice among those scored on every partition;
a round that would not fit, or runs over, is not kept."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.auto import AutoModel, Family, fold_score, format_leaderboard
from labelwise.calibration import PlattCalibrator
from labelwise.decision import PerLabelThreshold
from labelwise.errors import DataFormatError
from labelwise.models.ovr import OneVsRest
from labelwise.pipeline import Pipeline
from labelwise.split import IterativeStratifiedKFold


def _data(n=150, d=12, L=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (X @ rng.normal(size=(d, L)) + rng.normal(size=(n, L)) > 0.9).astype(np.float32)
    Y[np.arange(L), np.arange(L)] = 1
    return X, sp.csr_matrix(Y)


SETTINGS = [{"loss": "logistic", "C": 0.01}, {"loss": "logistic", "C": 1.0},
            {"loss": "squared_hinge", "C": 0.5}]


def _ovr(cls=OneVsRest, settings=SETTINGS):
    return (Family("ovr", cls, applies=lambda f: True, settings=lambda f: settings,
                   cost=lambda f, s: 0.01),)


def _by_hand(X, Y, settings, seed, objective, oof=False):
    """The fold scores of one candidate on the partition of ``random_state=seed`` (with
    ``oof``: also its out-of-fold scores and the folds)."""
    n, L = Y.shape
    splits = list(IterativeStratifiedKFold(n_splits=3, random_state=seed).split(
        np.zeros((n, 1)), Y))
    S = np.zeros((n, L))
    folds = np.full(n, -1)
    for f, (tr, te) in enumerate(splits):
        folds[te] = f
        pipe = Pipeline(model=OneVsRest(**settings, n_threads=1, random_state=0))
        S[te] = pipe.fit(X[tr], Y[tr]).decision_function(X[te], k=L).toarray()
    scores = [fold_score(objective, sp.csr_matrix(S), Y, folds, f) for f in range(3)]
    return (scores, S, folds) if oof else scores


def test_the_best_two_of_a_family_are_scored_again_on_new_folds_by_hand():
    X, Y = _data()
    auto = AutoModel(budget=120, objective="macro-f1", families=_ovr(), blend=False,
                     n_threads=1).fit(X, Y)  # blends on two partitions: test_auto_blend.py
    assert auto.partitions_ == 2 and auto.partition_notes_ == []
    board = {tuple(sorted(e["settings"].items())): e for e in auto.leaderboard_}
    first = {key: _by_hand(X, Y, dict(key), 0, "macro-f1") for key in board}
    ranked = sorted(first, key=lambda key: -np.mean(first[key]))
    for rank, key in enumerate(ranked):
        e = board[key]
        np.testing.assert_allclose(e["fold_scores"][:3], first[key], atol=1e-6)
        if rank < 2:  # the family's best two on the first partition: a second one
            second = _by_hand(X, Y, dict(key), 1, "macro-f1")
            assert e["partitions"] == 2
            np.testing.assert_allclose(e["fold_scores"][3:], second, atol=1e-6)
            assert e["mean_score"] == pytest.approx(np.mean(first[key] + second), abs=1e-6)
        else:
            assert e["partitions"] == 1 and len(e["fold_scores"]) == 3
    # the choice: the best mean over six folds, among the two scored on both partitions
    two = [e for e in auto.leaderboard_ if e["partitions"] == 2]
    assert auto.chosen_ == auto.leaderboard_[0] == max(two, key=lambda e: e["mean_score"])
    assert auto.pipeline_.tuning_["auto"]["partitions"] == 2
    # calibration and thresholds: fitted on both partitions' out-of-fold scores, stacked
    key = tuple(sorted(auto.chosen_["settings"].items()))
    _, S0, f0 = _by_hand(X, Y, dict(key), 0, "macro-f1", oof=True)
    _, S1, f1 = _by_hand(X, Y, dict(key), 1, "macro-f1", oof=True)
    Y2 = sp.vstack([Y, Y], format="csr")
    cal = PlattCalibrator(per_label=True)
    P = cal.fit_transform(sp.csr_matrix(np.vstack([S0, S1])), Y2)
    policy = PerLabelThreshold(objective="macro-f1").fit(P, Y2, folds=np.concatenate([f0, f1 + 3]))
    np.testing.assert_allclose(auto.pipeline_.calibrator_.a_, cal.a_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(auto.pipeline_.decision_.thresholds_, policy.thresholds_,
                               rtol=1e-6, atol=1e-9)
    assert auto.pipeline_.decision_.n_folds_ == 6
    # repeats=1: the first partition only, as before
    one = AutoModel(budget=120, objective="macro-f1", families=_ovr(), blend=False,
                    repeats=1, n_threads=1).fit(X, Y)
    assert one.partitions_ == 1
    assert all(len(e["fold_scores"]) == 3 for e in one.leaderboard_)
    with pytest.raises(DataFormatError, match="repeats"):
        AutoModel(repeats=0, families=_ovr()).fit(X, Y)


class Sleepy(OneVsRest):
    """OneVsRest whose fit sleeps ``Sleepy.naps[i]`` seconds on its i-th fit (the last one
    after that)."""

    naps: list = [0.3]
    fits = 0

    def _fit(self, X, Y):
        time.sleep(Sleepy.naps[min(Sleepy.fits, len(Sleepy.naps) - 1)])
        Sleepy.fits += 1
        super()._fit(X, Y)


def test_a_round_that_would_not_end_in_time_is_not_run():
    X, Y = _data()
    Sleepy.naps, Sleepy.fits = [0.3], 0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = AutoModel(budget=3.0, families=_ovr(Sleepy, SETTINGS[:1]), n_threads=1).fit(X, Y)
    assert time.perf_counter() - t0 < 3.0
    # 3 folds of >= 0.3 s measured: again, plus the refit and the reserve, is past 2.7 s
    assert auto.partitions_ == 1 and Sleepy.fits == 3 + 1
    assert auto.partition_notes_[0].startswith("partition 2 not run")
    assert len(auto.leaderboard_[0]["fold_scores"]) == 3


def test_a_round_that_runs_over_is_dropped_whole():
    X, Y = _data()
    # quick on the first partition, then 2 s a fit: the round starts, then stops
    Sleepy.naps, Sleepy.fits = [0.01, 0.01, 0.01, 2.0], 0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = AutoModel(budget=8.0, families=_ovr(Sleepy, SETTINGS[:1]), n_threads=1).fit(X, Y)
    assert time.perf_counter() - t0 < 8.0
    assert auto.partitions_ == 1 and "stopped after 1 of 3 folds" in auto.partition_notes_[0]
    e = auto.leaderboard_[0]
    assert e["partitions"] == 1 and len(e["fold_scores"]) == 3 and e["status"] == "done"


def test_leaderboard_text_shows_every_partitions_folds_in_one_column():
    rows = [{"candidate": "a", "status": "done", "mean_score": 0.5, "seconds": 1.0,
             "fold_scores": [0.5, 0.4, 0.6, 0.5, 0.45, 0.55]},
            {"candidate": "b", "status": "done", "mean_score": 0.4, "seconds": 12.5,
             "fold_scores": [0.4, 0.4, 0.4]},
            {"candidate": "c", "status": "skipped", "mean_score": None, "seconds": 0.0,
             "fold_scores": []}]
    lines = format_leaderboard(rows, "micro-f1").splitlines()
    assert "0.500 0.400 0.600 0.500 0.450 0.550" in lines[1]
    assert len({len(line) for line in lines}) == 1  # the columns line up
    assert [line.split()[-1] for line in lines] == ["seconds", "1.0", "12.5", "0.0"]
