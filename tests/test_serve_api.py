"""`labelwise serve`'s HTTP API against a real uvicorn on 127.0.0.1: every route, every error
answer (problem+json naming the field, no traceback or path), policies, metrics, and the
micro-batcher grouping concurrent jobs without letting one job's failure reach another."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading

import numpy as np
import pytest
import scipy.sparse as sp

import serve_support as ss
from labelwise.pipeline import load_any

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def server():
    from labelwise.serve import ServeSettings, create_app

    settings = ServeSettings(models={"colors": str(ss.text_pipeline()),
                                     "numbers": str(ss.numeric_model())},
                             token_file=str(ss.workdir() / "token"), max_items=50,
                             max_body=64 * 1024, batch_wait_ms=2.0)  # a timed wait here
    app = create_app(settings)
    with ss.live_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


def _problem(r, status, pattern=None):
    """r is a problem+json answer with this status, a detail matching pattern, and no
    traceback, exception name or server path in it."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail"} and body["status"] == status
    assert "Traceback" not in r.text and str(ss.workdir()) not in r.text
    assert "/tmp" not in r.text and ".py" not in r.text
    if pattern is not None:
        assert re.search(pattern, body["detail"]), body["detail"]
    return body["detail"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_health_and_models(server):
    assert server.get("/health/live").json()["status"] == "live"
    ready = server.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready",
                                                         "models": ["colors", "numbers"]}
    models = {m["name"]: m for m in server.get("/v1/models").json()["models"]}
    colors, numbers = models["colors"], models["numbers"]
    assert colors["version"] == _sha(ss.text_pipeline() / "pipeline.json")
    assert numbers["version"] == _sha(ss.numeric_model() / "manifest.json")
    assert (colors["family"], colors["featurizer"], colors["input"], colors["n_labels"],
            colors["n_features"], colors["calibrated"]) == ("OneVsRest", "Tfidf", "text", 5,
                                                            None, True)
    assert colors["policy"]["policy"] == "per-label-threshold"
    assert colors["tuning"]["objective"] == "micro-f1" and colors["tuning"]["k"] == 5
    assert (numbers["input"], numbers["n_features"], numbers["n_labels"], numbers["policy"],
            numbers["calibrated"]) == ("features", ss.N_FEATURES, 4, None, False)
    assert server.get("/v1/models/colors").json() == colors
    _problem(server.get("/v1/models/nope"), 404, "no model named 'nope'")
    _problem(server.get("/no/such/route"), 404)
    assert server.get("/openapi.json").json()["openapi"].startswith("3.")
    assert "swagger" in server.get("/docs").text.lower()


def test_labels_paged_and_filtered(server):
    pipe = load_any(ss.text_pipeline())
    page = server.get("/v1/models/colors/labels").json()
    assert page["total"] == 5 and [d["name"] for d in page["labels"]] == list(pipe.labels_.names)
    thr = pipe.decision_.thresholds_
    for j, d in enumerate(page["labels"]):
        assert d["index"] == j and d["kind"] == "supervised" and d["description"] is None
        assert d["threshold"] == pytest.approx(float(thr[j]), abs=0)
        assert d["examples"] == int(pipe.label_counts_[j])
    part = server.get("/v1/models/colors/labels", params={"offset": 1, "limit": 2}).json()
    assert [d["name"] for d in part["labels"]] == list(pipe.labels_.names[1:3]) and part["total"] == 5
    # names containing "e" (any case), those starting with it first: none do, so label order
    hits = server.get("/v1/models/colors/labels", params={"q": "E"}).json()
    assert [d["name"] for d in hits["labels"]] == ["red", "green", "blue"]
    hits = server.get("/v1/models/colors/labels", params={"q": "r"}).json()
    assert [d["name"] for d in hits["labels"]] == ["red", "green"]
    assert server.get("/v1/models/colors/labels", params={"q": "zz"}).json()["total"] == 0
    numbers = server.get("/v1/models/numbers/labels").json()["labels"]
    assert [d["threshold"] for d in numbers] == [None] * 4
    _problem(server.get("/v1/models/colors/labels", params={"limit": 0}), 422, r"^limit: ")
    _problem(server.get("/v1/models/colors/labels", params={"offset": "x"}), 422, r"^offset: ")
    _problem(server.get("/v1/models/nope/labels"), 404)


