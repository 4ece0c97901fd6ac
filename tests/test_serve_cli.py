"""`labelwise serve` as a command: a subprocess (two forked workers) serving a pipeline trained
from a text dataset answers predict with the labels and probabilities `labelwise predict`
writes for the same items; a reload answered by one worker reaches the other; SIGTERM stops
them all; start-up errors are one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import serve_support as ss
from labelwise.cli.main import main

httpx = pytest.importorskip("httpx")


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = ss.free_port()
    model = tmp_path_factory.mktemp("cli") / "colors"
    shutil.copytree(ss.text_pipeline(), model)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [p for p in (os.path.join(os.path.dirname(__file__), "..", "src"),
                     os.environ.get("PYTHONPATH")) if p])}
    proc = subprocess.Popen([sys.executable, "-m", "labelwise.cli.main", "serve", str(model),
                             "--port", str(port), "--log-level", "warning", "--workers", "2",
                             "--token-file", str(ss.workdir() / "token")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        t_end = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > t_end:
                raise RuntimeError("labelwise serve did not get ready: "
                                   + proc.communicate(timeout=10)[0].decode(errors="replace"))
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) == 2
        yield base, model
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
    assert "Traceback" not in out, out
    assert proc.returncode == 0 and not any(os.path.exists(f"/proc/{w}") and
                                            _children(proc.pid) for w in workers)


def test_serve_answers_as_predict_does(served, capsys):
    base, model = served
    test = ss.text_data()[1]
    assert main(["predict", str(model), str(test), "--top-k", "4", "--quiet"]) == 0
    want = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    items = [json.loads(line) for line in test.read_text().splitlines()]
    body = {"items": [{"id": it["id"], "text": it["text"]} for it in items], "top_k": 4}
    r = httpx.post(base + "/v1/models/colors/predict", json=body, timeout=60)
    assert r.status_code == 200
    got = r.json()["items"]
    assert len(got) == len(want) == 50
    assert got == want  # ids, labels, probabilities, candidates: the same values
    assert any(item["labels"] for item in got)


def test_reload_reaches_every_worker(served):
    from labelwise.io import read
    from labelwise.pipeline import load_any

    base, model = served
    pipe = load_any(model)
    pipe.tune(read(ss.text_data()[0]), objective="macro-f1", cv=3, k=5)
    pipe.save(model)
    v2 = hashlib.sha256((model / "pipeline.json").read_bytes()).hexdigest()
    r = httpx.post(base + "/v1/admin/models/colors/reload", timeout=60,
                   headers={"Authorization": f"Bearer {ss.TOKEN}"})
    assert r.status_code == 200 and r.json()["version"] == v2 and r.json()["changed"]
    versions = []

    def ask():  # a new connection each: the kernel hands them to either worker
        for _ in range(4):
            r = httpx.post(base + "/v1/models/colors/predict", json={"items": [{"text": "red"}]},
                           timeout=60)
            versions.append(r.json()["version"])

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert versions == [v2] * 24
    metrics = httpx.get(base + "/metrics").text
    assert f'version="{v2}"' in metrics and "labelwise_requests_total" in metrics


def test_serve_start_errors(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not a labelwise model or pipeline directory" in capsys.readouterr().err
    assert main(["serve"]) == 2
    assert "give MODEL_DIR... or --models-dir DIR" in capsys.readouterr().err
    model = str(ss.text_pipeline())
    assert main(["serve", model, "--allow-learn", "other"]) == 2
    assert "--allow-learn: no served model named other" in capsys.readouterr().err
    assert main(["serve", model, "--max-body", "lots"]) == 2
    assert "--max-body: 'lots' is not a size" in capsys.readouterr().err
    assert main(["serve", model, "--token-file", str(tmp_path / "none")]) == 2
    assert "none" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert main(["serve", model, "--token-file", str(tmp_path / "empty")]) == 2
    assert "the token file is empty" in capsys.readouterr().err
    assert main(["serve", "--models-dir", str(tmp_path)]) == 2
    assert "holds no model or pipeline directory" in capsys.readouterr().err


def test_models_dir_names_and_clashes(tmp_path):
    from labelwise.cli.serve import model_paths
    from labelwise.errors import LabelwiseError

    ss.text_pipeline(), ss.numeric_model()
    paths = model_paths([], str(ss.workdir()))
    assert sorted(paths) == ["colors", "numbers"]
    with pytest.raises(LabelwiseError, match="two models named 'colors'"):
        model_paths([str(ss.text_pipeline())], str(ss.workdir()))


def test_parse_size():
    from labelwise.serve.settings import parse_size

    assert parse_size("8MiB") == 8 * 1024 * 1024 and parse_size("512KiB") == 512 * 1024
    assert parse_size("1000") == 1000 and parse_size("1GB") == 10**9


def test_missing_extra_gives_the_install_hint(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else real(name, *a))
    assert main(["serve", str(ss.text_pipeline())]) == 2
    assert "pip install 'labelwise[serve]'" in capsys.readouterr().err


def test_access_log_is_off_unless_asked(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.delenv("LABELWISE_SERVE_SETTINGS", raising=False)
    model = str(ss.text_pipeline())
    assert main(["serve", model, "--port", "0"]) == 0
    assert main(["serve", model, "--port", "0", "--access-log"]) == 0
    assert [kw["access_log"] for kw in calls] == [False, True]
