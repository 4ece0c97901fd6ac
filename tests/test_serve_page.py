"""The web page of ``labelwise serve``, driven in a real browser: Debian's Chromium through
Playwright for Python, against a real uvicorn on 127.0.0.1 serving models trained here.

Skips (with the reason) only where Chromium or Playwright is missing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("fastapi", reason="labelwise serve needs the [serve] extra (fastapi)")
pytest.importorskip("uvicorn", reason="labelwise serve needs the [serve] extra (uvicorn)")
pytest.importorskip("prometheus_client", reason="labelwise serve needs prometheus-client")
pytest.importorskip("playwright.sync_api",
                    reason="the browser tests need Playwright for Python (pip install playwright; "
                           "no browser download: they drive Debian's chromium)")

from labelwise.features import Tfidf  # noqa: E402
from labelwise.models import OneVsRest  # noqa: E402
from labelwise.pipeline import Pipeline  # noqa: E402
from serve_support import live_server  # noqa: E402

COLORS = ["red", "green", "blue", "cyan", "plum"]
N_BIG = 30_000          # labels of the synthetic feature model
BIG_FEATURES = 40
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000
SHOTS = os.environ.get("LABELWISE_PAGE_SHOTS")  # a folder: screenshots for a human to look at


def _chromium() -> str:
    for path in (os.environ.get("LABELWISE_CHROMIUM"), "/usr/bin/chromium",
                 shutil.which("chromium"), shutil.which("chromium-browser")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.skip("Debian's chromium is not installed (make test installs it where it can: "
                "apt-get install chromium)")


def _texts(n: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """Texts holding their labels' colour words (85 % of the time) among filler words."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(40)]
    texts, Y = [], []
    for _ in range(n):
        labs = sorted(rng.choice(len(COLORS), size=int(rng.integers(1, 3)), replace=False).tolist())
        toks = [COLORS[j] for j in labs if rng.random() < 0.85]
        toks += rng.choice(filler, 6).tolist()
        rng.shuffle(toks)
        texts.append(" ".join(toks))
        Y.append(labs)
    return texts, Y


def _big_names() -> list[str]:
    """30,000 label names; 'zebra' is in exactly 30 of them (every 1,000th)."""
    words = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "kilo", "lima", "oscar", "tango"]
    return [f"{'zebra' if j % 1000 == 7 else words[j % 10]}-{j:05d}" for j in range(N_BIG)]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("page-models")
    texts, Y = _texts(160, seed=0)
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0))
    pipe.fit(texts, Y, labels=COLORS).tune(texts, Y, objective="micro-f1", cv=3, k=5)
    pipe.save(d / "colors")
    # 30,000 labels over 40 features and 20 rows, each row positive for 1,500 labels: every
    # label has one positive row (no warning) and training takes about 2 s
    n = 20
    rng = np.random.default_rng(1)
    X = sp.csr_matrix(rng.random((n, BIG_FEATURES)).astype(np.float32))
    rows = np.repeat(np.arange(n), N_BIG // n)
    Yb = sp.csr_matrix((np.ones(N_BIG, np.float32), (rows, rng.permutation(N_BIG))),
                       shape=(n, N_BIG))
    big = Pipeline(None, OneVsRest(n_threads=1, random_state=0))
    big.fit(X, Yb, labels=_big_names())
    big.save(d / "big")
    return {"colors": d / "colors", "big": d / "big"}


@pytest.fixture(scope="module")
def server(models):
    from labelwise.serve import ServeSettings, create_app

    settings = ServeSettings(models={k: str(v) for k, v in models.items()}, batch_wait_ms=0)
    with live_server(create_app(settings, load_in_background=False), timeout=120) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # the browser logs each non-2xx answer; a 422 is what the error tests ask for
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error"
          and "status of 422" not in m.text else None)
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server + "/")
    pg.wait_for_selector("#model option[value=colors]", state="attached")
    yield pg
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