def test_predict_text_equals_predict_labels(server):
    pipe = load_any(ss.text_pipeline())
    texts = ["blue plum w3 w7", "red", "green cyan w1 w2 w9", "w5"]
    body = {"items": [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)], "top_k": 3}
    r = server.post("/v1/models/colors/predict", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["model"] == "colors" and doc["policy"] == "tuned"
    assert doc["version"] == _sha(ss.text_pipeline() / "pipeline.json")
    want = pipe.predict_labels(texts, k=3)
    assert [item.pop("id") for item in doc["items"]] == ["d0", "d1", "d2", "d3"]
    assert doc["items"] == want
    # ids are optional; ints are kept as ints; default top_k is 10 (5 labels here)
    doc = server.post("/v1/models/colors/predict",
                      json={"items": [{"text": "red"}, {"id": 7, "text": "red"}]}).json()
    assert "id" not in doc["items"][0] and doc["items"][1]["id"] == 7
    assert len(doc["items"][0]["candidates"]) == 5


def test_predict_policies(server):
    texts = ["blue plum w3 w7", "w1 w2", "red green"]
    items = [{"text": t} for t in texts]

    def ask(policy, k=5, model="colors", payload=items):
        r = server.post(f"/v1/models/{model}/predict",
                        json={"items": payload, "top_k": k, "policy": policy})
        assert r.status_code == 200, r.text
        return r.json()

    top = ask("top_k", k=2)
    assert top["policy"] == "top_k"
    for item in top["items"]:
        cands = item["candidates"]
        assert sorted(item["labels"]) == sorted(c["label"] for c in cands) and len(cands) == 2
        assert item["probabilities"] == {c["label"]: c["probability"] for c in cands}
    for t in (0.0, 0.2, 0.6, 1.0):
        doc = ask({"threshold": t})
        assert doc["policy"] == {"threshold": t}
        for item in doc["items"]:  # k = 5 = all labels: the rule reads off the candidates
            chosen = {c["label"] for c in item["candidates"] if c["probability"] >= t}
            assert set(item["labels"]) == chosen
    assert ask({"threshold": 0.3})["items"] == ask({"precision": 0.3})["items"]
    # the numeric model has no calibrator: thresholds apply to the probabilities it shows
    feats = [{"features": {"indices": [0, 5, 9], "values": [1.0, 0.5, 2]}}]
    doc = ask({"threshold": 0.5}, k=4, model="numbers", payload=feats)
    (item,) = doc["items"]
    assert set(item["labels"]) == {c["label"] for c in item["candidates"]
                                   if c["probability"] >= 0.5}
    _problem(server.post("/v1/models/numbers/predict",
                         json={"items": feats, "policy": {"precision": 0.9}}), 422,
             r"^policy\.precision: this model's probabilities are not calibrated")


def test_predict_features_and_vectors(server):
    from labelwise.models import load_model
    from labelwise.pipeline import Pipeline

    pipe = Pipeline(model=load_model(ss.numeric_model()))
    rng = np.random.default_rng(3)
    X = sp.random(6, ss.N_FEATURES, density=0.3, format="csr", random_state=3,
                  dtype=np.float32)
    items = []
    for i in range(6):
        row = X[i]
        if i % 2:
            items.append({"id": i, "vector": X[i].toarray().ravel().tolist()})
        else:  # indices in any order
            order = rng.permutation(row.nnz)
            items.append({"id": i, "features": {"indices": row.indices[order].tolist(),
                                                "values": row.data[order].tolist()}})
    doc = server.post("/v1/models/numbers/predict", json={"items": items, "top_k": 3}).json()
    want = pipe.predict_labels(X, k=3)
    assert [item.pop("id") for item in doc["items"]] == list(range(6))
    assert doc["items"] == want


BAD = [  # (model, body, status, detail pattern)
    ("numbers", {"items": [{"features": {"indices": [1], "values": [1.0]}},
                           {"features": {"indices": [0, 3, 30], "values": [1, 1, 1]}}]},
     422, r"^items\[1\]\.features\.indices\[2\]: 30 >= n_features 30$"),
    ("numbers", {"items": [{"features": {"indices": [4, 2, 4], "values": [1, 1, 1]}}]},
     422, r"^items\[0\]\.features\.indices\[2\]: feature 4 given twice$"),
    ("numbers", {"items": [{"features": {"indices": [1, 2], "values": [1.0]}}]},
     422, r"^items\[0\]\.features: 2 indices but 1 values$"),
    ("numbers", {"items": [{"features": {"indices": [-1], "values": [1.0]}}]},
     422, r"^items\[0\]\.features\.indices\[0\]: .*greater than or equal to 0"),
    ("numbers", {"items": [{"features": {"indices": [1], "values": ["1"]}}]},
     422, r"^items\[0\]\.features\.values\[0\]: Input should be a valid number"),
    ("numbers", {"items": [{"features": {"indices": [1], "values": [1e39]}}]},
     422, r"^items\[0\]\.features\.values\[0\]: 1e\+39 is out of float32 range$"),
    ("numbers", {"items": [{"vector": [1.0] * 29}]},
     422, r"^items\[0\]\.vector: 29 numbers, the model takes n_features 30$"),
    ("numbers", {"items": [{"text": "hello"}]}, 422, r"^items\[0\]\.text: this model takes "
                                                     r"numeric features"),
    ("colors", {"items": [{"vector": [1.0]}]}, 422, r"^items\[0\]\.vector: this model takes text"),
    ("colors", {"items": [{"text": "a", "vector": [1.0]}]}, 422,
     r"^items\[0\]: give exactly one of text, features, vector \(got text and vector\)$"),
    ("colors", {"items": [{"id": "x"}]}, 422, r"^items\[0\]: give exactly one .*\(got none\)$"),
    ("colors", {"items": [{"text": "ok"}, {"text": "  "}]}, 422, r"^items\[1\]\.text: empty text$"),
    ("colors", {"items": [{"text": 5}]}, 422, r"^items\[0\]\.text: Input should be a valid string"),
    ("colors", {"items": [{"text": "a", "colour": "red"}]}, 422, r"^items\[0\]\.colour: Extra"),
    ("colors", {"items": []}, 422, r"^items: List should have at least 1 item"),
    ("colors", {"items": [{"text": "a"}] * 51}, 422,
     r"^items: 51 items, at most 50 per request \(--max-items\)$"),
    ("colors", {"items": [{"text": "a"}], "top_k": 0}, 422, r"^top_k: "),
    ("colors", {"items": [{"text": "a"}], "top_k": "3"}, 422, r"^top_k: Input should be a valid integer"),
    ("colors", {"items": [{"text": "a"}], "policy": "best"}, 422, r"^policy: expected \"tuned\""),
    ("colors", {"items": [{"text": "a"}], "policy": {"threshold": 2}}, 422, r"^policy: expected"),
    ("colors", [1, 2], 422, r"^body: Input should be a valid dictionary"),
    ("nope", {"items": [{"text": "a"}]}, 404, r"^no model named 'nope'"),
]


@pytest.mark.parametrize("model, body, status, pattern", BAD,
                         ids=[f"{i}-{b[3][:30]}" for i, b in enumerate(BAD)])
def test_predict_bad_input(server, model, body, status, pattern):
    _problem(server.post(f"/v1/models/{model}/predict", json=body), status, pattern)


def test_bad_json_and_body_limit(server):
    url = "/v1/models/colors/predict"
    head = {"content-type": "application/json"}
    _problem(server.post(url, content=b'{"items": [{"text": "a"}', headers=head), 422,
             r"^invalid JSON: ")
    _problem(server.post(url, content=b"", headers=head), 422, r"^body: ")
    _problem(server.post(url, content=b'{"items": [{"text": NaN}]}', headers=head), 422,
             r"^items\[0\]\.text: ")
    _problem(server.post(url, content=b'{"items": [{"text": "a"}]}',
                         headers={"content-type": "text/plain"}), 422)
    big = json.dumps({"items": [{"text": "w" * 70000}]}).encode()
    _problem(server.post(url, content=big, headers=head), 413,
             r"over the limit of 65536 bytes \(--max-body\)")

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b" " * 4096

    _problem(server.post(url, content=chunks(), headers=head), 413)
    # the server is fine afterwards
    assert server.post(url, json={"items": [{"text": "red"}]}).status_code == 200


def test_write_routes_need_the_token(server):
    reload = "/v1/admin/models/colors/reload"
    r = server.post(reload)
    _problem(r, 401, "Authorization: Bearer")
    assert r.headers["www-authenticate"] == "Bearer"
    _problem(server.post(reload, headers={"Authorization": "Bearer wrong"}), 403, "wrong token")
    _problem(server.post(reload, headers={"Authorization": f"Basic {ss.TOKEN}"}), 403)
    auth = {"Authorization": f"Bearer {ss.TOKEN}"}
    r = server.post(reload, headers=auth)
    assert r.status_code == 200 and r.json()["changed"] is False
    _problem(server.post("/v1/admin/models/nope/reload", headers=auth), 404)
    learn = {"examples": [{"text": "red", "labels": ["red"]}]}
    _problem(server.post("/v1/models/colors/learn", json=learn), 401)
    _problem(server.post("/v1/models/colors/learn", json=learn, headers=auth), 403,
             r"learning is off for 'colors' \(start the server with --allow-learn colors\)")


def test_write_routes_off_without_token_file_and_no_batching():
    from fastapi.testclient import TestClient

    from labelwise.models import load_model
    from labelwise.pipeline import Pipeline
    from labelwise.serve import ServeSettings, create_app

    app = create_app(ServeSettings(models={"numbers": str(ss.numeric_model())}, batching=False),
                     load_in_background=False)
    with TestClient(app) as client:
        r = client.post("/v1/admin/models/numbers/reload",
                        headers={"Authorization": f"Bearer {ss.TOKEN}"})
        _problem(r, 403, "without --token-file")
        # one model call per request (no batcher): the same answers
        assert app.state.registry.get("numbers").batcher is None
        vec = [0.0] * ss.N_FEATURES
        vec[3] = 1.5
        doc = client.post("/v1/models/numbers/predict",
                          json={"items": [{"vector": vec}], "top_k": 2}).json()
        X = sp.csr_matrix(np.asarray([vec], dtype=np.float32))
        assert doc["items"] == Pipeline(model=load_model(ss.numeric_model())).predict_labels(X, k=2)


def test_bad_requests_never_reach_good_ones(server):
    """Good and bad requests at once (threads): every good one gets its right answer."""
    pipe = load_any(ss.text_pipeline())
    texts = [f"red w{i} blue" for i in range(12)]
    want = pipe.predict_labels(texts, k=3)
    results = {}

    def good(i):
        r = server.post("/v1/models/colors/predict",
                        json={"items": [{"id": i, "text": texts[i]}], "top_k": 3})
        results[("good", i)] = (r.status_code, r.json())

    def bad(i):
        r = server.post("/v1/models/colors/predict",
                        json={"items": [{"text": texts[i]}, {"text": ""}], "top_k": 3})
        results[("bad", i)] = (r.status_code, r.json())

    threads = [threading.Thread(target=f, args=(i,)) for i in range(12) for f in (good, bad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for i in range(12):
        status, doc = results[("good", i)]
        assert status == 200
        (item,) = doc["items"]
        assert item.pop("id") == i and item == want[i]
        status, doc = results[("bad", i)]
        assert status == 422 and doc["detail"] == "items[1].text: empty text"


def test_metrics(server):
    server.post("/v1/models/colors/predict", json={"items": [{"text": "red"}] * 3})
    server.post("/v1/models/colors/predict", json={"items": [{"text": ""}]})
    text = server.get("/metrics").text
    version = _sha(ss.text_pipeline() / "pipeline.json")

    def value(pattern):
        m = re.search("^" + re.escape(pattern) + r" ([0-9.e+]+)$", text, re.M)
        assert m, pattern
        return float(m.group(1))

    assert value('labelwise_requests_total{method="POST",route="/v1/models/{name}/predict",'
                 'status="200"}') >= 1
    assert value('labelwise_requests_total{method="POST",route="/v1/models/{name}/predict",'
                 'status="422"}') >= 1
    assert value('labelwise_items_predicted_total{model="colors"}') >= 3
    assert value('labelwise_batch_items_count{model="colors"}') >= 1
    assert value('labelwise_request_seconds_count{route="/v1/models/{name}/predict"}') >= 2
    assert value(f'labelwise_model_info{{model="colors",version="{version}"}}') == 1
    assert value('labelwise_model_load_seconds{model="colors"}') > 0
    assert 'route="unmatched"' not in text or "/no/such" not in text


# ---------------------------------------------------------------------- the micro-batcher
def test_batcher_groups_concurrent_jobs_and_isolates_failures():
    from labelwise.serve.batching import Batcher

    calls = []

    def run(key, X):
        calls.append((key, list(X)))
        if "boom" in X:
            raise ValueError("boom")
        return [f"{key}:{x}" for x in X]

    sizes = []

    async def main():
        b = Batcher(run, max_batch=100, max_wait=0.05, observe=sizes.append)
        jobs = [b.submit("k", [f"a{i}", f"b{i}"]) for i in range(5)]
        jobs.append(b.submit("other", ["c"]))
        out = await asyncio.gather(*jobs)
        # a failing row: the grouped call fails, each job is re-run alone
        res = await asyncio.gather(b.submit("k", ["x"]), b.submit("k", ["boom"]),
                                   b.submit("k", ["y"]), return_exceptions=True)
        b.close()
        return out, res

    out, res = asyncio.run(main())
    assert out[:5] == [[f"k:a{i}", f"k:b{i}"] for i in range(5)] and out[5] == ["other:c"]
    assert calls[0] == ("k", [f"{p}{i}" for i in range(5) for p in "ab"])  # one call for 5 jobs
    assert calls[1] == ("other", ["c"])
    assert res[0] == ["k:x"] and res[2] == ["k:y"] and isinstance(res[1], ValueError)
    assert sizes[:2] == [10, 1]


def test_batcher_respects_max_batch():
    from labelwise.serve.batching import Batcher

    calls = []

    def run(key, X):
        calls.append(len(X))
        return list(X)

    async def main():
        b = Batcher(run, max_batch=4, max_wait=0.05)
        out = await asyncio.gather(*[b.submit(0, [i, i]) for i in range(5)])
        b.close()
        return out

    assert asyncio.run(main()) == [[i, i] for i in range(5)]
    assert calls == [4, 4, 2]


def test_batcher_runs_a_lone_short_job_on_the_event_loop():
    """A lone job (nothing else queued) whose call is expected to be short runs on the event
    loop's thread (no thread hop); before any measure, a long call, or several jobs at once:
    a worker thread. Answers are the same either way."""
    import threading
    import time

    from labelwise.serve.batching import Batcher

    where = []
    delay = {"s": 0.0}

    def run(key, X):
        where.append((len(X), threading.get_ident()))
        t0 = time.process_time()
        while time.process_time() - t0 < delay["s"]:  # CPU work, which the estimate counts
            pass
        return [f"{key}:{x}" for x in X]

    async def main():
        loop_thread = threading.get_ident()
        b = Batcher(run, max_batch=100, max_wait=0.0, inline_seconds=1.0)
        assert b.unit_seconds is None
        first = await b.submit("k", list("abcde"))  # no measure yet: a thread
        measured = b.unit_seconds
        second = await b.submit("k", list("abcde"))  # lone, short: on the loop
        together = await asyncio.gather(b.submit("k", ["x", "y"]), b.submit("k", ["z", "w"]))
        before_one = b.unit_seconds
        one = await b.submit("k", ["q"])  # one item: on the loop, not measured
        unchanged = b.unit_seconds == before_one
        slow = Batcher(run, max_batch=100, max_wait=0.0, inline_seconds=0.01)
        delay["s"] = 0.03  # 30 ms of CPU for 4 units (2 items of 1 character): > 10 ms
        long1 = await slow.submit("k", ["s", "t"])
        long2 = await slow.submit("k", ["s", "t"])
        sized = Batcher(run, max_batch=100, max_wait=0.0, inline_seconds=0.05)
        delay["s"] = 0.002  # at least 0.5 ms of CPU a unit
        await sized.submit("k", ["ab", "cd"])  # 6 units: measured, in a thread
        await sized.submit("k", ["ab", "cd"])  # expected ~3 ms: on the loop
        await sized.submit("k", ["a" * 200, "b" * 200])  # expected >= 200 ms: a thread
        b.close()
        slow.close()
        sized.close()
        return loop_thread, measured, unchanged, (first, second, together, one, long1, long2)

    loop_thread, measured, unchanged, answers = asyncio.run(main())
    first, second, together, one, long1, long2 = answers
    assert first == second == [f"k:{c}" for c in "abcde"]
    assert together == [["k:x", "k:y"], ["k:z", "k:w"]] and one == ["k:q"]
    assert long1 == long2 == ["k:s", "k:t"]
    assert measured is not None and measured > 0 and unchanged
    on_loop = [n for n, t in where if t == loop_thread]
    in_thread = [n for n, t in where if t != loop_thread]
    # the second lone 5-item job, the one-item job, the second short sized job
    assert on_loop == [5, 1, 2]
    # no measure; two jobs grouped; the long calls; the first sized job and the long texts
    assert in_thread == [5, 4, 2, 2, 2, 2]


def test_lone_batch_request_moves_to_the_event_loop_with_the_same_answer():
    """Through a real server: a lone request of several items runs in a thread the first
    time (no measure yet), then on the event loop's thread (expected far below 10 ms); every
    answer is the same bytes, and equals Pipeline.predict_labels."""
    import json
    import threading

    from labelwise.serve import ServeSettings, create_app

    pipe = load_any(ss.text_pipeline())
    texts = [f"red w{i} blue plum" for i in range(8)]
    body = json.dumps({"items": [{"id": i, "text": t} for i, t in enumerate(texts)],
                       "top_k": 3}).encode()
    app = create_app(ServeSettings(models={"colors": str(ss.text_pipeline())}))
    where = []
    with ss.live_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        batcher = app.state.registry.get("colors").batcher
        run = batcher.run

        def spy(key, X):
            where.append(threading.get_ident())
            return run(key, X)

        batcher.run = spy
        answers = [client.post("/v1/models/colors/predict", content=body,
                               headers={"content-type": "application/json"})
                   for _ in range(3)]
        names = {t.ident: t.name for t in threading.enumerate()}  # the loop's: uvicorn-test
    assert [r.status_code for r in answers] == [200] * 3
    assert answers[0].content == answers[1].content == answers[2].content
    items = json.loads(answers[0].content)["items"]
    assert [it.pop("id") for it in items] == list(range(8))
    assert items == pipe.predict_labels(texts, k=3)
    assert names[where[0]] != "uvicorn-test"  # a worker thread
    assert where[1] == where[2] and names[where[1]] == "uvicorn-test"


def test_server_process_freezes_the_loaded_objects_before_ready():
    """A server process (freeze_gc=True, as `labelwise serve` builds it) moves the objects
    loaded at start-up out of the collector's reach (a full collection over them stopped the
    event loop for 150-300 ms under load); the default (a test's app) leaves gc alone."""
    import subprocess
    import sys

    code = f"""
import asyncio, gc
from labelwise.serve import ServeSettings, create_app
settings = ServeSettings(models={{"colors": {str(ss.text_pipeline())!r}}})
async def main(freeze):
    app = create_app(settings, load_in_background=False, freeze_gc=freeze)
    before = gc.get_freeze_count()
    async with app.router.lifespan_context(app):
        print(freeze, before, gc.get_freeze_count(), app.state.registry.ready)
asyncio.run(main(False))
asyncio.run(main(True))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split("\n")
    no, yes = out[0].split(), out[1].split()
    assert no[0] == "False" and no[1] == no[2] == "0" and no[3] == "True"
    assert yes[0] == "True" and yes[1] == "0" and int(yes[2]) > 10000 and yes[3] == "True"


def test_predict_fast_path_answers_as_the_fastapi_route(server, monkeypatch):
    """The predict fast path (a valid body sent as application/json) gives the same bytes,
    status and headers as FastAPI's route (the same request sent with a charset parameter,
    which the fast path leaves to FastAPI); errors raised after validation get the same
    problem+json; bodies that do not validate are left to FastAPI (its error answers)."""
    import labelwise.serve.app as app_module

    calls = {"ok": 0, "refused": 0}
    real = app_module._request_adapter()

    class Counting:
        def validate_python(self, value):
            try:
                out = real.validate_python(value)
            except Exception:
                calls["refused"] += 1
                raise
            calls["ok"] += 1
            return out

    monkeypatch.setattr(app_module, "_PREDICT_REQUEST", Counting())
    fast_type, slow_type = "application/json", "application/json; charset=utf-8"
    bodies = [
        {"items": [{"id": "a", "text": "blue plum w3 w7"}, {"id": 3, "text": "red \u00e9\U0001F600"}],
         "top_k": 3},
        {"items": [{"text": "green cyan"}], "policy": "top_k", "top_k": 2},
        {"items": [{"text": "w5 w1"}], "policy": {"threshold": 0.25}},
        {"items": [{"text": "red"}] * 51},  # over --max-items: a Problem after validation
        {"items": [{"features": {"indices": [1], "values": [1.0]}}]},  # text model: 422
        {"items": [{"text": "   "}]},  # empty text
    ]
    for body in bodies:
        raw = json.dumps(body).encode()
        before = dict(calls)
        fast = server.post("/v1/models/colors/predict", content=raw,
                           headers={"content-type": fast_type})
        assert calls["ok"] == before["ok"] + 1  # taken by the fast path
        slow = server.post("/v1/models/colors/predict", content=raw,
                           headers={"content-type": slow_type})
        assert calls["ok"] == before["ok"] + 1  # FastAPI's route
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
        drop = {"date", "content-length"}
        assert ({k: v for k, v in fast.headers.items() if k not in drop}
                == {k: v for k, v in slow.headers.items() if k not in drop})
        assert fast.headers["content-length"] == str(len(fast.content))
    assert server.post("/v1/models/nope/predict", json=bodies[0]).status_code == 404
    # not valid: FastAPI answers (its validation problem), the fast path only looked
    before = dict(calls)
    for raw in (b'{"items": [{"text": 1}]}', b'{"items": "x"', b"", b'{"items": [], "top_k": 0}'):
        fast = server.post("/v1/models/colors/predict", content=raw,
                           headers={"content-type": fast_type})
        slow = server.post("/v1/models/colors/predict", content=raw,
                           headers={"content-type": slow_type})
        _problem(fast, 422)
        assert fast.content == slow.content
    # two bodies parse and fail validation; two do not parse (json.loads refuses them first)
    assert calls["ok"] == before["ok"] and calls["refused"] == before["refused"] + 2
