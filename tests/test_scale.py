"""Scale (per-column scaling of numeric features) and tune's choice of C and loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.cli.main import main
from labelwise.crossfit import linear_grid
from labelwise.dataset import Dataset
from labelwise.decision import PerLabelThreshold, cross_validated_score
from labelwise.errors import DataFormatError, LabelwiseError
from labelwise.features import Scale, load_featurizer
from labelwise.features.scale import SPREAD_LIMIT, column_spread
from labelwise.io import write
from labelwise.metrics import LabelSets, f1_score
from labelwise.models import OneVsRest
from labelwise.pipeline import Pipeline
from labelwise.split import IterativeStratifiedKFold


def _mixed_scales(n=400, seed=0):
    """Dense X whose 4 informative columns are tiny (x 0.01) beside 12 noise columns in the
    hundreds: after row normalisation the noise drowns the signal unless columns are scaled."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 4))
    noise = rng.normal(size=(n, 12)) * rng.uniform(50, 300, size=12) + 500
    X = np.hstack([signal * 0.01, noise]).astype(np.float32)
    Y = sp.csr_matrix((signal[:, :3] + 0.3 * rng.normal(size=(n, 3)) > 0.4).astype(np.float32))
    return X, Y


def test_standard_and_maxabs_against_numpy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6)) * [1, 10, 100, 1e-3, 5, 1] + [0, 3, -7, 0, 1, 0]
    X[:, 5] = 2.5  # a constant column: divided by 1
    Z = rng.normal(size=(9, 6))
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[5] = 1.0
    s = Scale("standard").fit(X)
    np.testing.assert_allclose(s.transform(Z), (Z - mean) / std, rtol=1e-5, atol=1e-6)
    assert s.transform(Z).dtype == np.float32
    m = np.abs(X).max(axis=0)
    a = Scale("maxabs").fit(X)
    np.testing.assert_allclose(a.transform(Z), Z / m, rtol=1e-5, atol=1e-6)
    # sparse input: max-abs keeps it sparse, with the same values
    Xs = sp.csr_matrix(np.where(rng.random((50, 6)) < 0.3, X, 0.0))
    ms = np.abs(Xs.toarray()).max(axis=0)
    ms[ms == 0] = 1.0
    out = Scale("maxabs").fit(Xs).transform(Xs)
    assert sp.issparse(out) and out.nnz == Xs.nnz
    np.testing.assert_allclose(out.toarray(), Xs.toarray() / ms, rtol=1e-6)
    # a standard scaler fitted on dense rows scores their sparse form the same
    np.testing.assert_allclose(s.transform(sp.csr_matrix(Z)), s.transform(Z), rtol=1e-6)


def test_auto_rule_by_kind_and_spread():
    rng = np.random.default_rng(2)
    dense = rng.normal(size=(30, 5))
    assert Scale().fit(dense).method_ == "standard"
    binary = sp.random(40, 50, density=0.2, format="csr", random_state=0)
    binary.data[:] = 1.0
    s = Scale().fit(binary)
    assert s.method_ == "none" and s.facts_["spread"] == 1.0
    assert s.transform(binary) is not None and (s.transform(binary) != binary).nnz == 0
    wide = binary.copy().tocsc()
    for j in range(wide.shape[1]):  # columns from 1 to 1e4: clearly not tf-idf
        wide.data[wide.indptr[j]:wide.indptr[j + 1]] *= 10.0 ** (4 * j / 49)
    wide = wide.tocsr()
    assert column_spread(wide) > SPREAD_LIMIT
    assert Scale().fit(wide).method_ == "maxabs"
    # the spread by hand: 95th / 5th percentile of the non-zero column maxima
    m = np.abs(wide.toarray()).max(axis=0)
    m = m[m > 0]
    assert column_spread(wide) == pytest.approx(np.quantile(m, 0.95) / np.quantile(m, 0.05))


def test_bad_input_and_save_load_identical(tmp_path):
    with pytest.raises(ValueError, match="method must be one of"):
        Scale("zscore").fit(np.ones((3, 2)))
    with pytest.raises(DataFormatError, match="sparse X dense"):
        Scale("standard").fit(sp.eye(3, format="csr"))
    with pytest.raises(DataFormatError, match="infinite values: 1 of them, the first at row 0, "
                                              "column 1"):
        Scale().fit(np.array([[1.0, np.inf]]))
    with pytest.raises(DataFormatError, match="texts"):
        Scale().fit(["a text"])
    X, _ = _mixed_scales(n=60)
    s = Scale().fit(X)
    with pytest.raises(DataFormatError, match="16 features, the scaler was fitted on 16|has 3"):
        s.transform(np.ones((2, 3)))
    s.save(tmp_path / "sc")
    back = load_featurizer(tmp_path / "sc")
    assert type(back) is Scale and back.method_ == "standard"
    np.testing.assert_array_equal(back.transform(X), s.transform(X))
    assert back.explain() == s.explain()
    # a tampered divisor is refused by name
    doc = json.loads((tmp_path / "sc" / "featurizer.json").read_text())
    np.save(tmp_path / "sc" / "scale.npy", np.zeros(16))
    with pytest.raises(DataFormatError, match="scale"):
        load_featurizer(tmp_path / "sc")
    assert doc["class"] == "Scale"


