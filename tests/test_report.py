"""The HTML report: self-contained, every section present, and it opens in headless Chromium."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import Dataset
from labelwise.cli.main import main
from labelwise.io import write
from labelwise.io.scores import write_scores
from labelwise.metrics import evaluate
from labelwise.report import write_report


def _data(n=150, L=9, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.25).astype(np.float32)
    S = rng.random((n, L)) + 0.6 * Y
    return Y, S


def test_report_is_self_contained(tmp_path):
    Y, S = _data()
    names = [f"tag-{j}" for j in range(Y.shape[1])]
    report = evaluate(Y, S, label_names=names)
    out = tmp_path / "r.html"
    write_report(out, Y, S, report, title="test <report>")
    page = out.read_text()
    assert "test &lt;report&gt;" in page
    assert page.count("data:image/png;base64,") == 4
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing fetched from the network
    assert 'class="sortable"' in page and "tag-8" in page
    assert f"{report['metrics']['p@1']:.4f}" in page


def test_report_from_topk_scores_and_label_sets(tmp_path):
    from labelwise.metrics import LabelSets

    Y, S = _data(seed=1)
    Sk = sp.csr_matrix(np.where(S >= np.sort(S, axis=1)[:, [-3]], S, 0))
    write_report(tmp_path / "topk.html", Y, Sk, evaluate(Y, Sk))
    sets = LabelSets(sp.csr_matrix((S > 0.9).astype(np.float32)))
    write_report(tmp_path / "sets.html", Y, sets, evaluate(Y, sets))
    assert (tmp_path / "sets.html").read_text().count("data:image/png") == 1  # F1 vs frequency only


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (make test installs it where it can: apt-get install chromium)")


def test_report_opens_in_headless_chromium(tmp_path):
    chromium = _chromium()
    Y, S = _data()
    page = tmp_path / "report.html"
    write_report(page, Y, S, evaluate(Y, S))
    shot = tmp_path / "shot.png"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]
    run = subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console_errors = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]
    assert console_errors == []
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert 'id="per-label"' in dom and dom.count("<img") == 4


def test_cli_evaluate_json_and_report(tmp_path, capsys):
    Y, S = _data(n=40, L=6)
    names = ["a", "b", "c", "d", "e", "f"]
    ds = Dataset(np.zeros((40, 2), np.float32), sp.csr_matrix(Y), names, ids=[f"i{j}" for j in range(40)])
    truth = tmp_path / "truth.jsonl"
    write(ds, truth)
    scores = tmp_path / "scores.jsonl"
    order = np.arange(40)[::-1]  # rows out of order: matched by id
    write_scores(scores, sp.csr_matrix(S[order].astype(np.float32)), ds.labels, ids=[f"i{j}" for j in order])
    html = tmp_path / "out.html"
    assert main(["evaluate", "--true", str(truth), "--scores", str(scores), "--json", "--report", str(html)]) == 0
    got = json.loads(capsys.readouterr().out)
    expect = evaluate(Y, sp.csr_matrix(S.astype(np.float32)), label_names=names)
    for key in ("p@1", "p@5", "ndcg@5", "psp@5", "micro_f1", "macro_f1", "samples_f1", "map", "macro_auroc", "hamming_loss", "coverage@p0.9"):
        assert got["metrics"][key] == pytest.approx(expect["metrics"][key], abs=1e-12), key
    assert [r["label"] for r in got["per_label"]] == names
    assert html.is_file()


def test_cli_evaluate_bad_scores_one_line_error(tmp_path, capsys):
    ds = Dataset(np.zeros((2, 1), np.float32), [[0], [1]], ["x", "y"])
    truth = tmp_path / "t.jsonl"
    write(ds, truth)
    scores = tmp_path / "s.txt"
    scores.write_text("0:1\n7:0.5\n")
    assert main(["evaluate", "--true", str(truth), "--scores", str(scores)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {scores}:2: label id 7 >= n_labels 2"


def test_tuned_pipeline_report_has_threshold_curves_and_reliability(tmp_path, capsys):
    rng = np.random.default_rng(3)
    X = sp.random(300, 30, density=0.3, format="csr", random_state=3, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(30, 5)) > 0.5).astype(np.float32))
    ds = Dataset(X, Y, [f"l{j}" for j in range(5)])
    train, test = tmp_path / "train.xc", tmp_path / "test.xc"
    write(ds.subset(np.arange(200)), train)
    write(ds.subset(np.arange(200, 300)), test)
    model = tmp_path / "model"
    assert main(["train", str(train), "--model", "ovr", "--out", str(model), "--quiet"]) == 0
    assert main(["tune", str(model), str(train), "--objective", "macro-f1", "--cv", "3", "--quiet"]) == 0
    capsys.readouterr()
    html = tmp_path / "r.html"
    assert main(["evaluate", str(model), str(test), "--json", "--report", str(html)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert 0 <= got["metrics"]["ece"] < 0.5
    page = html.read_text()
    assert "Reliability diagram" in page and "F1 and coverage against one threshold" in page
    assert page.count("data:image/png;base64,") == 6


def test_report_leads_with_grouped_headline_and_folds_the_rest(tmp_path):
    """The page opens on the headline groups (ranking, label sets, calibration, coverage),
    in that order, each tile with a one-line meaning; every other metric is folded below."""
    from html.parser import HTMLParser

    from labelwise.report.html import HEADLINE

    Y, S = _data()
    report = evaluate(Y, S, target_precision=(0.8, 0.9))
    report["metrics"]["ece"] = 0.0123
    report["comparison"] = {"title": "Tuning: before and after", "columns": ["untuned", "tuned"],
                            "rows": {"micro_f1": [0.25, 0.5]}}
    write_report(tmp_path / "r.html", Y, S, report)
    page = (tmp_path / "r.html").read_text()

    class Walk(HTMLParser):
        def __init__(self):
            super().__init__()
            self.groups, self.tiles, self.stack, self.folded = [], [], [], []
            self.in_details = 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "details" and a.get("id") == "other-metrics":
                self.in_details += 1
            if tag == "section" and a.get("class") == "group":
                self.groups.append(a["id"].removeprefix("group-"))
            if a.get("class") == "tile":
                self.tiles.append([a["data-metric"], self.groups[-1], ""])
            if a.get("class") == "m":
                self.stack.append("m")
            if a.get("class") == "k" and self.in_details:
                self.stack.append("folded")

        def handle_endtag(self, tag):
            if tag == "details" and self.in_details:
                self.in_details -= 1
            if tag == "div" and self.stack:
                self.stack.pop()

        def handle_data(self, data):
            if self.stack and self.stack[-1] == "m":
                self.tiles[-1][2] += data
            elif self.stack and self.stack[-1] == "folded":
                self.folded.append(data)

    w = Walk()
    w.feed(page)
    assert w.groups == [g[0] for g in HEADLINE] == ["ranking", "sets", "calibration", "coverage"]
    shown = [t[0] for t in w.tiles]
    assert shown == ["p@1", "p@5", "ndcg@5", "micro_f1", "macro_f1", "samples_f1", "ece",
                     "coverage@p0.8", "coverage@p0.9"]
    assert all(len(t[2]) > 20 for t in w.tiles)  # a one-line meaning per tile
    numeric = [k for k, v in report["metrics"].items() if isinstance(v, float)]
    assert sorted(w.folded) == sorted(k for k in numeric if k not in shown)  # the rest, folded
    assert page.index('id="headline"') < page.index('id="comparison"') < page.index('id="other-metrics"')
    assert "<summary>The other" in page and f"{report['metrics']['p@1']:.4f}" in page
    # without probabilities there is no calibration group
    report = evaluate(Y, S)
    write_report(tmp_path / "plain.html", Y, S, report)
    w = Walk()
    w.feed((tmp_path / "plain.html").read_text())
    assert w.groups == ["ranking", "sets", "coverage"]
