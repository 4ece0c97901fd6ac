"""CalibratedLabelRanking against a plain loop: one scikit-learn LogisticRegression per label
pair (rows where exactly one label is positive) and per label against the virtual label (all
rows), votes summed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from conformance import small_data
from labelwise.errors import ResourceLimitError
from labelwise.models._learners import NotSavableError
from labelwise.models.pairwise import CalibratedLabelRanking


def _data():
    """5 labels: label 3 copies label 2 (their pair has no row), label 4 is never positive
    (its pairs have one target only)."""
    X, Y = small_data(seed=4, n=60, d=6, n_labels=3)
    Yd = Y.toarray()
    Yd = np.c_[Yd, Yd[:, 2], np.zeros(60)]
    return X, sp.csr_matrix(Yd)


def _reference_wins(X, Y, fit_pair):
    """P(first wins) for every problem, in the model's order, by a plain loop."""
    Yd = Y.toarray() > 0
    n, L = Yd.shape
    problems = [(a, b) for a in range(L) for b in range(a + 1, L)] + [(j, L) for j in range(L)]
    wins = []
    for a, b in problems:
        if b == L:
            rows, y = np.arange(n), Yd[:, a]
        else:
            rows = [i for i in range(n) if Yd[i, a] != Yd[i, b]]
            y = Yd[rows, a]
        if len(rows) == 0:
            wins.append(np.full(n, 0.5))
        elif y.all() or not y.any():  # one target: the clipped rate
            wins.append(np.full(n, min(max(y.mean(), 1e-3), 1 - 1e-3)))
        else:
            wins.append(fit_pair(X[rows], y))
    return problems, np.stack(wins, axis=1)


def _reference_votes(problems, wins, L, hard):
    votes = np.zeros((wins.shape[0], L + 1))
    for p, (a, b) in enumerate(problems):
        w = wins[:, p]
        if hard:
            w = np.where(w > 0.5, 1.0, np.where(w == 0.5, 0.5, 0.0))
        votes[:, a] += w
        votes[:, b] += 1 - w
    return votes


def test_sklearn_base_equals_plain_loop():
    X, Y = _data()
    L = Y.shape[1]

    def fit_pair(Xp, y):
        lr = LogisticRegression(C=2.0, max_iter=1000).fit(Xp, y.astype(np.int64))
        return lr.predict_proba(X)[:, 1]

    problems, wins = _reference_wins(X, Y, fit_pair)
    assert len(problems) == L * (L + 1) // 2
    model = CalibratedLabelRanking(base=LogisticRegression(C=2.0, max_iter=1000),
                                   normalize=None).fit(X, Y)
    assert model.learners_ is None  # linear: stored as arrays, scored by the numba kernel
    for aggregation in ("proba", "vote"):  # the aggregation is only read when scoring
        model.set_params(aggregation=aggregation)
        ref = _reference_votes(problems, wins, L, aggregation == "vote")
        votes = model.predict_votes(X)
        assert np.allclose(votes, ref, atol=1e-5)
        assert np.allclose(votes.sum(axis=1), L * (L + 1) / 2)  # a point per comparison
        S = model.decision_function(X, k=L).toarray()
        assert np.allclose(S, 0.5 + (ref[:, :L] - ref[:, L:]) / (2 * L), atol=1e-5)
        # relevant exactly when a label has more votes than the virtual label
        assert np.array_equal(model.predict(X).toarray() > 0, votes[:, :L] > votes[:, L:])


def test_linear_base_equals_liblinear_per_pair():
    """The numba pairwise solver gives liblinear's L2 logistic regression (bias regularised,
    intercept_scaling=1) on each pair's rows."""
    X, Y = _data()
    L = Y.shape[1]

    def fit_pair(Xp, y):
        lr = LogisticRegression(solver="liblinear", C=3.0, intercept_scaling=1.0, tol=1e-10,
                                max_iter=10000).fit(Xp, y.astype(np.int64))
        return lr.predict_proba(X)[:, 1]

    problems, wins = _reference_wins(X, Y, fit_pair)
    model = CalibratedLabelRanking(C=3.0, tol=1e-8, normalize=None, n_threads=2).fit(X, Y)
    ours = 1 / (1 + np.exp(-(np.asarray((X @ model.coef_).toarray()) + model.intercept_)))
    assert np.abs(ours - wins).max() < 1e-4
    assert np.allclose(model.predict_votes(X), _reference_votes(problems, wins, L, False),
                       atol=1e-3)
    # threads split the problems differently: same model
    one = CalibratedLabelRanking(C=3.0, tol=1e-8, normalize=None, n_threads=1).fit(X, Y)
    assert np.array_equal(one.predict_votes(X), model.predict_votes(X))


def test_non_linear_base_works_but_refuses_to_save(tmp_path):
    X, Y = _data()
    model = CalibratedLabelRanking(base=DecisionTreeClassifier(max_depth=2)).fit(X, Y)
    votes = model.predict_votes(X)
    assert votes.shape == (60, 6) and np.allclose(votes.sum(axis=1), 15)
    with pytest.raises(NotSavableError, match="never pickles"):
        model.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_limits_and_bad_params():
    X, Y = small_data(n_labels=6)
    with pytest.raises(ResourceLimitError, match="max_labels=5"):
        CalibratedLabelRanking(max_labels=5).fit(X, Y)
    for kw, match in (({"aggregation": "borda"}, "aggregation"), ({"C": 0}, "C must"),
                      ({"tol": -1.0}, "tol must"), ({"max_labels": 0}, "max_labels"),
                      ({"n_threads": 0}, "n_threads"), ({"base": "svm"}, "base")):
        with pytest.raises(ValueError, match=match):
            CalibratedLabelRanking(**kw).fit(X, Y)


@pytest.mark.parametrize("name,cls,sets", [
    ("clr", "CalibratedLabelRanking", ['aggregation="vote"']),
    ("plst", "LabelEmbedding", ['method="cplst"', "n_components=3"]),
    ("codes", "OutputCodes", ['code="random"', "C=10"]),
])
def test_cli_train_tune_evaluate(name, cls, sets, tmp_path, capsys):
    """`labelwise train --model NAME`, `tune` (calibration + thresholds) and `evaluate`."""
    from labelwise import Dataset, Pipeline
    from labelwise.cli.main import main
    from labelwise.io import write

    X, Y = small_data(seed=7, n=120, d=12, n_labels=4)
    ds = Dataset(X, Y, [f"topic {j}" for j in range(4)], ids=[f"doc{i}" for i in range(120)])
    train, test = tmp_path / "train.xc", tmp_path / "test.xc"
    write(ds.subset(np.arange(0, 90)), train)
    write(ds.subset(np.arange(90, 120)), test)
    args = ["train", str(train), "--model", name, "--threads", "1", "--seed", "2", "--quiet",
            "--out", str(tmp_path / "m")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert main(["tune", str(tmp_path / "m"), str(train), "--quiet"]) == 0
    pipe = Pipeline.load(tmp_path / "m")
    assert type(pipe.model).__name__ == cls and pipe.is_tuned
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(test), "--quiet"]) == 0
    assert "micro_f1" in capsys.readouterr().out


def test_unconverged_problems_are_counted():
    from sklearn.exceptions import ConvergenceWarning

    X, Y = small_data(n=30, n_labels=3)
    with pytest.warns(ConvergenceWarning, match=r"of 6 pairwise problems reached max_iter"):
        CalibratedLabelRanking(C=1e6, tol=1e-15, n_threads=1).fit(X, Y)
