"""`labelwise labels add / list` and `labelwise learn` on a saved tf-idf pipeline, with the real
encoder on a GoEmotions subset: a label added by name is predicted at once, learns from a few
examples, and bad requests end in one-line errors."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labelwise import Dataset
from labelwise.cli.main import main
from labelwise.io import write
from labelwise.models import OneVsRest
from labelwise.pipeline import Pipeline
from test_hybrid import DESCRIPTION, EMOTIONS, KNOWN, NEW, emotion_subset, shared_cache


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    tmp = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_CACHE_HOME", shared_cache(tmp_path_factory))
        train, test = emotion_subset("train", 240), emotion_subset("test", 200)
        keep = [EMOTIONS.index(e) for e in KNOWN]
        write(Dataset(train.X, train.Y[:, keep], KNOWN), tmp / "train.jsonl")
        rows = np.flatnonzero(train.Y[:, EMOTIONS.index(NEW)].toarray().ravel())[:8]
        write(train.subset(rows), tmp / "shots.jsonl")  # gratitude with the rows' other labels
        yield tmp, test


def _out(capsys):
    return capsys.readouterr()


def test_add_predict_list_learn(files, capsys):
    tmp, test = files
    model = str(tmp / "pipe")
    assert main(["train", str(tmp / "train.jsonl"), "--model", "ovr", "--threads", "1",
                 "--out", model, "--quiet"]) == 0
    # the model's own C (no C selection): this test is about the added label's scale
    assert main(["tune", model, str(tmp / "train.jsonl"), "--cv", "3", "--k", "7",
                 "--no-select-c", "--quiet"]) == 0
    _out(capsys)
    assert main(["labels", "add", model, "--name", NEW, "--description", DESCRIPTION,
                 "--calibrate", str(tmp / "train.jsonl")]) == 0
    out = _out(capsys)
    assert f"added label '{NEW}' (zero-shot, calibrated probability mapping)" in out.out
    assert "8 labels, 1 added after training" in out.out and out.err == ""
    # predicted at once, from the saved directory
    assert main(["predict", model, "Thank you so much, I really appreciate it!", "-k", "3"]) == 0
    item = json.loads(_out(capsys).out)
    assert item["candidates"][0]["label"] == NEW
    pipe = Pipeline.load(model)
    j = pipe.labels_.index(NEW)
    # chosen by the tuned policy, which gives an added label the global threshold (the
    # zero-shot probability, 0.25 here, sits near it: which side depends on the tuning)
    threshold = pipe.decision_.global_threshold_
    assert (NEW in item["labels"]) == (item["candidates"][0]["probability"] >= threshold)
    y = test.Y[:, EMOTIONS.index(NEW)].toarray().ravel()
    auc0 = roc_auc_score(y, pipe.predict_proba(test.X, k=8).toarray()[:, j])
    assert auc0 > 0.6, auc0
    assert main(["labels", "list", model]) == 0
    rows = [json.loads(line) for line in _out(capsys).out.splitlines()]
    assert [r["label"] for r in rows] == KNOWN + [NEW]
    assert rows[-1] == {"label": NEW, "description": DESCRIPTION, "kind": "zero-shot",
                        "examples": 0}
    assert rows[0]["kind"] == "supervised" and rows[0]["examples"] > 0
    # learn: the new label learns, the rows' supervised labels are counted and left alone
    with warnings.catch_warnings():  # main prints warnings as one line on stderr
        warnings.simplefilter("always")
        assert main(["learn", model, str(tmp / "shots.jsonl"), "--quiet"]) == 0
    out = _out(capsys)
    assert f"learned from 8 rows: {NEW} 0 -> 8; saved to" in out.out
    assert re.fullmatch(r"warning: \d example\(s\) of \d supervised label\(s\) were not "
                        r"learned: the labels of a OneVsRest change only by retraining "
                        r"\(labelwise train\)\n", out.err), out.err
    pipe = Pipeline.load(model)
    assert pipe.label_info()[-1]["kind"] == "few-shot"
    auc1 = roc_auc_score(y, pipe.predict_proba(test.X, k=8).toarray()[:, j])
    assert auc1 > auc0 + 0.05, (auc0, auc1)
    # re-tuning on the training data (which lacks the added label) keeps the added label
    assert main(["tune", model, str(tmp / "train.jsonl"), "--cv", "3", "--k", "7",
                 "--quiet"]) == 0
    _out(capsys)
    pipe = Pipeline.load(model)
    assert pipe.labels_.names[-1] == NEW and pipe.label_info()[-1]["examples"] == 8


def test_errors_are_one_line(files, capsys, tmp_path):
    tmp, _ = files
    model = str(tmp_path / "pipe")
    assert main(["train", str(tmp / "train.jsonl"), "--model", "ovr", "--threads", "1",
                 "--out", model, "--quiet"]) == 0
    _out(capsys)
    assert main(["labels", "add", model, "--name", "joy"]) == 2
    assert _out(capsys).err.strip() == f"error: label 'joy' is already in {model}"
    # an unknown label in DATA is named; --add-labels adds it, then learns its examples
    shots = str(tmp / "shots.jsonl")
    assert main(["learn", model, shots, "--quiet"]) == 2
    err = _out(capsys).err.strip().splitlines()
    assert len(err) == 1 and "1 label(s) of the data are not in the pipeline: 'gratitude'" in err[0]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["learn", model, shots, "--add-labels", "--quiet"]) == 0
    out = _out(capsys)
    assert f"{NEW} (added) 0 -> 8" in out.out and "1 label(s) added" in out.out
    assert main(["labels", "add", model, "--name", NEW]) == 2
    assert "already in" in _out(capsys).err
    numeric = tmp_path / "numeric"
    Pipeline(model=OneVsRest(n_threads=1)).fit(np.eye(4), np.eye(4)[:, :2]).save(numeric)
    assert main(["labels", "add", str(numeric), "--name", "x"]) == 2
    assert "labels can only be added to a pipeline on texts" in _out(capsys).err
    assert main(["labels", "list", str(numeric)]) == 0
    assert [json.loads(r)["kind"] for r in _out(capsys).out.splitlines()] == ["supervised"] * 2
    assert main(["learn", str(numeric), shots]) == 2
    assert "learn needs a pipeline on texts" in _out(capsys).err


def test_learn_matches_labels_by_name(files, capsys, tmp_path):
    """learn on the same examples with the labels in another order gives the same pipeline."""
    import shutil

    from labelwise.io import read

    tmp, test = files
    model = tmp_path / "pipe"
    assert main(["train", str(tmp / "train.jsonl"), "--model", "ovr", "--threads", "1",
                 "--out", str(model), "--quiet"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["labels", "add", str(model), "--name", NEW, "--description",
                     DESCRIPTION]) == 0
    assert "warning: the new label uses the default zero-shot" in _out(capsys).err
    shots = read(tmp / "shots.jsonl")
    order = shots.labels.names[::-1]
    flipped = Dataset(shots.X, shots.Y[:, shots.labels.indices(order)], order)
    write(flipped, tmp_path / "flipped.jsonl")
    assert read(tmp_path / "flipped.jsonl").labels.names == tuple(order)
    probs = []
    for name, data in (("a", tmp / "shots.jsonl"), ("b", tmp_path / "flipped.jsonl")):
        shutil.copytree(model, tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            assert main(["learn", str(tmp_path / name), str(data), "--quiet"]) == 0
        assert f"{NEW} 0 -> 8" in _out(capsys).out
        probs.append(Pipeline.load(tmp_path / name).predict_proba(test.X[:40], k=8).toarray())
    assert np.array_equal(probs[0], probs[1])
