"""``tune`` chooses C for the label-dependence families (a single chain, label powerset and
RAkEL, with the linear base, by default): the grid's C values alone, and a gain within one
standard error keeps the C given."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from conformance import small_data
from labelwise import Pipeline
from labelwise.crossfit import (
    cross_fit_scores,
    f1_noise_margin,
    linear_grid,
    select_linear_params,
)
from labelwise.decision import PerLabelThreshold, cross_validated_score
from labelwise.models import ClassifierChain, LabelPowerset, OneVsRest, RAkEL


def test_f1_noise_margin_by_hand():
    Y = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=np.float32))
    assert f1_noise_margin(0.5, Y) == pytest.approx(np.sqrt(0.25 / 4))  # 4 positive pairs
    assert f1_noise_margin(0.9, Y.toarray()) == pytest.approx(np.sqrt(0.09 / 4))
    assert f1_noise_margin(0.5, sp.csr_matrix((3, 2))) == 0.0
    # a stored zero is not a positive
    Z = sp.csr_matrix((np.array([1.0, 0.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    assert f1_noise_margin(0.5, Z) == pytest.approx(0.5)


def test_a_margin_keeps_the_first_candidate_unless_beaten_by_more():
    X, Y = small_data(seed=1, n=40, n_labels=3)
    grid = [{"C": 1.0}, {"C": 2.0}, {"C": 4.0}]

    def run(margin):
        values = iter([0.50, 0.52, 0.60])  # the candidates' scores, in grid order
        return select_linear_params(lambda p: OneVsRest(n_threads=1, **p), X, Y, grid,
                                    lambda S, folds: next(values), cv=2, k=3, margin=margin)

    assert run(0.0)[0] == {"C": 4.0}
    assert run(0.09)[0] == {"C": 4.0}
    best, S, folds, table = run(0.1)  # .60 - .50 is not more than .1
    assert best == {"C": 1.0} and [r["score"] for r in table] == [0.50, 0.52, 0.60]
    ref, _ = cross_fit_scores(OneVsRest(n_threads=1, C=1.0), X, Y, cv=2, k=3, random_state=0,
                              return_folds=True)
    np.testing.assert_array_equal(S.toarray(), ref.toarray())  # the kept one's scores
    seen = []
    assert run(lambda first: seen.append(first) or 0.2)[0] == {"C": 1.0} and seen == [0.5]


def _reference(X, Y, own_c, cv=3, k=4):
    """The C search by a slow loop: every C of the grid cross-fitted on the same folds,
    scored by micro-F1 of per-label thresholds tuned within folds; the C given is kept
    unless the best beats it by more than one standard error."""
    scores = []
    grid = [own_c] + [c for c in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0) if c != own_c]
    for c in grid:
        S, folds = cross_fit_scores(LabelPowerset(n_threads=1, C=c), X, Y, cv=cv, k=k,
                                    random_state=0, return_folds=True)
        scores.append(cross_validated_score(PerLabelThreshold(objective="micro-f1"), S, Y,
                                            cv=cv, metric="micro-f1", random_state=0,
                                            folds=folds))
    best = int(np.argmax(scores))
    n_pos = Y.nnz
    if scores[best] - scores[0] <= np.sqrt(scores[0] * (1 - scores[0]) / n_pos):
        best = 0
    return grid[best], grid, scores


@pytest.mark.parametrize("own_c", [1.0, 0.25])
def test_powerset_tune_chooses_c_like_a_slow_loop(own_c):
    X, Y = small_data(seed=1, n=80, d=10, n_labels=4)
    pipe = Pipeline(model=LabelPowerset(n_threads=1, C=own_c), k=4).fit(X, Y)
    pipe.tune(X, Y, cv=3, calibration="none")
    chosen, grid, scores = _reference(X, Y, own_c)
    table = pipe.tuning_["model_selection"]["grid"]
    assert [r["C"] for r in table] == grid and all("loss" not in r for r in table)
    np.testing.assert_allclose([r["score"] for r in table], scores)
    assert pipe.model_params_ == {"C": chosen}
    # on these rows C=2 scores best; C=1 is within one standard error of it (kept), C=0.25
    # is beaten by far more (moved)
    assert grid[int(np.argmax(scores))] == 2.0
    assert chosen == (1.0 if own_c == 1.0 else 2.0)
    assert pipe.model.C == own_c  # the constructor's parameter stays; the fit used the choice
    ref = LabelPowerset(n_threads=1, C=chosen).fit(X, Y)
    np.testing.assert_allclose(pipe.model.predict_marginals(X), ref.predict_marginals(X))


def test_which_families_choose_c_by_default():
    X, Y = small_data(seed=2, n=60, d=8, n_labels=4)
    for model, default in [(LabelPowerset(), True), (RAkEL(), True), (ClassifierChain(), True),
                           (ClassifierChain(n_chains=3), False),
                           (ClassifierChain(base=LogisticRegression()), False),
                           (RAkEL(base=LogisticRegression()), False),
                           (LabelPowerset(base=LogisticRegression()), False)]:
        assert Pipeline(model=model)._select_c(None) is default, model
    pipe = Pipeline(model=ClassifierChain(n_threads=1), k=4).fit(X, Y)
    pipe.tune(X, Y, cv=3, calibration="none", select_c=False)
    assert "model_selection" not in pipe.tuning_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.tune(X, Y, cv=3, calibration="none")
    assert [set(r) for r in pipe.tuning_["model_selection"]["grid"]] == [{"C", "score"}] * 7
    assert linear_grid(X, 4, C=3.0, loss=None)[:2] == [{"C": 3.0}, {"C": 0.25}]
