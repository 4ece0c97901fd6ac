"""``evaluate``: report keys, JSON round trip, agreement with the single metrics, input kinds,
and the registry (every registered metric is checked by some test module)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.metrics as skm

import labelwise.metrics as lm
from labelwise.errors import DataFormatError
from labelwise.metrics import METRICS, LabelSets, evaluate, get_metric, propensities

HERE = Path(__file__).parent
SCORE_KEYS = {
    "p@1", "p@3", "r@1", "r@3", "ndcg@1", "ndcg@3", "psp@1", "psp@3", "psndcg@1", "psndcg@3",
    "map", "micro_ap", "macro_auroc", "micro_auroc", "lrap", "coverage_error", "label_ranking_loss",
    "one_error", "coverage@p0.9", "coverage@p0.9_threshold", "label_coverage@p0.9",
    "label_coverage@p0.9_threshold",
}
SET_KEYS = {
    *(f"{a}_{m}" for a in ("micro", "macro", "samples", "weighted")
      for m in ("precision", "recall", "f1")),
    "hamming_loss", "subset_accuracy", "jaccard", "cp", "cr", "cf1", "op", "or", "of1",
}


def case(seed=0, n=50, L=7):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.3).astype(int)
    Y[:, 2] = 0
    S = rng.random((n, L))
    return Y, S


def test_report_layout_and_json_round_trip():
    Y, S = case()
    rep = evaluate(Y, S, k=(1, 3), label_names=[f"l{i}" for i in range(7)])
    assert set(rep) == {"n_samples", "n_labels", "input", "set_rule", "propensity", "metrics",
                        "per_label", "notes"}
    assert set(rep["metrics"]) == SCORE_KEYS | SET_KEYS
    assert (rep["n_samples"], rep["n_labels"], rep["input"]) == (50, 7, "dense")
    assert rep["set_rule"] == "score >= 0.5"
    assert rep["propensity"] == {"source": "Y_true", "A": 0.55, "B": 1.5}
    assert any("Y_true label counts" in note for note in rep["notes"])
    assert any("1 labels without positives" in note for note in rep["notes"])
    assert json.loads(json.dumps(rep, allow_nan=False)) == rep
    row = rep["per_label"][2]
    assert set(row) == {"label", "support", "precision", "recall", "f1", "ap", "auroc"}
    assert (row["label"], row["support"], row["ap"], row["auroc"]) == ("l2", 0, None, None)
    m = rep["metrics"]
    assert m["micro_f1"] == pytest.approx(skm.f1_score(Y, (S >= 0.5).astype(int),
                                                       average="micro"), abs=1e-12)
    assert m["macro_auroc"] == pytest.approx(
        np.mean([skm.roc_auc_score(Y[:, j], S[:, j]) for j in range(7) if j != 2]), abs=1e-12)
    assert m["lrap"] == pytest.approx(skm.label_ranking_average_precision_score(Y, S),
                                      abs=1e-12)
    assert m["p@3"] == lm.precision_at_k(Y, S, k=3)
    assert m["psp@3"] == lm.psprecision_at_k(Y, S, k=3, propensity=propensities(Y))
    assert m["coverage@p0.9"] == lm.coverage_at_precision(Y, S, target=0.9).coverage
    assert rep["per_label"][0]["ap"] == pytest.approx(
        skm.average_precision_score(Y[:, 0], S[:, 0]), abs=1e-12)


def test_topk_equals_dense_when_k_covers_all_labels():
    Y, S = case(1)
    T = sp.csr_matrix((S.ravel(), np.tile(np.arange(7), 50), np.arange(0, 351, 7)),
                      shape=S.shape)
    dense, top = evaluate(Y, S, k=(1, 3, 5)), evaluate(sp.csr_matrix(Y), T, k=(1, 3, 5))
    assert top["input"] == "topk"
    for key, v in dense["metrics"].items():
        if v is None:
            assert top["metrics"][key] is None
        else:
            assert top["metrics"][key] == pytest.approx(v, abs=1e-12), key
    for a, b in zip(top["per_label"], dense["per_label"]):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(b[key], float):
                assert a[key] == pytest.approx(b[key], abs=1e-12)
            else:
                assert a[key] == b[key]


def test_sets_input_and_set_rules():
    Y, S = case(2)
    rep = evaluate(Y, LabelSets((S > 0.7).astype(int)))
    assert rep["input"] == "sets" and rep["set_rule"] == "given sets"
    assert set(rep["metrics"]) == SET_KEYS
    assert rep["per_label"][0]["ap"] is None
    assert rep["metrics"]["samples_f1"] == pytest.approx(
        skm.f1_score(Y, (S > 0.7).astype(int), average="samples", zero_division=0), abs=1e-12)
    assert evaluate(Y, S, threshold=0.7)["set_rule"] == "score >= 0.7"
    assert evaluate(Y, S, set_k=2)["set_rule"] == "top-2"
    assert evaluate(Y, S * 3 - 1, k=(2, 4))["set_rule"] == "top-2"  # not probabilities
    with pytest.raises(DataFormatError, match="not both"):
        evaluate(Y, S, threshold=0.5, set_k=1)
    with pytest.raises(DataFormatError, match="apply to scores"):
        evaluate(Y, LabelSets(Y), threshold=0.5)


def test_propensity_options():
    Y, S = case(3)
    Ytr = case(4, n=200)[0]
    rep = evaluate(Y, S, Y_train=Ytr, propensity="wikipedia", per_label=False)
    assert "per_label" not in rep
    assert rep["propensity"] == {"source": "Y_train", "A": 0.5, "B": 0.4}
    assert rep["metrics"]["psp@5"] == pytest.approx(lm.psprecision_at_k(
        Y, S, k=5, propensity=propensities(Ytr, "wikipedia")), abs=1e-15)
    rep = evaluate(Y, S, propensity=(0.6, 2.6), Y_train=Ytr)
    assert rep["propensity"]["A"] == 0.6
    p = np.full(7, 0.5)
    assert evaluate(Y, S, propensity=p)["propensity"]["source"] == "given"
    rep = evaluate(Y, S, propensity=None)
    assert rep["propensity"] is None and "psp@1" not in rep["metrics"]
    with pytest.raises(DataFormatError, match="preset"):
        evaluate(Y, S, propensity="imdb")
    with pytest.raises(DataFormatError, match="Y_train"):
        evaluate(Y, S, Y_train=Ytr[:, :3])
    with pytest.raises(DataFormatError, match="label names"):
        evaluate(Y, S, label_names=["a"])
    with pytest.raises(DataFormatError, match="chunk_size"):
        evaluate(Y, S, chunk_size=0)


def test_several_targets_and_chunking_do_not_change_results():
    Y, S = case(5)
    a = evaluate(Y, S, target_precision=(0.5, 0.8), chunk_size=3)
    b = evaluate(Y, S, target_precision=(0.5, 0.8))
    assert a == b
    assert {"coverage@p0.5", "coverage@p0.8", "label_coverage@p0.5_threshold"} <= set(
        a["metrics"])


def test_nan_becomes_null():
    Y = np.zeros((4, 3), dtype=int)
    rep = evaluate(Y, np.full((4, 3), 0.2))
    assert rep["metrics"]["map"] is None and rep["metrics"]["micro_auroc"] is None
    assert rep["metrics"]["micro_ap"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in rep["metrics"].values())


# --- registry ------------------------------------------------------------------------------

def checked_metrics() -> set[str]:
    """Union of the CHECKED_METRICS sets declared by the test modules (read, not imported)."""
    names: set[str] = set()
    for path in sorted(HERE.glob("test_metrics_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "CHECKED_METRICS" for t in node.targets):
                names |= set(eval(compile(ast.Expression(node.value), str(path), "eval")))
    return names


def test_every_registered_metric_is_checked_by_a_reference_test():
    checked = checked_metrics()
    assert set(METRICS) - checked == set(), "registered but not covered by reference tests"
    assert checked - set(METRICS) == set(), "tests claim metrics that are not registered"


@pytest.mark.parametrize("name", sorted(METRICS))
def test_registered_metric_runs_on_its_inputs(name):
    spec = get_metric(name)
    Y, S = case(6)
    kw = {}
    if name.endswith("@k"):
        kw["k"] = 2
    if name.startswith("ps"):
        kw["propensity"] = propensities(Y)
    if name.endswith("@p"):
        kw["target"] = 0.5
    inputs = {"dense": S, "topk": sp.csr_matrix(np.where(S > 0.4, S, 0)),
              "sets": LabelSets((S > 0.5).astype(int))}
    values = {}
    for kind in sorted(spec.inputs):
        args = dict(kw)
        if spec.family == "set" and kind != "sets":
            args["threshold"] = 0.5
        values[kind] = spec.func(Y, inputs[kind], **args)
        assert isinstance(values[kind], float)
    if spec.family == "set":
        assert values["dense"] == pytest.approx(values["sets"], abs=1e-12)
    else:
        assert "sets" not in spec.inputs
        with pytest.raises(DataFormatError):
            spec.func(Y, inputs["sets"], **kw)
    assert isinstance(spec.higher_is_better, bool)


def test_registry_lookup_and_exports():
    with pytest.raises(DataFormatError, match="unknown metric"):
        get_metric("accuracy")
    assert not get_metric("hamming_loss").higher_is_better
    assert get_metric("p@k").higher_is_better
    assert sorted(lm.__all__) == sorted(set(lm.__all__))
    for name in lm.__all__:
        assert hasattr(lm, name)


def test_two_training_rows_leave_psp_out_with_a_note():
    Y, S = case(3)
    rep = evaluate(Y, S, Y_train=Y[:2])  # before: "propensities must lie in (0, 1]"
    assert rep["propensity"] is None and "psp@1" not in rep["metrics"]
    assert any("psp@k and psndcg@k left out" in n and "Y_train, which has 2" in n
               for n in rep["notes"])
    assert evaluate(Y[:2], S[:2])["propensity"] is None  # Y_true of 2 rows: the same
    assert "psp@1" in evaluate(Y, S, Y_train=Y[:3])["metrics"]
