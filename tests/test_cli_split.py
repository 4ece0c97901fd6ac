"""``labelwise split`` end to end through labelwise.cli.main.main on small generated files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import Dataset
from labelwise.cli import main as cli_main
from labelwise.io import read, write


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    # the lead registers "split" in COMMANDS; make the tests independent of that
    monkeypatch.setitem(cli_main.COMMANDS, "split", "labelwise.cli.split")


def make_Y(n, q, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        m = int(rng.integers(1, 4))
        rows.append(sorted(set(rng.integers(0, q, size=m).tolist())))
    return rows


@pytest.fixture
def xc_file(tmp_path):
    rng = np.random.default_rng(0)
    X = sp.random(120, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    X.data[:] = rng.random(X.nnz).astype(np.float32) + 0.5
    ds = Dataset(X, make_Y(120, 6, 1))
    path = tmp_path / "data.xc"
    write(ds, path)
    return path, ds


@pytest.fixture
def jsonl_file(tmp_path):
    rows = make_Y(90, 5, 2)
    names = [f"L{i}" for i in range(5)]
    groups = [f"g{i // 3}" for i in range(90)]  # 30 groups of 3 rows
    ds = Dataset([f"text {i}" for i in range(90)], rows, names, groups=groups)
    path = tmp_path / "data.jsonl"
    write(ds, path, format="jsonl")
    return path, ds


def test_train_test_xc(xc_file, tmp_path, capsys):
    path, ds = xc_file
    out = tmp_path / "out"
    assert cli_main.main(["split", str(path), "--test-size", "0.25", "--out", str(out), "--report"]) == 0
    printed = capsys.readouterr().out
    assert "test rows" in printed and "ld" in printed and "flz" in printed
    record = json.loads((out / "split.json").read_text())
    assert record["format"] == "labelwise.split/1" and record["mode"] == "train_test"
    assert record["seed"] == 0 and record["order"] == 1 and record["grouped"] is False
    train, test = np.array(record["train"]), np.array(record["test"])
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(120))
    assert abs(test.size - 30) <= 4
    tr, te = read(out / "train.xc"), read(out / "test.xc")
    assert tr.n_samples == train.size and te.n_samples == test.size
    assert (tr.Y != ds.Y[train]).nnz == 0 and (te.Y != ds.Y[test]).nnz == 0
    assert abs(te.X - ds.X[test]).max() == 0
    assert set(record["quality"]) >= {"ld", "lpd", "ed", "fz", "flz"}


def test_same_seed_same_split_and_rerun_replaces(xc_file, tmp_path):
    path, _ = xc_file
    out = tmp_path / "out"
    args = ["split", str(path), "--test-size", "30", "--order", "2", "--seed", "5", "--out", str(out)]
    assert cli_main.main(args) == 0
    first = json.loads((out / "split.json").read_text())
    assert cli_main.main(args) == 0  # an earlier split folder is replaced
    second = json.loads((out / "split.json").read_text())
    assert first["test"] == second["test"] and first["order"] == 2


def test_folds_jsonl_with_groups(jsonl_file, tmp_path):
    path, ds = jsonl_file
    out = tmp_path / "cv"
    assert cli_main.main(["split", str(path), "--folds", "3", "--out", str(out)]) == 0
    record = json.loads((out / "split.json").read_text())
    assert record["mode"] == "kfold" and record["grouped"] is True and record["n_groups"] == 30
    seen = np.zeros(90, dtype=int)
    groups = np.asarray(ds.groups)
    for i, fold in enumerate(record["folds"]):
        test = np.array(fold["test"])
        seen[test] += 1
        tr = read(out / f"fold-{i}" / "train.jsonl")
        te = read(out / f"fold-{i}" / "test.jsonl")
        assert te.X == [ds.X[j] for j in test]
        assert tr.n_samples + te.n_samples == 90
        assert not set(tr.groups.tolist()) & set(te.groups.tolist())
        assert te.groups.tolist() == groups[test].tolist()
        assert list(te.labels.names) == [f"L{j}" for j in range(5)]
    assert np.all(seen == 1)
    # --ignore-groups splits rows
    out2 = tmp_path / "cv2"
    assert cli_main.main(["split", str(path), "--folds", "3", "--ignore-groups", "--out", str(out2)]) == 0
    assert json.loads((out2 / "split.json").read_text())["grouped"] is False


def test_group_column_option(tmp_path):
    rows = make_Y(40, 4, 3)
    lines = [
        json.dumps({"text": f"t{i}", "labels": [str(j) for j in r], "author": f"a{i % 8}"})
        for i, r in enumerate(rows)
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    argv = ["split", str(path), "--test-size", "0.25", "--group-column", "author", "--out", str(out)]
    assert cli_main.main(argv) == 0
    record = json.loads((out / "split.json").read_text())
    assert record["grouped"] is True and record["n_groups"] == 8
    authors = np.array([f"a{i % 8}" for i in range(40)])
    assert not set(authors[record["train"]]) & set(authors[record["test"]])


def test_errors_are_one_line(xc_file, tmp_path, capsys):
    path, _ = xc_file
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    assert cli_main.main(["split", str(path), "--folds", "3", "--out", str(keep)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (keep / "precious.txt").exists()
    out = tmp_path / "o"
    assert cli_main.main(["split", str(path), "--folds", "1", "--out", str(out)]) == 2
    assert "--folds: expected an integer >= 2" in capsys.readouterr().err
    assert cli_main.main(["split", str(path), "--test-size", "abc", "--out", str(out)]) == 2
    assert "--test-size: expected a share" in capsys.readouterr().err
    assert cli_main.main(["split", str(path), "--test-size", "1.5", "--out", str(out)]) == 2
    assert "test_size: expected a share in (0, 1)" in capsys.readouterr().err
    assert cli_main.main(["split", str(path), "--folds", "200", "--out", str(out)]) == 2
    assert "expected at most n_samples=120 folds" in capsys.readouterr().err
    assert not out.exists()
