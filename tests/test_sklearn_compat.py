"""labelwise models inside scikit-learn's model selection: GridSearchCV and cross_val_score
with scikit-learn's multi-label scorers, each score checked against a hand-written loop over
the same folds; ``classes_``; estimator tags."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone, is_classifier
from sklearn.metrics import average_precision_score, f1_score, jaccard_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils import get_tags

from labelwise.errors import NotFittedError
from labelwise.models import LabelTree, OneVsRest
from labelwise.models.sklearn_scoring import full_score_scorer

CV = KFold(3)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.normal(size=(90, 12)) * (rng.random((90, 12)) < 0.5))
                      .astype(np.float32))
    M = X @ rng.normal(size=(12, 4))
    Y = (M > 0.4).astype(np.int64)
    Y[np.arange(len(Y)), M.argmax(1)] = 1  # every row has a label: samples-F1 is defined
    assert Y.sum(0).min() > 5 and (Y == 0).sum(0).min() > 5
    return X, Y


def _by_hand(model, X, Y, score):
    """The mean over CV's folds of score(Y_test, fitted clone, X_test)."""
    out = []
    for train, test in CV.split(X):
        m = clone(model).fit(X[train], Y[train])
        out.append(score(Y[test], m, X[test]))
    return np.array(out)


def _full(m, X):
    return m.decision_function(X, k=len(m.labels_)).toarray()


@pytest.mark.parametrize("make", [lambda: OneVsRest(random_state=0, n_threads=1),
                                  lambda: LabelTree(random_state=0, n_threads=1)],
                         ids=["ovr", "tree"])
def test_cross_val_score_with_multilabel_scorers_equals_a_loop(data, make):
    X, Y = data
    model = make()
    cases = {
        "f1_micro": lambda y, m, x: f1_score(y, m.predict(x).toarray(), average="micro"),
        "f1_samples": lambda y, m, x: f1_score(y, m.predict(x).toarray(), average="samples"),
        "jaccard_samples": lambda y, m, x: jaccard_score(y, m.predict(x).toarray(),
                                                         average="samples"),
    }
    for name, by_hand in cases.items():
        got = cross_val_score(model, X, Y, scoring=name, cv=CV)
        np.testing.assert_allclose(got, _by_hand(model, X, Y, by_hand), err_msg=name)
    # ranking scorers read every label's score: full_score_scorer asks for k = n_labels
    for name, metric in (("roc_auc", roc_auc_score),
                         ("average_precision", average_precision_score)):
        got = cross_val_score(model, X, Y, scoring=full_score_scorer(name), cv=CV)
        want = _by_hand(model, X, Y, lambda y, m, x, f=metric: f(y, _full(m, x)))
        np.testing.assert_allclose(got, want, err_msg=name)
        assert np.all(np.isfinite(got)) and np.all(got > 0.5)


def test_grid_search_picks_the_best_mean_fold_score(data):
    X, Y = data
    grid = {"C": [0.05, 1.0, 4.0]}
    search = GridSearchCV(OneVsRest(random_state=0, n_threads=1), grid, scoring="f1_micro",
                          cv=CV).fit(X, Y)
    means = [_by_hand(OneVsRest(random_state=0, n_threads=1, C=c), X, Y,
                      lambda y, m, x: f1_score(y, m.predict(x).toarray(), average="micro")
                      ).mean() for c in grid["C"]]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], means)
    assert search.best_params_ == {"C": grid["C"][int(np.argmax(means))]}
    assert search.best_estimator_.get_params()["C"] == search.best_params_["C"]
    # a ranking scorer works in the search too
    search = GridSearchCV(OneVsRest(random_state=0, n_threads=1), grid,
                          scoring=full_score_scorer("average_precision"), cv=CV).fit(X, Y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_classes_are_the_label_names(data):
    X, Y = data
    model = OneVsRest(n_threads=1)
    assert not hasattr(model, "classes_")
    with pytest.raises(NotFittedError):
        model.classes_  # noqa: B018
    model.fit(X, Y, labels=["d", "c", "b", "a"])
    assert list(model.classes_) == ["d", "c", "b", "a"] and model.classes_.dtype == object


def test_estimator_tags():
    for model in (OneVsRest(), LabelTree()):
        tags = get_tags(model)
        assert is_classifier(model) and tags.estimator_type == "classifier"
        assert tags.classifier_tags.multi_label
        assert tags.target_tags.multi_output and tags.target_tags.two_d_labels
        assert not tags.target_tags.single_output and tags.target_tags.required
        assert tags.input_tags.sparse and not tags.input_tags.string


def test_full_score_scorer_rejects_unknown_names():
    with pytest.raises(ValueError, match="metric must be one of"):
        full_score_scorer("accuracy")
    with pytest.raises(ValueError, match="method must be"):
        full_score_scorer(roc_auc_score, method="predict")