def test_pipeline_scaling_beats_no_scaling_and_saves(tmp_path):
    X, Y = _mixed_scales()
    tr, te = np.arange(300), np.arange(300, 400)
    scores = {}
    for scale in ("auto", None):
        pipe = Pipeline(model=OneVsRest(n_threads=1), scale=scale).fit(X[tr], Y[tr])
        scores[scale] = f1_score(Y[te], LabelSets(pipe.predict(X[te])), average="macro")
    assert scores["auto"] > scores[None] + 0.2, scores
    pipe = Pipeline(model=OneVsRest(n_threads=1)).fit(X[tr], Y[tr])
    info = pipe.explain()["scaling"]
    assert info["method_in_effect"] == "standard" and info["kind"] == "dense"
    pipe.save(tmp_path / "p")
    back = Pipeline.load(tmp_path / "p")
    assert back.scale == "auto" and back.scaler_.method_ == "standard"
    np.testing.assert_array_equal(back.decision_function(X[te], k=3).toarray(),
                                  pipe.decision_function(X[te], k=3).toarray())
    none = Pipeline(model=OneVsRest(n_threads=1), scale=None).fit(X[tr], Y[tr])
    assert none.explain()["scaling"] is None
    none.save(tmp_path / "q")
    assert Pipeline.load(tmp_path / "q").scale is None


def _reference_selection(X, Y, grid, *, cv, k, objective):
    """Slow loop: cross-fit every candidate by hand, score the thresholds tuned on it."""
    best, best_score, scores = None, -np.inf, []
    splits = list(IterativeStratifiedKFold(n_splits=cv, random_state=0).split(
        np.zeros((X.shape[0], 1)), Y))
    for params in grid:
        S = sp.lil_matrix(Y.shape, dtype=np.float32)
        folds = np.empty(X.shape[0], np.int64)
        for f, (train, test) in enumerate(splits):
            folds[test] = f
            m = OneVsRest(n_threads=1, random_state=0, **params).fit(X[train], Y[train])
            S[test] = m.decision_function(X[test], k=k)
        value = cross_validated_score(PerLabelThreshold(objective=objective), sp.csr_matrix(S),
                                      Y, cv=cv, metric=objective, random_state=0, folds=folds)
        scores.append(value)
        if value > best_score:
            best, best_score = params, value
    return best, scores


def test_tune_selects_c_and_loss_like_a_slow_loop():
    X, Y = _mixed_scales(n=90, seed=4)
    Xs = Scale().fit(X).transform(X)
    pipe = Pipeline(model=OneVsRest(n_threads=1), k=3).fit(X, Y)
    before = pipe.get_params(deep=True)
    pipe.tune(X, Y, objective="macro-f1", cv=3, calibration="none")
    grid = linear_grid(Xs, 3, C=0.5, loss="squared_hinge")
    assert len(grid) == 14 and grid[0] == {"loss": "squared_hinge", "C": 0.5}
    best, scores = _reference_selection(Xs, Y, grid, cv=3, k=3, objective="macro-f1")
    table = pipe.tuning_["model_selection"]["grid"]
    np.testing.assert_allclose([row["score"] for row in table], scores)
    assert pipe.model_params_ == best
    # constructor parameters untouched; the model refitted on all rows with the choice
    # (decision and calibrator are set by tune's objective/calibration arguments, as before)
    after = pipe.get_params(deep=True)
    assert {key: v for key, v in after.items() if not key.startswith(("decision", "calib"))} \
        == {key: v for key, v in before.items() if not key.startswith(("decision", "calib"))}
    assert pipe.model.C == 0.5 and pipe.model.loss == "squared_hinge"
    ref = OneVsRest(n_threads=1, random_state=0, **best).fit(Xs, Y)
    np.testing.assert_array_equal(pipe.model.coef_.toarray(), ref.coef_.toarray())
    # without selection the model is left as fitted
    plain = Pipeline(model=OneVsRest(n_threads=1), k=3).fit(X, Y)
    w = plain.model.coef_.toarray()
    plain.tune(X, Y, objective="macro-f1", cv=3, calibration="none", select_c=False)
    np.testing.assert_array_equal(plain.model.coef_.toarray(), w)
    assert "model_selection" not in plain.tuning_ and not hasattr(plain, "model_params_")