def _shot(pg, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _expected(models, texts: list[str], **kw) -> list[dict]:
    """What labelwise predict gives for these texts (the server must agree)."""
    pipe = Pipeline.load(models["colors"])
    return pipe.predict_labels(texts, **kw)


def _chosen(pg) -> list[list[str]]:
    """The chosen labels of each item on the page (chip text without the probability)."""
    return pg.eval_on_selector_all(
        "#items article", "arts => arts.map(a => [...a.querySelectorAll('.chosen .chip')]"
        ".map(c => c.textContent.replace(/ [0-9.]+$/, '')))")


def test_type_a_text_and_see_its_labels(page, models):
    page.select_option("#model", "colors")
    page.fill("#text", "red w1 w2 blue w3\ngreen w4 w5")
    page.click("#run")
    page.wait_for_selector("#items article >> nth=1")
    want = _expected(models, ["red w1 w2 blue w3", "green w4 w5"], k=5)
    assert _chosen(page) == [w["labels"] for w in want]
    assert set(want[0]["labels"]) == {"red", "blue"} and want[1]["labels"] == ["green"]
    # every candidate is drawn with its probability and a bar of that width
    first = page.locator("#items article").first
    rows = first.locator("tbody tr")
    assert rows.count() == 5
    probs = [float(t) for t in first.locator("td.num").all_text_contents()]
    assert probs == sorted(probs, reverse=True)  # drawn by probability
    assert probs == pytest.approx(sorted((c["probability"] for c in want[0]["candidates"]),
                                         reverse=True), abs=5e-4)
    width = first.locator(".bar > span").first.evaluate("e => e.style.width")
    assert float(width.rstrip("%")) == pytest.approx(100 * probs[0], abs=0.06)
    # the words that pushed the chosen labels up are their colour words
    red_row = first.locator("tr", has=page.locator("td.label", has_text="red"))
    assert red_row.locator(".term").first.text_content().split()[0] == "red"
    assert "policy tuned" in page.text_content("#results-summary")
    _shot(page, "typed-text")


def test_policies_change_the_chosen_sets(page, models):
    page.select_option("#model", "colors")
    page.fill("#text", "red w1 w2 w3")
    page.select_option("#policy", "top_k")
    page.fill("#top-k", "3")
    page.click("#run")
    page.wait_for_selector("#items article")
    assert len(_chosen(page)[0]) == 3
    # the tuned policy chooses among the tuning's top 5: a chosen label outside the one
    # candidate asked for still gets its row (and its words)
    page.select_option("#policy", "tuned")
    page.fill("#top-k", "1")
    page.fill("#text", "red w1 w2 blue w3")
    page.click("#run")
    page.wait_for_function("document.querySelector('#results-summary').textContent"
                           ".includes('top 1')")
    want = _expected(models, ["red w1 w2 blue w3"], k=1)[0]
    assert len(want["candidates"]) == 1 and len(want["labels"]) == 2
    rows = page.locator("#items tbody tr")
    assert rows.count() == 2 and sorted(_chosen(page)[0]) == sorted(want["labels"])
    assert rows.nth(1).locator(".term").count() >= 1
    pipe = Pipeline.load(models["colors"])
    probs = {c["label"]: c["probability"]
             for c in pipe.predict_labels(["red w1 w2 w3"], k=5)[0]["candidates"]}
    top = sorted(probs.values(), reverse=True)
    cut = f"{(top[0] + top[1]) / 2:.6f}"  # between the two most likely labels
    page.fill("#text", "red w1 w2 w3")
    page.select_option("#policy", "threshold")
    page.fill("#policy-value", cut)
    page.click("#run")
    page.wait_for_function("document.querySelector('#results-summary').textContent"
                           ".includes('threshold')")
    # chosen among the tuning's top 5 (the rows shown: 1 candidate + the chosen ones)
    assert sorted(_chosen(page)[0]) == sorted(name for name, p in probs.items()
                                              if p >= float(cut))
    assert 1 <= len(_chosen(page)[0]) < len(probs)  # the threshold splits them
    page.fill("#policy-value", "1.5")
    page.click("#run")
    assert "Threshold: expected a number from 0 to 1" in page.text_content("#error")


def test_upload_a_file_and_download_the_results(page, models, tmp_path):
    # commas, quotes and a line break inside quoted CSV fields
    texts = ["blue w1 w2", "plum, cyan w3", 'red "quoted" w9', "w1 w2\nw3"]
    data = tmp_path / "items.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "note"])
        for i, t in enumerate(texts):
            w.writerow([f"doc-{i}", t, "x"])
    page.select_option("#model", "colors")
    page.set_input_files("#file", str(data))
    page.click("#run")
    page.wait_for_selector("#items article >> nth=3")
    want = _expected(models, texts, k=5)
    assert _chosen(page) == [w["labels"] for w in want]
    assert page.locator("#items h3").all_text_contents() == [f"Item doc-{i}" for i in range(4)]
    _shot(page, "uploaded-file")

    with page.expect_download() as info:
        page.click("#download-csv")
    got = info.value
    assert got.suggested_filename == "labelwise-colors.csv"
    rows = list(csv.DictReader(io.StringIO(Path(got.path()).read_text(encoding="utf-8"))))
    assert [r["id"] for r in rows] == [f"doc-{i}" for i in range(4)]
    assert [r["text"] for r in rows] == texts
    assert [r["labels"].split(";") if r["labels"] else [] for r in rows] == \
        [w["labels"] for w in want]
    for r, w in zip(rows, want):
        cands = [c.rsplit("=", 1) for c in r["candidates"].split(";")]
        assert [c[0] for c in cands] == [c["label"] for c in w["candidates"]]
        assert [float(c[1]) for c in cands] == pytest.approx(
            [c["probability"] for c in w["candidates"]], rel=1e-6)

    with page.expect_download() as info:
        page.click("#download-jsonl")
    lines = Path(info.value.path()).read_text(encoding="utf-8").splitlines()
    got = [json.loads(line) for line in lines]
    assert [g["id"] for g in got] == [f"doc-{i}" for i in range(4)]
    for g, w in zip(got, want):
        assert g["labels"] == w["labels"]
        assert g["probabilities"] == pytest.approx(w["probabilities"], rel=1e-6)
        assert [c["label"] for c in g["candidates"]] == [c["label"] for c in w["candidates"]]
        assert {e["label"] for e in g["explanations"]} == {c["label"] for c in w["candidates"]}


def test_a_bad_file_is_refused_naming_its_line(page, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "red"}\n{"id": 2, "text": "blue"\n', encoding="utf-8")
    page.select_option("#model", "colors")
    page.set_input_files("#file", str(bad))
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error").startswith("bad.jsonl:2: not JSON")
    assert page.locator("#items article").count() == 0


def test_a_text_file_with_blank_lines(page, models, tmp_path):
    data = tmp_path / "items.txt"
    data.write_text("plum w1\n\ncyan w2\n", encoding="utf-8")
    page.select_option("#model", "colors")
    page.set_input_files("#file", str(data))
    page.click("#run")
    page.wait_for_selector("#items article >> nth=1")
    assert page.text_content("#status") == "Labelled 2 items (1 blank line skipped)."
    assert page.locator("#items h3").all_text_contents() == ["Item 1", "Item 3"]  # file lines
    assert _chosen(page) == [w["labels"] for w in _expected(models, ["plum w1", "cyan w2"])]


def test_many_items_go_in_chunks(page, models, tmp_path):
    """450 items (three predict and three explain requests of at most 200 items), and long
    texts in requests of at most about 2 MiB."""
    texts, _ = _texts(450, seed=5)
    data = tmp_path / "many.txt"
    data.write_text("\n".join(texts) + "\n", encoding="utf-8")
    page.select_option("#model", "colors")
    page.set_input_files("#file", str(data))
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Labelled')")
    assert page.text_content("#status") == "Labelled 450 items."
    assert "the first 200 are shown" in page.text_content("#results-summary")
    assert page.locator("#items article").count() == 200
    with page.expect_download() as info:
        page.click("#download-jsonl")
    got = [json.loads(line) for line in
           Path(info.value.path()).read_text(encoding="utf-8").splitlines()]
    assert [g["id"] for g in got] == list(range(1, 451))
    assert [g["labels"] for g in got] == [w["labels"] for w in _expected(models, texts)]

    # long texts go in groups of about 2 MiB (by a 3-bytes-a-character estimate, so 6 texts of
    # 100 kB a group): 20 texts make predict requests of 6, 6, 6 and 2 items
    bodies: list[int] = []
    page.on("request", lambda r: bodies.append(len(r.post_data_buffer or b""))
            if r.url.endswith("/predict") else None)
    big = [(f"{COLORS[i % 5]} " + " ".join(f"w{k % 40}" for k in range(40_000)))[:100_000]
           for i in range(20)]
    data = tmp_path / "big.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(big)),
                    encoding="utf-8")
    page.set_input_files("#file", str(data))
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent"
                           ".startsWith('Labelled 20 items')")
    assert page.is_hidden("#error")
    assert len(bodies) == 4 and all(b < 2 << 20 for b in bodies), bodies
    assert [round(b / 100_000) for b in bodies] == [6, 6, 6, 2]


