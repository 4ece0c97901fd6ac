"""`labelwise train / tune / predict / evaluate` on pipelines: text JSONL end to end, an XC-style
(LIBSVM) real dataset, one text from the command line, and one-line errors."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

from conftest import shared_dataset_dir
from labelwise import Dataset
from labelwise.cli.main import main
from labelwise.io import read, write
from labelwise.metrics import LabelSets, evaluate
from labelwise.pipeline import Pipeline, load_any
from test_pipeline import NAMES, _texts


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text")
    texts, Y = _texts(n=200, seed=11)
    ids = [f"t{i}" for i in range(200)]
    ds = Dataset(texts, Y, NAMES, ids=ids)
    write(ds.subset(np.arange(150)), tmp / "train.jsonl")
    write(ds.subset(np.arange(150, 200)), tmp / "test.jsonl")
    return tmp


def _lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_text_jsonl_end_to_end(text_files, capsys, monkeypatch):
    tmp = text_files
    model = tmp / "pipe"
    assert main(["train", str(tmp / "train.jsonl"), "--model", "ovr", "--threads", "1",
                 "--out", str(model), "--quiet"]) == 0
    assert "on tfidf features on 150 rows, 5 labels" in capsys.readouterr().out
    pipe = Pipeline.load(model)
    assert type(pipe.featurizer).__name__ == "Tfidf" and pipe.decision_ is None

    assert main(["tune", str(model), str(tmp / "train.jsonl"), "--objective", "micro-f1",
                 "--cv", "3", "--k", "5", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objective"] == "micro-f1" and summary["k"] == 5
    pipe = Pipeline.load(model)
    assert pipe.decision_.objective == "micro-f1" and pipe.calibrator_.per_label
    # the CLI tune is Pipeline.tune on the training data, nothing else
    train = read(tmp / "train.jsonl")
    ref = Pipeline(pipe.featurizer, pipe.model).tune(train, objective="micro-f1", cv=3, k=5)
    assert np.array_equal(ref.decision_.thresholds_, pipe.decision_.thresholds_)

    # one text on the command line
    assert main(["predict", str(model), "blue plum w3 w7", "-k", "3"]) == 0
    (item,) = _lines(capsys.readouterr().out)
    assert item == pipe.predict_labels(["blue plum w3 w7"], k=3)[0]
    assert len(item["candidates"]) == 3 and "blue" in item["labels"] and "id" not in item

    # a file: one line per item, with ids, identical to the API
    test = read(tmp / "test.jsonl")
    assert main(["predict", str(model), str(tmp / "test.jsonl"), "--top-k", "2"]) == 0
    rows = _lines(capsys.readouterr().out)
    api = pipe.predict_labels(test.X, k=2)
    assert [r.pop("id") for r in rows] == [f"t{i}" for i in range(150, 200)]
    assert rows == api

    # many texts on stdin, and --out
    monkeypatch.setattr("sys.stdin", io.StringIO("red green\nplum\n"))
    out = tmp / "pred.jsonl"
    assert main(["predict", str(model), "-", "--out", str(out)]) == 0
    assert _lines(out.read_text()) == pipe.predict_labels(["red green", "plum"], k=5)

    # evaluate: rank metrics on calibrated probabilities, set metrics on the policy's sets
    assert main(["evaluate", str(model), str(tmp / "test.jsonl"), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    sets = evaluate(test.Y, LabelSets(pipe.predict(test.X)), label_names=list(NAMES))
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy"):
        assert report["metrics"][key] == pytest.approx(sets["metrics"][key], abs=1e-12)
    scores = evaluate(test.Y, pipe.predict_proba(test.X, k=5), label_names=list(NAMES))
    assert report["metrics"]["p@1"] == pytest.approx(scores["metrics"]["p@1"], abs=1e-12)
    assert report["metrics"]["micro_f1"] > 0.6
    assert report["set_rule"] == "decision policy per-label-threshold"
    assert any("decision policy" in n for n in report["notes"])
    assert [r["f1"] for r in report["per_label"]] == [r["f1"] for r in sets["per_label"]]


def test_text_and_labels_columns(tmp_path, capsys):
    texts, Y = _texts(n=60, seed=2)
    with open(tmp_path / "d.jsonl", "w") as f:
        for t, labs in zip(texts, Y, strict=True):
            f.write(json.dumps({"body": t, "tags": [NAMES[j] for j in labs]}) + "\n")
    model = tmp_path / "p"
    assert main(["train", str(tmp_path / "d.jsonl"), "--model", "ovr", "--text-column", "body",
                 "--labels-column", "tags", "--out", str(model), "--quiet",
                 "--feature-set", "ngram_range=[1,1]"]) == 0
    pipe = Pipeline.load(model)
    assert pipe.featurizer.ngram_range == (1, 1)
    capsys.readouterr()
    # predict needs no labels column: unlabelled tables are fine
    with open(tmp_path / "new.jsonl", "w") as f:
        f.write(json.dumps({"body": "cyan"}) + "\n")
    assert main(["predict", str(model), str(tmp_path / "new.jsonl"), "--text-column", "body"]) == 0
    (item,) = _lines(capsys.readouterr().out)
    assert item == pipe.predict_labels(["cyan"])[0]


def test_xc_dataset_end_to_end(tmp_path, capsys):
    folder = shared_dataset_dir("libsvm-yeast-napkinxc")
    train, test = str(folder / "yeast_train.txt"), str(folder / "yeast_test.txt")
    model = tmp_path / "yeast"
    assert main(["train", train, "--format", "libsvm", "--model", "ovr", "--threads", "1",
                 "--out", str(model), "--quiet"]) == 0
    assert main(["tune", str(model), train, "--format", "libsvm", "--objective", "samples-f1",
                 "--cv", "3", "--quiet"]) == 0
    capsys.readouterr()
    pipe = load_any(model)
    assert pipe.featurizer is None and pipe.tuning_["k"] == 14
    data = read(test, format="libsvm")
    assert main(["evaluate", str(model), test, "--format", "libsvm", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    expect = evaluate(data.Y, LabelSets(pipe.predict(data.X)))
    assert report["metrics"]["samples_f1"] == pytest.approx(expect["metrics"]["samples_f1"])
    assert report["metrics"]["samples_f1"] > 0.6  # yeast: tuned thresholds beat top-k sets
    assert main(["predict", str(model), test, "--format", "libsvm", "-k", "3"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert len(rows) == 917 and all(len(r["candidates"]) == 3 for r in rows)
    assert rows[:5] == pipe.predict_labels(data.X[:5], k=3)


def test_legacy_model_directory_tune_and_predict(tmp_path, capsys):
    from labelwise.models import OneVsRest

    texts, Y = _texts(n=80, seed=4)
    from labelwise.features import Tfidf

    tf = Tfidf().fit(texts)
    ds = Dataset(tf.transform(texts), Y, NAMES)
    OneVsRest(n_threads=1).fit(ds).save(tmp_path / "m")
    write(ds, tmp_path / "train.xc")
    assert main(["tune", str(tmp_path / "m"), str(tmp_path / "train.xc"), "--cv", "3",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert (tmp_path / "m" / "decision-manifest.json").is_file()
    pipe = load_any(tmp_path / "m")
    assert pipe.decision_ is not None and pipe.tuning_["k"] == 5
    # the parameters of such a folder: unfitted parts of the tuned ones' class and settings
    assert type(pipe.decision) is type(pipe.decision_) and not hasattr(pipe.decision, "n_labels_")
    assert pipe.decision._params() == pipe.decision_._params()
    assert pipe.calibrator._params() == pipe.calibrator_._params()
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "train.xc"), "-k", "2"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert rows == pipe.predict_labels(ds.X, k=2)
    # tampering with the tuned files is caught
    (tmp_path / "m" / "decision.json").write_text((tmp_path / "m" / "decision.json").read_text() + " ")
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "train.xc")]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err


def test_errors_are_one_line(text_files, tmp_path, capsys):
    tmp = text_files
    model = tmp_path / "p"
    assert main(["train", str(tmp / "train.jsonl"), "--model", "ovr", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    xc = tmp_path / "num.xc"
    write(Dataset(np.eye(6, 3, dtype=np.float32), [[0], [1], [2], [0], [1], [2]]), xc)
    cases = [
        (["train", str(xc), "--features", "tfidf", "--out", str(tmp_path / "x")], "holds numeric features"),
        (["train", str(xc), "--text-column", "body", "--out", str(tmp_path / "x")], "only for csv/tsv/jsonl/parquet"),
        (["train", str(tmp / "train.jsonl"), "--feature-set", "bogus=1", "--out", str(tmp_path / "x")],
         "unknown parameter(s) bogus for --feature-set"),
        (["tune", str(model), str(xc)], "holds numeric features; this pipeline needs texts"),
        (["tune", str(model), str(tmp / "train.jsonl"), "--objective", "f2"], "--objective 'f2'"),
        (["predict", str(model), str(xc), "--format", "xc"], "list of texts"),
        (["predict", str(tmp_path / "missing"), "some text"], "no such pipeline or model directory"),
        (["predict", str(model), "x", "-k", "0"], "--top-k must be >= 1"),
        (["evaluate", str(model), str(xc)], "list of texts"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "x").exists()
    num = tmp_path / "num"
    assert main(["train", str(xc), "--model", "ovr", "--out", str(num), "--quiet"]) == 0
    capsys.readouterr()
    for argv, message in ((["predict", str(num), "-"], "needs a pipeline with a text featurizer"),
                          (["predict", str(num), "not a file"], "neither a file nor a dataset name")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    # a text pipeline labels a non-file DATA as a text, warning when it looks like a file name
    with warnings.catch_warnings():  # main prints warnings as one line on stderr
        warnings.simplefilter("always")
        assert main(["predict", str(model), "tset.jsonl"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "warning: 'tset.jsonl' is not an existing file: it is labelled as a text\n"
    assert len(_lines(captured.out)) == 1