def test_select_c_refused_for_models_without_c():
    from labelwise.models import LabelTree, MLPHead

    X, Y = _mixed_scales(n=60)
    with pytest.raises(LabelwiseError, match="MLPHead has no C and loss"):
        Pipeline(model=MLPHead()).tune(X, Y, cv=3, select_c=True)  # refused before any fit
    # by default only OneVsRest chooses C; a LabelTree does when asked
    tree = Pipeline(model=LabelTree())
    assert tree._select_c(None) is False and tree._select_c(True) is True


def test_linear_grid_shrinks_with_the_problem():
    small = sp.random(100, 50, density=0.1, format="csr", random_state=0)
    assert len(linear_grid(small, 10, C=0.5, loss="squared_hinge")) == 14
    big = sp.random(2000, 1000, density=0.1, format="csr", random_state=0)  # nnz 2e5
    assert len(linear_grid(big, 1000, C=0.5, loss="squared_hinge")) == 9  # 2e8
    assert linear_grid(big, 2000, C=3.0, loss="logistic") == [
        {"loss": "logistic", "C": 3.0}, {"loss": "squared_hinge", "C": 0.5},
        {"loss": "squared_hinge", "C": 2.0}]


def test_cli_train_prints_scaling_and_tune_chooses_c(tmp_path, capsys):
    X, Y = _mixed_scales(n=120, seed=5)
    write(Dataset(X, Y, ["a", "b", "c"]), tmp_path / "train.xc")
    assert main(["train", str(tmp_path / "train.xc"), "--model", "ovr", "--threads", "1",
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    out = capsys.readouterr().out
    # an XC file is read as sparse: its columns (0.01 beside hundreds) are max-abs scaled
    assert "sparse features, scaling maxabs (--scale auto" in out
    assert main(["tune", str(tmp_path / "m"), str(tmp_path / "train.xc"), "--cv", "3",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_params"]["loss"] in ("squared_hinge", "logistic")
    assert Pipeline.load(tmp_path / "m").model_params_ == summary["model_params"]
    assert main(["train", str(tmp_path / "train.xc"), "--model", "ovr", "--threads", "1",
                 "--scale", "none", "--out", str(tmp_path / "n"), "--quiet"]) == 0
    assert "scaling none (--scale none" in capsys.readouterr().out
    assert main(["tune", str(tmp_path / "n"), str(tmp_path / "train.xc"), "--cv", "3",
                 "--no-select-c", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["model_params"] is None


def test_forests_take_numeric_x_as_given_under_auto(tmp_path, capsys):
    """scale="auto" leaves X as given before a forest (its trees split on the order of a
    column's values: scaling changes nothing but rounding, and costs a fit and a transform
    at every predict); asked for explicitly, scaling is still done."""
    from labelwise.models import LabelForest

    X, Y = _mixed_scales(n=200, seed=3)

    def forest():
        return LabelForest(n_estimators=8, n_threads=1, random_state=0)

    pipe = Pipeline(model=forest()).fit(X, Y)
    assert getattr(pipe, "scaler_", None) is None
    info = pipe.explain()["scaling"]
    assert info["method_in_effect"] == "none" and "LabelForest" in info["reason"]
    direct = forest().fit(X, Y)
    np.testing.assert_array_equal(pipe.decision_function(X, k=3).toarray(),
                                  direct.decision_function(X, k=3).toarray())
    pipe.save(tmp_path / "f")
    back = Pipeline.load(tmp_path / "f")
    assert getattr(back, "scaler_", None) is None and back.explain()["scaling"] == info
    np.testing.assert_array_equal(back.decision_function(X, k=3).toarray(),
                                  direct.decision_function(X, k=3).toarray())
    std = Pipeline(model=forest(), scale="standard").fit(X, Y)
    assert std.scaler_.method_ == "standard"
    assert Pipeline(model=OneVsRest(n_threads=1)).fit(X, Y).scaler_.method_ == "standard"
    write(Dataset(X, Y, ["a", "b", "c"]), tmp_path / "train.xc")
    assert main(["train", str(tmp_path / "train.xc"), "--model", "forest", "--threads", "1",
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    assert "scaling none (--scale auto; LabelForest is unchanged" in capsys.readouterr().out
