"""`labelwise info` and `labelwise convert`: real files, round trips, one-line errors with exit 2."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import shared_dataset_dir
from labelwise import Dataset, read, write
from labelwise.cli.main import main


def test_info_json_on_real_yeast():
    path = shared_dataset_dir("mulan-yeast") / "yeast-train.arff"
    out = subprocess.run(
        [sys.executable, "-m", "labelwise", "info", str(path), "--json"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert (stats["n_samples"], stats["n_features"], stats["n_labels"]) == (1500, 103, 14)
    assert stats["label_cardinality"] == pytest.approx(4.228, abs=5e-4)  # train split (4.237 is the full set)


def test_info_text_output(tmp_path, capsys):
    ds = Dataset(["a b", "c"], [[0], [0, 1]], ["x", "y"])
    path = tmp_path / "d.jsonl"
    write(ds, path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "n_samples" in out and "label_cardinality" in out and "x, y" in out


@pytest.mark.parametrize("to, suffix", [("xc", ".xc"), ("jsonl", ".jsonl")])
def test_convert_round_trip(tmp_path, capsys, to, suffix):
    rng = np.random.default_rng(0)
    X = sp.random(30, 12, density=0.3, format="csr", random_state=0, dtype=np.float32)
    Y = sp.csr_matrix((rng.random((30, 5)) < 0.3).astype(np.float32))
    src = tmp_path / "src.jsonl"
    write(Dataset(X, Y, ["α", "b c", "d", "e", "f"]), src)
    dst = tmp_path / f"out{suffix}"
    assert main(["convert", str(src), str(dst), "--to", to]) == 0
    back = read(dst)
    assert (back.X != X).nnz == 0 and (back.Y != Y).nnz == 0
    assert list(back.labels.names) == ["α", "b c", "d", "e", "f"]
    assert "wrote 30 rows" in capsys.readouterr().out


def test_convert_real_reuters_to_jsonl(tmp_path, capsys):
    folder = shared_dataset_dir("reuters21578") / "original"
    dst = tmp_path / "reuters-test.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["convert", str(folder), str(dst), "--to", "jsonl", "-o", 'split="modapte-test"']) == 0
    # the CLI shows a reader's warning as one line
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "NEWID 19918" in err and "Traceback" not in err
    back = read(dst)
    assert back.n_samples == 3019 and back.n_labels == 90


def test_malformed_input_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3 2\n0 0:1.0\n1 1:x\n")
    out = subprocess.run(
        [sys.executable, "-m", "labelwise", "info", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:3:"), out.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "labelwise", "info", str(tmp_path / "nope.arff")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