def test_keyboard_only(page, models):
    """Tab through the controls in reading order, each with a visible focus ring; type, run
    with Ctrl+Enter and with Enter, and download, without the mouse."""
    order = []
    for _ in range(10):  # then focus leaves the page (the browser's own controls)
        page.keyboard.press("Tab")
        info = page.evaluate("""() => {
            const e = document.activeElement;
            const s = getComputedStyle(e);
            return [e.id || e.getAttribute('href'), s.outlineStyle, s.outlineWidth];
        }""")
        order.append(info[0])
        assert info[1] != "none" and info[2] != "0px", f"no visible focus on {info[0]}"
    assert order == ["#results", "/docs", "model", "text", "file", "policy", "top-k",
                          "explain", "run", "label-search"]
    # every control has a label naming it
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !(e.labels && e.labels.length)).map(e => e.id)""")
    assert unlabelled == []

    page.focus("#model")
    page.keyboard.press("Tab")
    page.keyboard.type("blue w1 w2")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#items article")
    assert _chosen(page) == [_expected(models, ["blue w1 w2"], k=5)[0]["labels"]]
    assert page.evaluate("document.activeElement.id") == "results"
    # Enter on the top-k box runs too
    page.focus("#top-k")
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#items tbody tr').length === 2")
    page.focus("#download-jsonl")
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    got = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert len(got["candidates"]) == 2
    _shot(page, "keyboard")


def test_label_search_in_a_model_of_30000_labels(page):
    page.select_option("#model", "big")
    assert "30,000 labels" in page.text_content("#model-info")
    page.wait_for_function("document.querySelector('#label-count').textContent.includes('30,000')")
    # the page holds one page of labels, never all 30,000
    assert page.locator("#label-results li").count() == 20
    page.focus("#label-search")
    page.keyboard.type("zebra")
    page.wait_for_function("document.querySelector('#label-count').textContent"
                           ".startsWith('20 of 30 labels containing')")
    names = page.locator("#label-results li .name").all_text_contents()
    assert len(names) == 20 and all("zebra" in n for n in names)
    page.click("#label-more")
    page.wait_for_function("document.querySelector('#label-count').textContent"
                           ".startsWith('30 of 30')")
    names = page.locator("#label-results li .name").all_text_contents()
    assert sorted(names) == sorted(n for n in _big_names() if "zebra" in n)
    assert page.is_hidden("#label-more")
    page.fill("#label-search", "zebra-0700")
    page.wait_for_function("document.querySelector('#label-count').textContent"
                           ".startsWith('1 of 1')")
    assert page.locator("#label-results li .name").all_text_contents() == ["zebra-07007"]
    _shot(page, "label-search")

    # a feature item, pasted as JSONL, is labelled too (no word explanations for this model)
    assert page.is_disabled("#explain")
    item = {"id": "f1", "features": {"indices": [0, 5, 9], "values": [0.5, 0.2, 0.9]}}
    page.fill("#text", json.dumps(item))
    page.click("#run")
    page.wait_for_selector("#items article")
    assert page.locator("#items tbody tr").count() == 5
    assert page.text_content("#items h3") == "Item f1"
    # the server's refusal, naming the field, is shown as it is
    item["features"]["indices"] = [0, 99]
    item["features"]["values"] = [0.5, 0.2]
    page.fill("#text", json.dumps(item))
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])")
    assert "422" in page.text_content("#error")
    assert "items[0].features.indices[1]: 99 >= n_features 40" in page.text_content("#error")
