"""`make demo` runs labelwise.demo: it must keep working end to end on the real datasets."""

import json

from conftest import shared_dataset_dir
from labelwise.demo import main


def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    datasets = shared_dataset_dir()
    monkeypatch.delenv("LABELWISE_DATASETS_MIRROR", raising=False)
    monkeypatch.setenv("LABELWISE_DATA_HOME", str(tmp_path / "home"))
    assert main(["--datasets", str(datasets), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "mailboxes on both sides: 0" in out
    report = json.loads((tmp_path / "out" / "baseline-report.json").read_text())
    assert report["n_labels"] == 53 and 0 < report["metrics"]["p@1"] < 1
    assert (tmp_path / "out" / "bibtex-tree-report.html").is_file()
    p1 = float(out.rsplit("p@1 ", 1)[1].split()[0])
    assert p1 >= 0.64  # the label tree's P@1 on Bibtex with default settings
