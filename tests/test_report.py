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
