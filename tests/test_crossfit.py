"""Cross-fitted scores: every row scored by a model that did not see it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.crossfit import cross_fit_scores
from labelwise.errors import DataFormatError
from labelwise.models import OneVsRest
from labelwise.split import IterativeStratifiedKFold


def _data(n=120, d=10, L=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (X @ rng.normal(size=(d, L)) > 0.5).astype(float)
    return X, Y


def test_out_of_fold_scores_equal_manual_fold_models():
    X, Y = _data()
    model = OneVsRest(random_state=0, prune_threshold=0.0, n_threads=1)
    S, folds = cross_fit_scores(model, X, Y, cv=3, k=2, return_folds=True)
    assert S.shape == (120, 3) and np.all(np.diff(S.indptr) == 2)
    assert S.indices.dtype in (np.int32, np.int64)
    splits = list(IterativeStratifiedKFold(3, random_state=0).split(np.zeros((120, 1)), Y))
    for f, (train, test) in enumerate(splits):
        assert np.all(folds[test] == f)
        m = OneVsRest(random_state=0, prune_threshold=0.0, n_threads=1).fit(X[train], Y[train])
        ref = m.decision_function(X[test], k=2)
        assert abs(S[test] - ref).max() == 0


def test_scores_do_not_depend_on_the_rows_own_labels():
    X, Y = _data()
    model = OneVsRest(random_state=0, prune_threshold=0.0, n_threads=1)
    S, folds = cross_fit_scores(model, X, Y, cv=3, k=3, return_folds=True)
    Y2 = Y.copy()
    Y2[folds == 0] = 1 - Y2[folds == 0]  # change the labels of fold 0 only
    S2 = cross_fit_scores(model, X, Y2, cv=3, k=3, random_state=0)
    # fold assignment may change with Y; compare only if it stayed
    _, folds2 = cross_fit_scores(model, X, Y2, cv=3, k=3, return_folds=True)
    if np.array_equal(folds, folds2):
        rows = folds == 0
        assert abs(S[rows] - S2[rows]).max() == 0
        assert abs(S[~rows] - S2[~rows]).max() > 0


def test_sklearn_estimator_dense_scores():
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, Y = _data()
    S = cross_fit_scores(OneVsRestClassifier(LogisticRegression()), X, Y, cv=3, k=3,
                         method="predict_proba")
    assert sp.issparse(S) and S.shape == (120, 3) and S.data.min() >= 0 and S.data.max() <= 1


def test_fold_warnings_are_gathered():
    X, Y = _data()
    Y = np.column_stack([Y, np.zeros(120)])
    Y[0, -1] = 1  # one positive: two training folds lack it
    with pytest.warns(UserWarning, match=r"cross-fitting \(\d of 3 folds\)"):
        cross_fit_scores(OneVsRest(random_state=0, n_threads=1), X, Y, cv=3, k=2)


def test_errors():
    X, Y = _data()
    with pytest.raises(DataFormatError, match="cv"):
        cross_fit_scores(OneVsRest(), X, Y, cv=1)
    with pytest.raises(DataFormatError, match="rows"):
        cross_fit_scores(OneVsRest(), X[:10], Y, cv=3)


def test_fold_ids_feed_fold_averaged_thresholds():
    """With the fold ids of cross_fit_scores, each fold's thresholds come from that fold
    model's scores alone: changing fold 0's scores moves the average by a third of the
    change of fold 0's own thresholds, and the poisoned labels of other rows never enter."""
    from labelwise.decision import PerLabelThreshold

    X, Y = _data(n=150, L=3, seed=2)
    model = OneVsRest(random_state=0, prune_threshold=0.0, n_threads=1)
    S, folds = cross_fit_scores(model, X, Y, cv=3, k=3, return_folds=True)
    pol = PerLabelThreshold(shrinkage=0.0).fit(S, Y, folds=folds)
    S2 = S.copy().tolil()
    rows0 = np.flatnonzero(folds == 0)
    for i in rows0:
        S2[i] = S2[i].toarray() * 2.0 + 0.5  # fold 0's model on another scale
    S2 = S2.tocsr()
    pol2 = PerLabelThreshold(shrinkage=0.0).fit(S2, Y, folds=folds)
    own = PerLabelThreshold(shrinkage=0.0)
    d0 = own.fit(S2[rows0], Y[rows0]).thresholds_ - own.fit(S[rows0], Y[rows0]).thresholds_
    assert np.allclose(pol2.thresholds_ - pol.thresholds_, d0 / 3)
    assert np.abs(d0).max() > 0


def test_fold_features_fit_each_fold_once_for_all_candidates():
    from sklearn.base import clone

    from labelwise.crossfit import FoldFeatures, FoldPipeline
    from labelwise.features import Tfidf

    class CountingTfidf(Tfidf):
        fits = 0

        def fit_transform(self, X, y=None):
            CountingTfidf.fits += 1
            return super().fit_transform(X, y)

    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "w1", "w2", "w3", "w4"]
    texts = [" ".join(rng.choice(words, size=5)) for _ in range(60)]
    Y = sp.csr_matrix(np.array([[w in t for w in words[:3]] for t in texts], dtype=np.int8))
    shared = FoldFeatures()
    S = {}
    for C in (0.5, 2.0):  # two candidates of a search: the same three folds
        pipe = FoldPipeline(CountingTfidf(), OneVsRest(C=C, n_threads=1), shared)
        S[C] = cross_fit_scores(clone(pipe), texts, Y, cv=3, k=2, random_state=0)
    assert CountingTfidf.fits == 3
    # and the same scores as a pipeline that fits its own featurizer in every fold
    alone = cross_fit_scores(FoldPipeline(Tfidf(), OneVsRest(C=2.0, n_threads=1)), texts, Y,
                             cv=3, k=2, random_state=0)
    np.testing.assert_array_equal(alone.toarray(), S[2.0].toarray())
