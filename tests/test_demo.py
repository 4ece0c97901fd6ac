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
    page = (tmp_path / "out" / "bibtex-tree-report.html").read_text()
    assert 'id="comparison"' in page and 'id="group-calibration"' in page
    p1 = float(out.split("== 4.", 1)[1].split("p@1 ", 1)[1].split()[0])
    assert p1 >= 0.64  # the label tree's P@1 on Bibtex with default settings
    # tuning (cross-fitted on the training rows) lifts the label-set metrics far above the
    # untuned score rule (micro-F1 0.29, macro-F1 0.10 as trained)
    tuned = json.loads((tmp_path / "out" / "bibtex-tree-report.json").read_text())
    rows = tuned["comparison"]["rows"]
    assert rows["micro_f1"][0] < 0.35 and rows["micro_f1"][1] > rows["micro_f1"][0] + 0.1
    assert rows["macro_f1"][0] < 0.15 and rows["macro_f1"][1] > rows["macro_f1"][0] + 0.15
    assert rows["micro_f1"][1] == tuned["metrics"]["micro_f1"]
    assert "decision policy" in tuned["set_rule"] and tuned["metrics"]["ece"] < 0.05
    assert "micro_f1" in out.split("== 5.", 1)[1]
