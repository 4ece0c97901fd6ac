"""`labelwise train / predict / evaluate MODEL DATA` end to end on a small learnable dataset."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import Dataset
from labelwise.cli.main import main
from labelwise.io import write
from labelwise.io.scores import read_scores
from labelwise.metrics import evaluate
from labelwise.pipeline import Pipeline


def _learnable(n=240, d=40, L=6, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, L))
    X = sp.random(n, d, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    Y = (X @ W > 0.4).astype(np.float32)
    return Dataset(X, sp.csr_matrix(Y), [f"topic {j}" for j in range(L)], ids=[f"doc{i}" for i in range(n)])


@pytest.fixture
def files(tmp_path):
    ds = _learnable()
    train, test = tmp_path / "train.xc", tmp_path / "test.jsonl"
    write(ds.subset(np.arange(0, 180)), train)
    write(ds.subset(np.arange(180, 240)), test)
    return tmp_path, train, test


def test_train_predict_evaluate(files, capsys):
    tmp, train, test = files
    model_dir = tmp / "model"
    assert main(["train", str(train), "--model", "ovr", "--set", "C=4", "--set", "loss=\"logistic\"",
                 "--seed", "3", "--threads", "1", "--out", str(model_dir), "--quiet"]) == 0
    pipe = Pipeline.load(model_dir)
    assert pipe.featurizer is None and pipe.decision_ is None  # numeric data: model only
    model = pipe.model
    assert model.get_params()["C"] == 4 and model.loss == "logistic" and model.random_state == 3
    assert list(model.labels_.names) == [f"topic {j}" for j in range(6)]
    capsys.readouterr()

    out = tmp / "pred.jsonl"
    assert main(["predict", str(model_dir), str(test), "--top-k", "2", "--out", str(out), "--scores"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 60 and rows[0]["id"] == "doc180"
    assert all(len(r["labels"]) == 2 for r in rows)
    assert rows[0]["labels"][0]["label"].startswith("topic ")
    assert rows[0]["labels"][0]["score"] >= rows[0]["labels"][1]["score"]

    assert main(["predict", str(model_dir), str(test), "-k", "1"]) == 0
    stdout_rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["candidates"][0]["label"] for r in stdout_rows] == [r["labels"][0]["label"] for r in rows]
    assert [r["candidates"][0]["score"] for r in stdout_rows] == pytest.approx(
        [r["labels"][0]["score"] for r in rows], abs=1e-6)
    # no decision policy: chosen = the scored labels with a margin above 0 (the model's default)
    for r in stdout_rows:
        assert r["labels"] == [c["label"] for c in r["candidates"] if c["score"] > 0]
        assert set(r["probabilities"]) == set(r["labels"]) and r["id"].startswith("doc")
    assert any(r["labels"] for r in stdout_rows) and not all(r["labels"] for r in stdout_rows)

    assert main(["evaluate", str(model_dir), str(test), "--json", "--top-k", "6"]) == 0
    got = json.loads(capsys.readouterr().out)
    truth = Pipeline.load(model_dir).model  # the same scores computed directly
    from labelwise import read

    data = read(test)
    expect = evaluate(data.Y, truth.decision_function(data.X, k=6), label_names=list(data.labels.names))
    assert got["metrics"]["p@1"] == pytest.approx(expect["metrics"]["p@1"], abs=1e-12)
    assert got["metrics"]["p@1"] > 0.7  # learnable data: far above chance
    S = read_scores(out, data.labels, ids=data.ids)
    assert S.nnz == 120


def test_set_reads_json_and_python_spellings(files):
    from labelwise.cli._common import parse_options

    assert parse_options(["a=None", "b=null", "c=True", "d=false", "e=2", "f=0.5", "g=word",
                          'h="None"', "i=none", "j=[1, 2]"]) == {
        "a": None, "b": None, "c": True, "d": False, "e": 2, "f": 0.5, "g": "word",
        "h": "None", "i": "none", "j": [1, 2]}
    tmp, train, _ = files
    assert main(["train", str(train), "--model", "tree", "--set", "inner_hinge_power=None",
                 "--set", "beam_size=10", "--out", str(tmp / "t"), "--quiet"]) == 0
    params = json.loads((tmp / "t" / "model" / "manifest.json").read_text())["params"]
    assert params["inner_hinge_power"] is None and params["beam_size"] == 10
    assert Pipeline.load(tmp / "t").model.inner_hinge_power is None
    assert main(["train", str(train), "--model", "ovr", "--set", "normalize=None",
                 "--out", str(tmp / "o"), "--quiet"]) == 0
    assert Pipeline.load(tmp / "o").model.normalize is None


def test_cli_errors_are_one_line(files, capsys):
    tmp, train, test = files
    assert main(["train", str(train), "--model", "ovr", "--set", "Q=1", "--out", str(tmp / "m")]) == 2
    assert capsys.readouterr().err.startswith("error: unknown parameter(s) Q for --model ovr; valid: C,")
    assert main(["train", str(train), "--model", "ovr", "--set", "C=-1", "--out", str(tmp / "m")]) == 2
    assert capsys.readouterr().err == "error: --set: C must be a finite number > 0.0, got -1\n"
    assert main(["predict", str(tmp / "missing-model"), str(test)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["evaluate", str(test)]) == 2
    assert "give either MODEL DATA, or --true FILE --scores FILE" in capsys.readouterr().err
    assert not (tmp / "m").exists()
