"""Missing values (NaN) in numeric features: filled by the pipeline's scaler with each
column's median or mean over the training rows, or refused with the place of the first."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.auto import AutoModel
from labelwise.cli.main import main
from labelwise.errors import DataFormatError
from labelwise.features import Scale, load_featurizer
from labelwise.features.scale import MissingValuesWarning
from labelwise.models import LabelForest, OneVsRest
from labelwise.pipeline import Pipeline


def _with_holes(n=240, d=6, seed=0, share=0.1):
    """Dense X with about ``share`` of its values missing, and 3 labels that depend on it."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1, 10, 100, 0.1, 5, 1] + [0, 3, -7, 0, 1, 0]
    Y = sp.csr_matrix((X[:, :3] / [1, 10, 100] + 0.3 * rng.normal(size=(n, 3)) > 0.2)
                      .astype(np.float32))
    X[rng.random(size=X.shape) < share] = np.nan
    return X.astype(np.float32), Y


def _slow_fill(X, rule):
    """Each column's median or mean over its values present, by a plain loop (0 if none)."""
    out = []
    for j in range(X.shape[1]):
        present = sorted(float(v) for v in X[:, j] if v == v)
        if not present:
            out.append(0.0)
        elif rule == "mean":
            out.append(sum(present) / len(present))
        else:
            m = len(present)
            out.append(present[m // 2] if m % 2 else (present[m // 2 - 1] + present[m // 2]) / 2)
    return np.array(out)


@pytest.mark.parametrize("rule", ["median", "mean"])
def test_fill_values_match_a_plain_loop_and_scaling_sees_the_filled_columns(rule):
    X, _ = _with_holes()
    X[:, 5] = np.nan  # a column with no value present: filled with 0
    s = Scale("standard", missing=rule).fit(X)
    np.testing.assert_allclose(s.fill_, _slow_fill(X, rule), rtol=1e-6, atol=1e-6)
    # (X is float32: its filled values are the fill values rounded to float32)
    filled = np.where(np.isnan(X), s.fill_.astype(np.float32), X).astype(np.float64)
    np.testing.assert_allclose(s.mean_, filled.mean(axis=0), rtol=1e-9, atol=1e-9)
    facts = s.explain()
    assert facts["missing"]["values"] == int(np.isnan(X).sum())
    assert facts["missing"]["columns"] == 6 and facts["missing"]["empty_columns"] == [5]
    assert facts["missing"]["rows"] == int(np.isnan(X).any(axis=1).sum())
    assert facts["missing_rule"] == rule
    # a later X: its NaN get the training rows' values, not its own
    Z = np.array([[np.nan, 1, 2, 3, 4, 5], [0, np.nan, np.nan, 0, 0, 0]], np.float32)
    expected = (np.where(np.isnan(Z), s.fill_, Z) - s.mean_) / s.scale_
    np.testing.assert_allclose(s.transform(Z), expected, rtol=1e-5, atol=1e-6)
    assert np.isnan(Z).sum() == 3  # the caller's array is left as it was


def test_sparse_nan_entries_are_filled_and_implicit_zeros_are_values():
    X = sp.csr_matrix(np.array([[1.0, 0, 4], [np.nan, 2, 0], [3, 0, np.nan], [5, 6, 0]]))
    X.data[np.isnan(X.data)] = np.nan  # stored NaN
    s = Scale("maxabs", missing="median").fit(X)
    # column 0: present 1, 3, 5 -> 3; column 1: 0, 2, 0, 6 -> 1; column 2: present 4, 0, 0
    # (zeros count) -> 0
    np.testing.assert_array_equal(s.fill_, [3.0, 1.0, 0.0])
    out = s.transform(X)
    assert sp.issparse(out) and not np.isnan(out.data).any()
    np.testing.assert_allclose(out.toarray()[1, 0], 3.0 / 5.0)
    assert np.isnan(X.data).sum() == 2


def test_error_rule_and_infinite_values_name_the_first_place():
    X, _ = _with_holes()
    first = int(np.flatnonzero(np.isnan(X).ravel())[0])
    row, col = divmod(first, X.shape[1])
    with pytest.raises(DataFormatError, match=rf"missing values \(NaN\): {int(np.isnan(X).sum())} "
                                              rf"of them, the first at row {row}, column {col}"):
        Scale(missing="error").fit(X)
    X2 = np.nan_to_num(X)
    X2[7, 2] = -np.inf
    with pytest.raises(DataFormatError, match="infinite values: 1 of them, the first at row 7, "
                                              "column 2"):
        Scale(missing="median").fit(X2)
    fitted = Scale(missing="error").fit(np.nan_to_num(X))
    with pytest.raises(DataFormatError, match="the first at row 1, column 0"):
        fitted.transform(np.array([[0, 0, 0, 0, 0, 0], [np.nan, 0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="missing must be one of"):
        Scale(missing="zero").fit(X2)


def test_saved_fill_round_trips_and_an_older_scaler_refuses_nan(tmp_path):
    X, _ = _with_holes()
    s = Scale(missing="mean").fit(X)
    s.save(tmp_path / "sc")
    back = load_featurizer(tmp_path / "sc")
    np.testing.assert_array_equal(back.fill_, s.fill_)
    np.testing.assert_array_equal(back.transform(X), s.transform(X))
    # a scaler saved before missing values were filled: no "fill" array, no "missing" state
    Xd = np.nan_to_num(X)
    old = Scale().fit(Xd)
    old.save(tmp_path / "old")
    doc_path = tmp_path / "old" / "featurizer.json"
    doc = json.loads(doc_path.read_text())
    del doc["state"]["missing"], doc["params"]["missing"]
    fill_file = doc["arrays"].pop("fill")["file"]
    doc["files"].pop(fill_file)
    (tmp_path / "old" / fill_file).unlink()
    doc_path.write_text(json.dumps(doc))
    legacy = load_featurizer(tmp_path / "old")
    np.testing.assert_array_equal(legacy.transform(Xd), old.transform(Xd))
    with pytest.raises(DataFormatError, match="missing values"):
        legacy.transform(X)


@pytest.mark.parametrize("model", ["ovr", "forest"])
def test_pipeline_fills_warns_once_and_predicts_like_a_filled_copy(tmp_path, model):
    X, Y = _with_holes(seed=2)
    make = (lambda: OneVsRest(n_threads=1)) if model == "ovr" else (
        lambda: LabelForest(n_estimators=8, n_threads=1, random_state=0))
    with pytest.warns(MissingValuesWarning, match=rf"{int(np.isnan(X).sum())} missing values "
                                                   r"\(NaN\) in 6 column\(s\)"):
        pipe = Pipeline(model=make()).fit(X, Y)
    assert np.isnan(X).any()  # the caller's X is not filled in place
    fill = _slow_fill(X, "median")
    filled = np.where(np.isnan(X), fill, X).astype(np.float32)
    ref = Pipeline(model=make(), missing="error").fit(filled, Y)
    Xt, _ = _with_holes(n=40, seed=3)
    Xt_filled = np.where(np.isnan(Xt), fill, Xt).astype(np.float32)
    np.testing.assert_allclose(pipe.decision_function(Xt, k=3).toarray(),
                               ref.decision_function(Xt_filled, k=3).toarray(), rtol=1e-5,
                               atol=1e-6)
    info = pipe.explain()["scaling"]
    assert info["missing"]["values"] == int(np.isnan(X).sum())
    if model == "forest":  # a scaler that only fills; X otherwise as given
        assert pipe.scaler_.method_ == "none" and "LabelForest" in info["reason"]
    pipe.save(tmp_path / "p")
    back = Pipeline.load(tmp_path / "p")
    assert back.missing == "median"
    np.testing.assert_array_equal(back.decision_function(Xt, k=3).toarray(),
                                  pipe.decision_function(Xt, k=3).toarray())
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingValuesWarning)  # predicting warns no more
        pipe.predict(Xt)
    with pytest.raises(DataFormatError, match="missing values .* the first at row"):
        Pipeline(model=make(), missing="error").fit(X, Y)


def test_auto_warns_once_and_its_folds_fill_on_their_own_rows():
    X, Y = _with_holes(n=150, seed=4)
    with pytest.warns(MissingValuesWarning) as caught:
        auto = AutoModel(budget=60, cv=2, n_threads=1, blend=False, repeats=1,
                         families=None).fit(X, Y)
    assert len([w for w in caught if w.category is MissingValuesWarning]) == 1
    assert auto.pipeline_.scaler_.facts_["missing"]["values"] == int(np.isnan(X).sum())
    assert auto.predict(X[:5]).shape == (5, 3)


@pytest.mark.filterwarnings("default::labelwise.features.scale.MissingValuesWarning")
def test_cli_train_on_arff_with_question_marks(tmp_path, capsys):
    rows = ["@relation 'holes: -C 2'", "@attribute a {0,1}", "@attribute b {0,1}",
            "@attribute f0 numeric", "@attribute f1 numeric", "@data"]
    rng = np.random.default_rng(0)
    for i in range(80):
        f0, f1 = rng.normal(size=2)
        a, b = int(f0 > 0), int(f1 > 0)
        f0s = "?" if i % 7 == 3 else f"{f0:.4f}"
        rows.append(f"{a},{b},{f0s},{f1:.4f}")
    (tmp_path / "h.arff").write_text("\n".join(rows) + "\n")
    args = ["train", str(tmp_path / "h.arff"), "--model", "ovr", "--threads", "1", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 0
    out, err = capsys.readouterr()
    assert "11 missing values filled with the column medians (--missing)" in out
    assert "warning: X holds 11 missing values (NaN) in 1 column(s) of 11 row(s)" in err
    assert main([*args, "--out", str(tmp_path / "e"), "--missing", "error"]) == 2
    assert "the first at row 3, column 0" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "h.arff"), "--top-k", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 80


@pytest.mark.parametrize("rule", ["median", "mean"])
@pytest.mark.parametrize("block", [None, 64])
def test_every_column_has_its_fill_value_sparse_as_dense(rule, block, monkeypatch):
    """Fill values of columns with no NaN in training too (a later X's NaN there); a sparse
    X's fill values equal those of the same matrix dense, its zeros counted as values."""
    rng = np.random.default_rng(7)
    D = rng.normal(size=(31, 9)) * (rng.random(size=(31, 9)) < [0.1, 0.4, 0.5, 0.6, 0.9, 1.0,
                                                                 0.5, 0.52, 0.48])
    D[rng.random(size=D.shape) < 0.15] = np.nan
    D[:, 8] = 0.0  # all zeros
    if block is not None:  # columns read a few at a time (64 values: 2 columns of 31 rows)
        monkeypatch.setattr("labelwise.features.scale._BLOCK_VALUES", block)
    S = sp.csr_matrix(np.where(np.isnan(D), 1.0, D))  # same pattern, then the NaN stored
    S.data[np.isnan(D)[S.nonzero()]] = np.nan
    assert int(np.isnan(S.data).sum()) == int(np.isnan(D).sum())
    dense = Scale("none", missing=rule).fit(D)
    sparse = Scale("none", missing=rule).fit(S)
    np.testing.assert_allclose(dense.fill_, _slow_fill(D, rule), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sparse.fill_, dense.fill_, rtol=1e-12, atol=1e-12)
    assert sparse.explain()["missing"] == dense.explain()["missing"]
    # a column whose training rows had no NaN has its value too
    assert not np.isnan(D[:, 8]).any()
    later = np.nan_to_num(D[:2]).copy()
    later[0, 8] = np.nan
    assert dense.transform(later)[0, 8] == dense.fill_[8]  # (float64 X stays float64)
    # training rows without NaN: a later NaN is refused, not filled
    complete = Scale("none", missing=rule).fit(np.nan_to_num(D))
    assert complete.missing_ == "error" and not complete.fill_.any()
    with pytest.raises(DataFormatError, match="the first at row 0, column 8"):
        complete.transform(later)


def test_serve_takes_null_as_missing_only_where_the_model_fills_them(tmp_path):
    """A vector's or a sparse item's null is a missing value: filled by a model whose training
    rows held missing values (the same answer as predicting the NaN row in Python); refused,
    naming the field, by one whose rows held none."""
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from labelwise.serve import ServeSettings, create_app

    X, Y = _with_holes(seed=5)
    with pytest.warns(MissingValuesWarning):
        holes = Pipeline(model=OneVsRest(n_threads=1)).fit(X, Y, labels=["a", "b", "c"])
    holes.save(tmp_path / "holes")
    full = Pipeline(model=OneVsRest(n_threads=1)).fit(np.nan_to_num(X), Y, labels=["a", "b", "c"])
    full.save(tmp_path / "full")
    app = create_app(ServeSettings(models={"holes": str(tmp_path / "holes"),
                                           "full": str(tmp_path / "full")}, batching=False),
                     load_in_background=False)
    row = [1.5, None, -20.0, 0.0, None, 0.25]
    Xq = np.array([[np.nan if v is None else v for v in row]], np.float32)
    with TestClient(app) as client:
        info = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert info["holes"]["fills_missing"] is True and info["full"]["fills_missing"] is False
        want = holes.predict_labels(Xq, k=2)
        for item in ({"vector": row},
                     {"features": {"indices": [0, 1, 2, 4, 5],
                                   "values": [1.5, None, -20.0, None, 0.25]}}):
            r = client.post("/v1/models/holes/predict", json={"items": [item], "top_k": 2})
            assert r.status_code == 200, r.text
            assert r.json()["items"] == want
        r = client.post("/v1/models/full/predict", json={"items": [{"vector": row}]})
        assert r.status_code == 422
        assert r.json()["detail"].startswith("items[0].vector[1]: null (a missing value)")
        r = client.post("/v1/models/full/predict",
                        json={"items": [{"features": {"indices": [3, 4], "values": [1.0, None]}}]})
        assert r.json()["detail"].startswith("items[0].features.values[1]: null")


def test_a_bad_missing_rule_is_refused_at_fit_and_in_a_saved_pipeline(tmp_path):
    X, Y = _with_holes(n=60)
    X = np.nan_to_num(X)
    for model in (OneVsRest(n_threads=1), LabelForest(n_estimators=2, n_threads=1)):
        with pytest.raises(ValueError, match="missing must be one of median, mean, error"):
            Pipeline(model=model, missing="zero").fit(X, Y)
    Pipeline(model=OneVsRest(n_threads=1)).fit(X, Y).save(tmp_path / "p")
    doc_path = tmp_path / "p" / "pipeline.json"
    doc = json.loads(doc_path.read_text())
    assert doc["params"]["missing"] == "median"
    doc["params"]["missing"] = "zero"
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match="params.missing.*'zero'|'zero'.*params.missing"):
        Pipeline.load(tmp_path / "p")


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_jsonl_writes_missing_values_as_null_and_reads_them_back(tmp_path, kind):
    from labelwise.dataset import Dataset
    from labelwise.io import read, write

    X = np.array([[1.5, np.nan, 0.0], [np.nan, 2.0, -3.0]], np.float32)
    if kind == "sparse":
        X = sp.csr_matrix(np.where(np.isnan(X), 1.0, X).astype(np.float32))
        X.data[[0, 2]] = np.nan  # stored NaN: row 0 col 0, row 1 col 0
    d = Dataset(X, [[0], [1]], ["a", "b"])
    write(d, tmp_path / "d.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert None in (rows[0]["features"].values() if kind == "sparse" else rows[0]["features"])
    back = read(tmp_path / "d.jsonl")
    a = X.toarray() if kind == "sparse" else X
    b = back.X.toarray() if kind == "sparse" else back.X
    np.testing.assert_array_equal(a, b)  # (NaN where NaN: assert_array_equal treats them equal)
    assert back.meta["missing_values"] == 2
