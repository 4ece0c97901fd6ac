"""Labels are matched by name everywhere: evaluate, tune, predict (CLI and API) take data whose
labels come in another order, or include labels the model never saw, and a truth file needs
only ids and labels."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import Dataset, LabelSpace
from labelwise.cli.main import main
from labelwise.dataset import align_labels
from labelwise.errors import UnknownLabelError
from labelwise.io import write
from labelwise.metrics import LabelSets, evaluate
from labelwise.pipeline import DEFAULT_OBJECTIVE, Pipeline

NAMES = [f"tag-{j}" for j in range(6)]
PERM = [3, 0, 5, 1, 4, 2]  # the data's column i is the model's label PERM[i]


# ---------------------------------------------------------------------- the one place
def test_reindex_by_name_and_unknown_names():
    Y = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], np.float32))
    source, target = LabelSpace(["c", "a", "x"]), LabelSpace(["a", "b", "c"])
    out, unknown = source.reindex(Y, target)
    assert out.toarray().tolist() == [[0, 0, 1], [1, 0, 0], [1, 0, 1]]
    assert unknown == ["x"] and out.dtype == np.float32
    assert source.ids_in(target).tolist() == [2, 0, -1] and source.ids_in(target).dtype == np.int64
    assert source.union(target).names == ("c", "a", "x", "b")
    with pytest.raises(UnknownLabelError, match="1 of the data's 3 labels .*'x'"):
        align_labels(Y, source, target)
    with pytest.warns(UserWarning, match="1 of the data's 3 labels are not among the model's 3 "
                                         r"\('x'\): dropped"):
        align_labels(Y, source, target, unknown="warn", what="dropped")
    same, none = align_labels(Y, None, target)  # no names: the target's labels in order
    assert none == [] and (same != Y).nnz == 0


@pytest.mark.parametrize("n_labels", [300, 70_000])
def test_large_label_spaces_keep_identity(n_labels):
    """Past 256 and 65,536 labels every id maps to its own name (no small integer dtype)."""
    rng = np.random.default_rng(n_labels)
    perm = rng.permutation(n_labels)
    model = LabelSpace([f"L{j}" for j in range(n_labels)])
    data = LabelSpace([f"L{j}" for j in perm])
    rows = np.repeat(np.arange(4), 3)
    cols = np.array([0, 255, 256, 65_535 % n_labels, 1, 2, 3, 4, 5, n_labels - 1, n_labels - 2, 7])
    Yd = sp.csr_matrix((np.ones(12, np.float32), (rows, cols)), shape=(4, n_labels))
    Ym, unknown = data.reindex(Yd, model)
    assert unknown == []
    for r in range(4):
        expect = sorted(int(perm[c]) for c in Yd[r].indices)
        assert sorted(Ym[r].indices.tolist()) == expect
        assert [data.name(int(c)) for c in Yd[r].indices] == [f"L{perm[c]}" for c in Yd[r].indices]
    assert Ym.indices.dtype.itemsize >= 4 and data.ids_in(model).dtype == np.int64
    assert np.array_equal(data.ids_in(model), perm)


# ---------------------------------------------------------------------- metrics.evaluate
def test_evaluate_with_unknown_labels_by_hand():
    """Model labels a, b, c; the data has c, a, z (z unknown to the model, b absent)."""
    S = sp.csr_matrix(np.array([[0.9, 0.8, 0.0], [0.2, 0.7, 0.6]], np.float32))
    S.eliminate_zeros()  # row 0 retrieves a, b; row 1 retrieves a, b, c
    Y = np.array([[0, 1, 1],   # row 0: a, z
                  [1, 0, 1]],  # row 1: c, z
                 np.float32)
    rep = evaluate(Y, S, k=(1, 2), threshold=0.5, propensity=None, label_names=["c", "a", "z"],
                   score_labels=["a", "b", "c"])
    m = rep["metrics"]
    assert rep["unknown_labels"] == ["z"] and rep["n_labels"] == 4
    assert [r["label"] for r in rep["per_label"]] == ["a", "b", "c", "z"]
    # top-1: row 0 -> a (hit), row 1 -> b (miss)
    assert m["p@1"] == pytest.approx(0.5)
    # top-2: row 0 {a, b}: 1 hit of 2 true; row 1 {b, c}: 1 hit of 2 true
    assert m["p@2"] == pytest.approx(0.5) and m["r@2"] == pytest.approx(0.5)
    # sets (>= 0.5): row 0 {a, b}, row 1 {b, c}; truth {a, z}, {c, z}: TP 2, FP 2, FN 2 (both z)
    assert m["micro_precision"] == pytest.approx(0.5) and m["micro_recall"] == pytest.approx(0.5)
    z = rep["per_label"][3]
    assert z["support"] == 2 and z["recall"] == 0.0
    assert any("1 labels of the data are not scored" in n for n in rep["notes"])
    assert any("1 scored labels are not labels of the data" in n for n in rep["notes"])
    sets = evaluate(Y, LabelSets(sp.csr_matrix(S.toarray() >= 0.5)), label_names=["c", "a", "z"],
                    score_labels=["a", "b", "c"])
    assert sets["metrics"]["micro_f1"] == pytest.approx(m["micro_f1"])


def test_evaluate_another_order_is_identical_dense_and_topk():
    rng = np.random.default_rng(0)
    Y = (rng.random((40, 6)) < 0.3).astype(np.float32)
    S = rng.random((40, 6)) + 0.5 * Y
    Ytr = (rng.random((80, 6)) < 0.3).astype(np.float32)
    base = evaluate(Y, S, Y_train=Ytr, label_names=NAMES)
    for scores in (S, sp.csr_matrix(np.where(S > 0.7, S, 0))):
        base = evaluate(Y, scores, Y_train=Ytr, label_names=NAMES)
        got = evaluate(Y[:, PERM], scores, Y_train=Ytr[:, PERM], label_names=[NAMES[p] for p in PERM],
                       score_labels=NAMES)
        assert got["metrics"] == base["metrics"] and got["per_label"] == base["per_label"]
        assert got["unknown_labels"] == []


# ---------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(7)
    X = sp.random(260, 40, density=0.25, format="csr", random_state=7, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(40, 6)) > 0.6).astype(np.float32))
    ds = Dataset(X, Y, NAMES, ids=[f"d{i}" for i in range(260)])
    train, test = ds.subset(np.arange(180)), ds.subset(np.arange(180, 260))
    write(train, tmp / "train.xc")
    write(test, tmp / "test.jsonl")
    write(_reorder(test), tmp / "test-perm.jsonl")
    assert main(["train", str(tmp / "train.xc"), "--model", "ovr", "--threads", "1",
                 "--out", str(tmp / "model"), "--quiet"]) == 0
    return tmp, train, test


def _reorder(ds, extra=None):
    """ds with its label columns in PERM order (and an extra label on the rows ``extra``)."""
    Y = ds.Y[:, PERM].tocsr()
    names = [NAMES[p] for p in PERM]
    if extra is not None:
        col = np.zeros((ds.n_samples, 1), np.float32)
        col[extra] = 1
        Y = sp.hstack([Y, sp.csr_matrix(col)]).tocsr()
        names.append("never-seen")
    return Dataset(ds.X, Y, names, ids=ds.ids)


def _json(capsys, argv):
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # shown as main shows them: one warning: line each
        assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_cli_evaluate_another_order_and_unknown_labels(trained, capsys, tmp_path):
    tmp, _, test = trained
    model = str(tmp / "model")
    base, err = _json(capsys, ["evaluate", model, str(tmp / "test.jsonl"), "--json"])
    assert err == ""
    perm, err = _json(capsys, ["evaluate", model, str(tmp / "test-perm.jsonl"), "--json"])
    assert err == "" and perm["metrics"] == base["metrics"]
    assert perm["per_label"] == base["per_label"]

    extra = np.arange(0, test.n_samples, 4)  # 20 rows carry a label the model never saw
    write(_reorder(test, extra), tmp_path / "unknown.jsonl")
    got, err = _json(capsys, ["evaluate", model, str(tmp_path / "unknown.jsonl"), "--json"])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "'never-seen'" in lines[0]
    assert "1 of the data's 7 labels are not the model's" in lines[0]
    assert got["unknown_labels"] == ["never-seen"] and got["n_labels"] == 7
    # the unknown label's 20 positives are misses: micro recall = TP / (P + 20)
    tp = base["metrics"]["micro_recall"] * test.Y.nnz
    assert got["metrics"]["micro_recall"] == pytest.approx(tp / (test.Y.nnz + len(extra)))
    assert got["metrics"]["micro_precision"] == pytest.approx(base["metrics"]["micro_precision"])
    assert got["metrics"]["p@1"] == pytest.approx(base["metrics"]["p@1"])
    assert got["per_label"][-1] == {**got["per_label"][-1], "label": "never-seen",
                                    "support": len(extra), "recall": 0.0}

    # the model's labels the data lacks: negatives (every prediction of them is a miss)
    drop = Dataset(test.X, test.Y[:, 1:], NAMES[1:], ids=test.ids)
    write(drop, tmp_path / "fewer.jsonl")
    fewer, err = _json(capsys, ["evaluate", model, str(tmp_path / "fewer.jsonl"), "--json"])
    assert err == "" and fewer["n_labels"] == 6 and fewer["per_label"][0]["support"] == 0
    assert any("1 scored labels are not labels of the data" in n for n in fewer["notes"])

    only = Dataset(test.X, sp.csr_matrix(np.ones((test.n_samples, 1), np.float32)), ["zzz"])
    write(only, tmp_path / "none.jsonl")
    assert main(["evaluate", model, str(tmp_path / "none.jsonl")]) == 2
    assert "none of the data's 1 labels is one of the model's 6" in capsys.readouterr().err


def test_cli_evaluate_truth_file_of_ids_and_labels_only(trained, capsys, tmp_path):
    tmp, _, test = trained
    scores = tmp_path / "scores.jsonl"
    assert main(["predict", str(tmp / "model"), str(tmp / "test.jsonl"), "--scores",
                 "--top-k", "6", "--out", str(scores)]) == 0
    capsys.readouterr()
    base, _ = _json(capsys, ["evaluate", "--true", str(tmp / "test.jsonl"), "--scores",
                             str(scores), "--json"])
    truth = tmp_path / "truth.jsonl"  # ids and labels only, labels in another order, rows reversed
    perm = _reorder(test)
    lines = [json.dumps({"id": str(perm.ids[i]), "labels": perm.label_names(i)})
             for i in range(perm.n_samples)][::-1]
    truth.write_text("\n".join(lines) + "\n")
    got, err = _json(capsys, ["evaluate", "--true", str(truth), "--scores", str(scores), "--json"])
    assert err == ""
    for key, v in base["metrics"].items():
        assert got["metrics"][key] == pytest.approx(v, nan_ok=True), key
    csv = tmp_path / "truth.csv"
    csv.write_text("id,labels\n" + "".join(
        f"{perm.ids[i]},\"{json.dumps(perm.label_names(i)).replace(chr(34), chr(34) * 2)}\"\n"
        for i in range(perm.n_samples)))
    got_csv, _ = _json(capsys, ["evaluate", "--true", str(csv), "--scores", str(scores), "--json"])
    assert got_csv["metrics"]["p@1"] == pytest.approx(base["metrics"]["p@1"])


def _thresholds(model):
    pipe = Pipeline.load(model)
    return pipe, pipe.decision_.explain()


def test_cli_tune_another_order_and_unknown_labels(trained, capsys, tmp_path):
    import shutil

    tmp, train, _ = trained
    runs = {}
    extra = np.arange(0, train.n_samples, 3)
    for name, data in (("order", train), ("perm", _reorder(train)),
                       ("unknown", _reorder(train, extra))):
        model = tmp_path / f"m-{name}"
        shutil.copytree(tmp / "model", model)
        path = tmp_path / f"{name}.jsonl"
        write(data, path)
        summary, err = _json(capsys, ["tune", str(model), str(path), "--cv", "3", "--quiet"])
        assert summary["objective"] == DEFAULT_OBJECTIVE
        runs[name] = (_thresholds(model), err)
    (_, ref), err = runs["order"]
    assert err == ""
    for name in ("perm", "unknown"):
        (pipe, got), err = runs[name]
        assert got == ref, name
    err = runs["unknown"][1].strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: 1 of the data's 7 labels are not among "
                                               "the model's 6 ('never-seen'): ignored for tuning")
    # a tuned pipeline (policy sets, calibrated probabilities) on test data with an unknown
    # label and --train in another order: the sets and ECE follow the model's labels by name
    test = trained[2]
    write(_reorder(test, np.arange(0, test.n_samples, 5)), tmp_path / "test-unknown.jsonl")
    model = str(tmp_path / "m-order")
    base, _ = _json(capsys, ["evaluate", model, str(tmp / "test.jsonl"), "--json",
                             "--train", str(tmp / "train.xc")])
    got, err = _json(capsys, ["evaluate", model, str(tmp_path / "test-unknown.jsonl"), "--json",
                              "--train", str(tmp_path / "perm.jsonl"),
                              "--report", str(tmp_path / "r.html")])
    assert err.count("warning: ") == 1 and got["unknown_labels"] == ["never-seen"]
    assert "decision policy" in got["set_rule"] and got["metrics"]["ece"] == base["metrics"]["ece"]
    assert got["metrics"]["micro_precision"] == pytest.approx(base["metrics"]["micro_precision"])
    assert got["metrics"]["micro_recall"] < base["metrics"]["micro_recall"]
    assert got["metrics"]["psp@5"] < base["metrics"]["psp@5"]  # the 16 unknown positives missed
    same, _ = _json(capsys, ["evaluate", model, str(tmp / "test-perm.jsonl"), "--json",
                             "--train", str(tmp_path / "perm.jsonl")])
    assert same["metrics"] == base["metrics"]
    assert (tmp_path / "r.html").read_text().count('class="tile"') >= 7


def test_api_tune_matches_by_name():
    rng = np.random.default_rng(2)
    X = sp.random(150, 30, density=0.3, format="csr", random_state=2, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(30, 6)) > 0.5).astype(np.float32))
    ds = Dataset(X, Y, NAMES)
    from labelwise.models import OneVsRest

    a = Pipeline(model=OneVsRest(n_threads=1)).fit(ds).tune(ds, cv=3)
    b = Pipeline(model=OneVsRest(n_threads=1)).fit(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b.tune(_reorder(ds), cv=3)
    assert a.decision_.explain() == b.decision_.explain()
    assert a.tuning_["objective"] == DEFAULT_OBJECTIVE
    c = Pipeline(model=OneVsRest(n_threads=1)).fit(ds)
    with pytest.warns(UserWarning, match="ignored for tuning"):
        c.tune(_reorder(ds, np.arange(10)), cv=3)
    assert c.decision_.explain() == a.decision_.explain()
    assert np.array_equal(c.label_counts_, a.label_counts_)


def test_cli_predict_with_labels_in_another_order(trained, capsys):
    tmp, _, _ = trained
    outs = []
    for name in ("test.jsonl", "test-perm.jsonl"):
        assert main(["predict", str(tmp / "model"), str(tmp / name), "--top-k", "3"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[0].count("\n") == 80
