"""Issue 18 section 5: no command deletes or overwrites what it was not asked to (a user's
folder, its own input), and every usage error is one ``error:`` line with exit status 2.
Before the fix, ``train --out`` onto a folder of the user's files deleted them and exited 0,
and ``--out`` naming the training file replaced it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import Dataset
from labelwise.cli.main import main
from labelwise.io import write


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outputs")
    rng = np.random.default_rng(0)
    X = sp.random(60, 12, density=0.4, format="csr", random_state=0, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(12, 3)) > 0.2).astype(np.float32))
    train = tmp / "train.xc"
    write(Dataset(X, Y, ["a", "b", "c"]), train)
    model = tmp / "model"
    assert main(["train", str(train), "--model", "ovr", "--out", str(model), "--quiet",
                 "--threads", "1"]) == 0
    return tmp, train, model


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, err
    return err


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_refuses_a_folder_of_the_users_files(data, tmp_path, capsys):
    _, train, _ = data
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.tex").write_text("x")
    assert main(["train", str(train), "--model", "ovr", "--out", str(d), "--quiet"]) == 2
    _one_error_line(capsys, f"--out {d}: exists and is not a folder labelwise wrote")
    assert sorted(p.name for p in d.iterdir()) == ["thesis.tex"]
    assert (d / "thesis.tex").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing left beside it


def test_train_refuses_its_own_training_file_as_out(data, capsys):
    _, train, _ = data
    before = train.read_bytes()
    assert main(["train", str(train), "--model", "ovr", "--out", str(train), "--quiet"]) == 2
    _one_error_line(capsys, "holds or is the input")
    assert train.read_bytes() == before


def test_train_replaces_an_empty_folder_or_a_model(data, tmp_path, capsys):
    _, train, _ = data
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", str(train), "--model", "ovr", "--out", str(empty), "--quiet"]) == 0
    assert (empty / "pipeline.json").is_file()
    assert main(["train", str(train), "--model", "tree", "--out", str(empty), "--quiet"]) == 0
    assert '"LabelTree"' in (empty / "model" / "manifest.json").read_text()
    # a model folder that holds the training data: replacing it would delete the input
    inside = empty / "train.xc"
    inside.write_bytes(train.read_bytes())
    assert main(["train", str(inside), "--model", "ovr", "--out", str(empty), "--quiet"]) == 2
    assert inside.read_bytes() == train.read_bytes()
    capsys.readouterr()


def test_split_convert_predict_evaluate_never_overwrite_their_inputs(data, tmp_path, capsys):
    tmp, train, model = data
    before = _snapshot(tmp)
    cases = [
        (["split", str(train), "--test-size", "0.2", "--out", str(train)], "holds or is the input"),
        (["split", str(train), "--test-size", "0.2", "--out", str(tmp)], "holds or is the input"),
        (["convert", str(train), str(train), "--to", "xc"], "is or lies inside the input"),
        (["convert", str(train), str(train) + ".labels", "--to", "xc"], "the input"),
        (["convert", str(train), str(tmp), "--to", "jsonl"], "is a folder"),
        (["predict", str(model), str(train), "--out", str(train)], "the input"),
        (["predict", str(model), str(train), "--out", str(model / "p.jsonl")], "lies inside the input"),
        (["evaluate", str(model), str(train), "--report", str(train)], "the input"),
        (["evaluate", str(model), str(train), "--report", str(model / "r.html")],
         "lies inside the input"),
        (["tune", str(model), str(model / "model" / "manifest.json")], "holds or is the input"),
        (["learn", str(model), str(model / "pipeline.json")], "holds or is the input"),
        (["labels", "add", str(model), "--name", "x", "--calibrate", str(model / "pipeline.json")],
         "holds or is the input"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        _one_error_line(capsys, needle)
    assert _snapshot(tmp) == before
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    assert main(["split", str(train), "--test-size", "0.2", "--out", str(user)]) == 2
    _one_error_line(capsys, "not a folder labelwise wrote (none of split.json)")
    assert main(["split", str(train), "--test-size", "0.2", "--out", str(model)]) == 2
    _one_error_line(capsys, "split.json")
    assert _snapshot(tmp) == before and (user / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("argv, needle", [
    (["train"], "the following arguments are required: --out"),
    (["info"], "the following arguments are required: PATH_OR_NAME"),
    (["split", "x", "--folds", "3", "--test-size", "0.2", "--out", "o"], "not allowed with"),
    (["train", "x", "--out", "o", "--model", "nope"], "invalid choice: 'nope'"),
    (["evaluate", "--k", "x"], "invalid int value"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_usage_errors_are_one_line_with_status_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    _one_error_line(capsys, needle)


def test_usage_error_of_the_command_itself(capsys):
    assert main([]) == 2
    _one_error_line(capsys, "no command given")
    out = subprocess.run([sys.executable, "-m", "labelwise", "train", "--model"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: labelwise train: ")
