"""The review routes over real HTTP (uvicorn on 127.0.0.1), on SQLite and PostgreSQL:
tokens, errors naming the field, 8 concurrent reviewers, kill -9 of the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")

import httpx  # noqa: E402

from labelwise.review import loop, open_db  # noqa: E402
from labelwise.serve import ServeSettings, create_app  # noqa: E402
from review_support import (  # noqa: E402
    TARGET,
    create_database,
    dataset,
    pipeline_dir,
)
from serve_support import TOKEN, free_port, live_server, workdir  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        u = str(tmp_path / "review.db")
    else:
        u = create_database(request.getfixturevalue("pg"))
    open_db(u, create=True).close()
    return u


def _app(url):
    return create_app(ServeSettings(models={"colors": str(pipeline_dir())},
                                    token_file=str(workdir() / "token"),
                                    extra={"review_db": url}))


def _ingest_lib(url, n, seed, prefix, audit_rate):
    from labelwise.pipeline import load_any

    with open_db(url) as db:
        return loop.ingest(db, load_any(pipeline_dir()), pipeline_dir(),
                           dataset(n, seed, prefix), precision=TARGET, audit_rate=audit_rate)


def test_review_routes_and_errors(url):
    with live_server(_app(url)) as base, httpx.Client(base_url=base, timeout=30) as c:
        items = [{"id": f"x{i}", "text": t} for i, t in enumerate(dataset(30, 4, "x").X)]
        body = {"model": "colors", "items": items, "precision": TARGET, "audit_rate": 0.5}
        assert c.post("/v1/review/ingest", json=body).status_code == 401
        assert c.post("/v1/review/ingest", json=body,
                      headers={"Authorization": "Bearer nope"}).status_code == 403
        r = c.post("/v1/review/ingest", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        counts = r.json()
        assert counts["items"] == 30
        st = c.get("/v1/review/status").json()
        assert st["items"] == 30 and st["queued"] == counts["queued"] + counts["audit"]
        # writes need the token
        assert c.post("/v1/review/next", json={"reviewer": "ann"}).status_code == 401
        it = c.post("/v1/review/next", json={"reviewer": "ann"}, headers=AUTH).json()
        sugg = [s["label"] for s in it["suggestions"]]
        # bad input: 4xx naming the field, nothing stored
        bad = [
            ("/v1/review/items/nope/review", {"reviewer": "ann", "accepted": []}, 404,
             "item_id"),
            (f"/v1/review/items/{it['id']}/review", {"reviewer": "ann", "accepted": ["mauve"]},
             422, "accepted[0]"),
            (f"/v1/review/items/{it['id']}/review", {"reviewer": "ann", "accepted": [],
                                                     "added": ["mauve"]}, 422, "added[0]"),
            (f"/v1/review/items/{it['id']}/review", {"reviewer": "bob", "accepted": []}, 409,
             "not leased to 'bob'"),
            (f"/v1/review/items/{it['id']}/review", {"reviewer": "ann", "accepted": [],
                                                     "seconds": -1}, 422, "seconds"),
            (f"/v1/review/items/{it['id']}/review", {"reviewer": "ann", "accepted": [],
                                                     "mood": 1}, 422, "mood"),
            ("/v1/review/next", {"reviewer": "ann", "order": "best"}, 422, "order"),
        ]
        for path, payload, code, field in bad:
            r = c.post(path, json=payload, headers=AUTH)
            assert r.status_code == code, (path, payload, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert field in r.json()["detail"], r.json()
        huge = {"reviewer": "ann", "accepted": ["a" * 1000] * 10000}
        r = c.post(f"/v1/review/items/{it['id']}/review", json=huge, headers=AUTH)
        assert r.status_code == 413
        assert c.get("/v1/review/status").json()["reviewed"] == 0
        r = c.post(f"/v1/review/items/{it['id']}/review", headers=AUTH,
                   json={"reviewer": "ann", "accepted": sugg[:1], "rejected": sugg[1:],
                         "seconds": 4.5})
        assert r.status_code == 201, r.text
        assert c.get("/v1/review/status").json()["reviewed"] == 1
        lines = c.get("/v1/review/export").text.splitlines()
        assert len(lines) == counts["auto"] + 1
        # skip: release gives the item back
        it2 = c.post("/v1/review/next", json={"reviewer": "ann"}, headers=AUTH).json()
        r = c.post(f"/v1/review/items/{it2['id']}/release", json={"reviewer": "ann"},
                   headers=AUTH)
        assert r.json()["released"] is True
        spec = c.get("/openapi.json").json()
        for path in ("/v1/review/next", "/v1/review/items/{item_id}/review",
                     "/v1/review/status", "/v1/review/ingest", "/v1/review/export"):
            assert path in spec["paths"]


def test_unreachable_database_is_503():
    app = _app("postgresql://nobody@127.0.0.1:9/none")
    with live_server(app) as base:
        r = httpx.get(base + "/v1/review/status", timeout=60)
        assert r.status_code == 503 and "unreachable" in r.json()["detail"]
        r = httpx.post(base + "/v1/review/next", json={"reviewer": "a"}, headers=AUTH,
                       timeout=60)
        assert r.status_code == 503


#: 500 items by default to keep the suite fast on 2 cores (2,000 as the issue asks:
#: LABELWISE_REVIEW_N=2000; measured 66 s on SQLite, 50 s on PostgreSQL, loaded machine)
N_CONCURRENT = int(os.environ.get("LABELWISE_REVIEW_N", "500"))


def test_eight_reviewers_over_http_decide_each_item_once(url):
    """8 reviewers (threads with their own HTTP clients) on one queue of N items (audit rate
    1: every item goes to people): each item is decided exactly once."""
    counts = _ingest_lib(url, N_CONCURRENT, 31, "c", audit_rate=1.0)
    todo = counts["queued"] + counts["audit"]
    assert todo == N_CONCURRENT
    got: dict[str, list[str]] = {}
    conflicts, errors = [], []
    lock = threading.Lock()

    def work(base, name):
        try:
            with httpx.Client(base_url=base, timeout=60, headers=AUTH) as c:
                while True:
                    r = c.post("/v1/review/next", json={"reviewer": name})
                    if r.status_code == 204:
                        return
                    r.raise_for_status()
                    item = r.json()
                    r = c.post(f"/v1/review/items/{item['id']}/review",
                               json={"reviewer": name, "accepted": [], "seconds": 0.1})
                    if r.status_code == 409:
                        conflicts.append(r.json()["detail"])
                        continue
                    r.raise_for_status()
                    with lock:
                        got.setdefault(item["id"], []).append(name)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    with live_server(_app(url)) as base:
        t0 = time.monotonic()
        threads = [threading.Thread(target=work, args=(base, f"r{i}")) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        took = time.monotonic() - t0
    assert not errors, errors[:3]
    assert not conflicts, conflicts[:3]
    assert len(got) == todo and all(len(v) == 1 for v in got.values())
    with open_db(url) as db:
        st = loop.status(db)
        import sqlalchemy as sa

        from labelwise.review.models import Review

        with db.engine.connect() as conn:
            n_rows = conn.execute(sa.select(sa.func.count()).select_from(Review)).scalar_one()
    assert st["reviewed"] == n_rows == todo and st["queued"] == 0
    print(f"{todo} items by 8 reviewers over HTTP in {took:.1f} s")


def test_kill_9_during_reviews_keeps_every_acknowledged_review(url, tmp_path):
    """A stream of reviews against a `labelwise serve` process killed with SIGKILL midway:
    after a restart every review answered 2xx is stored, and every reviewed item has exactly
    its review (no half-written decision)."""
    _ingest_lib(url, 300, 41, "k", audit_rate=1.0)
    port = free_port()
    cmd = [sys.executable, "-m", "labelwise.cli.main", "serve", str(pipeline_dir()),
           "--port", str(port), "--token-file", str(workdir() / "token"), "--review-db", url,
           "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"

    log = tmp_path / "server.log"

    def start():
        with open(log, "ab") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        t_end = time.monotonic() + 120
        while time.monotonic() < t_end:
            try:
                if httpx.get(base + "/health/ready", timeout=5).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.1)
        proc.kill()
        raise RuntimeError("server did not get ready")

    proc = start()
    acked: list[str] = []
    killed = threading.Event()

    def stream():
        with httpx.Client(base_url=base, timeout=10, headers=AUTH) as c:
            try:
                while True:
                    r = c.post("/v1/review/next", json={"reviewer": "ann"})
                    if r.status_code != 200:
                        return
                    item = r.json()
                    r = c.post(f"/v1/review/items/{item['id']}/review",
                               json={"reviewer": "ann", "accepted": [], "seconds": 1})
                    if 200 <= r.status_code < 300:
                        acked.append(item["id"])
            except httpx.TransportError:
                killed.set()

    t = threading.Thread(target=stream)
    try:
        t.start()
        t_end = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < t_end:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        t.join(30)
        assert killed.is_set() and len(acked) >= 40
        proc = start()  # a restart on the same database
        st = httpx.get(base + "/v1/review/status", timeout=30).json()
        assert st["reviewed"] >= len(acked)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    import sqlalchemy as sa

    from labelwise.review.models import Item, Lease, Review

    with open_db(url) as db, db.engine.connect() as conn:
        reviewed = dict(conn.execute(sa.select(Item.id, Item.state)).all())
        rev_items = conn.execute(sa.select(Item.id).join(Review, Review.item_pk == Item.pk)
                                 ).scalars().all()
        held = conn.execute(sa.select(sa.func.count()).select_from(Lease).join(
            Item, Item.pk == Lease.item_pk).where(Item.state == "reviewed",
                                                  Lease.reviewer.is_not(None))).scalar_one()
    assert set(acked) <= set(rev_items)
    assert {i for i, s in reviewed.items() if s == "reviewed"} == set(rev_items)
    assert held == 0
