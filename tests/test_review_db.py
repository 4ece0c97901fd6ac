"""The review loop's storage, queue and operations on SQLite and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")

from labelwise.review import (  # noqa: E402
    DatabaseUnavailableError,
    LeaseConflictError,
    ReviewInputError,
    ReviewNotFoundError,
    SchemaVersionError,
    loop,
    open_db,
    queue,
)
from review_support import (  # noqa: E402
    NAMES,
    TARGET,
    create_database,
    dataset,
    pipeline_dir,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return create_database(request.getfixturevalue("pg"))


@pytest.fixture
def pipe():
    from labelwise.pipeline import load_any

    return load_any(pipeline_dir())


def _ingest(url, pipe, n=60, seed=5, prefix="a", audit_rate=0.2):
    db = open_db(url, create=True)
    counts = loop.ingest(db, pipe, pipeline_dir(), dataset(n, seed, prefix), precision=TARGET,
                         audit_rate=audit_rate, source="new.jsonl", random_state=0)
    return db, counts


def test_schema_created_versioned_and_checked(url):
    from labelwise.review.db import head_revision, schema_revision

    with pytest.raises(SchemaVersionError, match="review init"):
        open_db(url)
    db = open_db(url, create=True)
    assert db.migrated == (None, head_revision())
    assert schema_revision(db.engine) == head_revision()
    db.close()
    db = open_db(url)
    assert db.migrated is None
    # a database from a newer labelwise is refused, not used
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    with pytest.raises(SchemaVersionError, match="'9999' is unknown"):
        open_db(url)


def test_old_database_is_migrated(url):
    import sqlalchemy as sa

    from labelwise.review.db import _make_engine, head_revision, migrate, schema_revision

    engine = _make_engine(url)
    migrate(engine, "0001")
    assert "ix_reviews_reviewer_created" not in {
        i["name"] for i in sa.inspect(engine).get_indexes("reviews")}
    engine.dispose()
    db = open_db(url)
    assert db.migrated == ("0001", head_revision()) and schema_revision(db.engine) == head_revision()
    assert "review_uses" in sa.inspect(db.engine).get_table_names()  # 0003
    assert "ix_reviews_reviewer_created" in {
        i["name"] for i in sa.inspect(db.engine).get_indexes("reviews")}
    db.close()


def test_foreign_tables_are_not_reused(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE items (x int)")
    with pytest.raises(SchemaVersionError, match="not a review database"):
        open_db(str(path), create=True)


def test_sqlite_is_wal(tmp_path):
    db = open_db(str(tmp_path / "w.db"), create=True)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.close()


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(DatabaseUnavailableError, match="unreachable"):
        open_db("postgresql://nobody:secret@127.0.0.1:9/none")
    try:
        open_db("postgresql://nobody:secret@127.0.0.1:9/none")
    except DatabaseUnavailableError as exc:
        assert "secret" not in str(exc)


def test_ingest_auto_accepts_certified_labels_and_queues_the_rest(url, pipe):
    db, counts = _ingest(url, pipe)
    assert counts["items"] == 60 == counts["auto"] + counts["queued"] + counts["audit"]
    assert counts["auto"] > 0 and counts["queued"] > 0 and counts["audit"] > 0
    thr = pipe.decision_.threshold_
    assert counts["threshold"] == thr
    P = pipe.predict_proba(dataset(60, 5, "a").X, k=5).toarray()
    import sqlalchemy as sa

    from labelwise.review.models import Item, Prediction

    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(Item.id, Item.state, Prediction.label,
                                      Prediction.probability, Prediction.decision)
                            .join(Prediction, Prediction.item_pk == Item.pk)).all()
        ing = conn.execute(sa.select(Item.ingested_at)).scalars().first()
    assert ing.tzinfo is not None and ing.utcoffset() == dt.timedelta(0)
    for item_id, state, label, p, decision in rows:
        i = int(item_id[1:])
        assert p == pytest.approx(P[i, NAMES.index(label)], abs=1e-6)
        if decision in ("auto", "audit"):
            assert p >= thr and state == decision
        else:
            assert decision == "queued" and (p < thr)
    st = loop.status(db)
    assert st["items"] == 60 and st["auto_accepted"] == counts["auto"]
    assert st["queued"] == counts["queued"] + counts["audit"] and st["reviewed"] == 0
    # the same ids again: refused, nothing stored
    with pytest.raises(ReviewInputError, match="already in the database"):
        loop.ingest(db, pipe, pipeline_dir(), dataset(5, 5, "a"), precision=TARGET)
    assert loop.status(db)["items"] == 60
    with pytest.raises(ReviewInputError, match="below the target"):
        loop.ingest(db, pipe, pipeline_dir(), dataset(5, 6, "b"), precision=0.95)
    db.close()


def test_ingest_stores_top_k_candidates_and_the_chosen_labels(url, pipe):
    """k candidates an item (its k most probable labels) plus every chosen label, never the
    tuning's whole top list (a reference loop over score_and_sets)."""
    import sqlalchemy as sa

    from labelwise.review.models import Item, Prediction

    ds = dataset(40, 7, "k")
    db = open_db(url, create=True)
    loop.ingest(db, pipe, pipeline_dir(), ds, precision=TARGET, audit_rate=0.0, k=1,
                random_state=0)
    assert pipe.tuning_["k"] == 5
    _, P, sets = pipe.score_and_sets(ds.X, k=1)
    want = {}
    for i in range(40):
        a, b = P.indptr[i], P.indptr[i + 1]
        ranked = sorted(zip(P.indices[a:b].tolist(), P.data[a:b].tolist(), strict=True),
                        key=lambda cp: -cp[1])
        chosen = set(sets.indices[sets.indptr[i]:sets.indptr[i + 1]].tolist())
        want[f"k{i}"] = [(NAMES[c], p) for r, (c, p) in enumerate(ranked) if r < 1 or c in chosen]
    with db.engine.connect() as conn:
        got = {}
        for item_id, label, p in conn.execute(
                sa.select(Item.id, Prediction.label, Prediction.probability)
                .join(Prediction, Prediction.item_pk == Item.pk)
                .order_by(Item.id, Prediction.id)):
            got.setdefault(item_id, []).append((label, pytest.approx(p, abs=1e-6)))
    assert got == want
    assert any(len(v) > 1 for v in want.values())  # some chosen sets reach past the top 1
    db.close()


def _review_all(db, reviewer="ann", truth=None):
    n = 0
    while (it := queue.lease_next(db, reviewer)) is not None:
        sugg = [s["label"] for s in it["suggestions"]]
        keep = [s for s in sugg if truth is None or s in truth[it["id"]]]
        queue.submit(db, it["id"], reviewer, accepted=keep,
                     rejected=[s for s in sugg if s not in keep], seconds=1.5)
        n += 1
    return n


def test_queue_orders_leases_and_conflicts(url, pipe):
    db, counts = _ingest(url, pipe)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    first = queue.lease_next(db, "ann", now=t0)
    assert first["audit"]  # audits first in the expected-value order
    # ann asks again: she gets her own lease back, not a second item
    assert queue.lease_next(db, "ann", now=t0)["id"] == first["id"]
    bob = queue.lease_next(db, "bob", now=t0)
    assert bob["id"] != first["id"]
    # a submission without a lease, or by someone else: 409, nothing stored
    with pytest.raises(LeaseConflictError, match="not leased"):
        queue.submit(db, first["id"], "cid", accepted=[])
    # ann's lease expires, cid takes the item; ann's late submission is refused
    later = t0 + dt.timedelta(seconds=601)
    got = [queue.lease_next(db, "cid", now=later)["id"]]
    while got[-1] != first["id"]:
        queue.release(db, got[-1], "cid")
        got.append(queue.lease_next(db, "cid", now=later)["id"])
        assert len(got) < 200
    with pytest.raises(LeaseConflictError, match="another reviewer"):
        queue.submit(db, first["id"], "ann", accepted=[], now=later)
    sugg = [s["label"] for s in first["suggestions"]]
    rev = queue.submit(db, first["id"], "cid", accepted=sugg[:1], rejected=sugg[1:],
                       added=[], seconds=3.0, now=later)
    assert rev["audit"] is True
    with pytest.raises(LeaseConflictError, match="already reviewed"):
        queue.submit(db, first["id"], "cid", accepted=[], now=later)
    # bad input: field named, nothing stored
    bob_id = bob["id"]
    with pytest.raises(ReviewNotFoundError, match="item_id"):
        queue.submit(db, "nope", "bob", accepted=[])
    with pytest.raises(ReviewInputError, match=r"accepted\[0\]: 'mauve'"):
        queue.submit(db, bob_id, "bob", accepted=["mauve"], now=t0)
    outside = [n for n in NAMES if n not in {s["label"] for s in bob["suggestions"]}]
    if outside:
        with pytest.raises(ReviewInputError, match=r"accepted\[0\]"):
            queue.submit(db, bob_id, "bob", accepted=[outside[0]], now=t0)
    with pytest.raises(ReviewInputError, match=r"added\[0\]: unknown label name 'mauve'"):
        queue.submit(db, bob_id, "bob", accepted=[], added=["mauve"], now=t0)
    with pytest.raises(ReviewInputError, match="seconds"):
        queue.submit(db, bob_id, "bob", accepted=[], seconds=float("nan"), now=t0)
    with pytest.raises(ReviewInputError, match="accepted: expected a list"):
        queue.submit(db, bob_id, "bob", accepted="red", now=t0)
    with pytest.raises(ReviewInputError, match="accepted: 2000 labels"):
        queue.submit(db, bob_id, "bob", accepted=["x"] * 2000, now=t0)
    with pytest.raises(ReviewInputError, match="order"):
        queue.lease_next(db, "bob", order="best")
    assert loop.status(db)["reviewed"] == 1
    db.close()


def test_orders_oldest_and_random(url, pipe):
    db, _ = _ingest(url, pipe, audit_rate=0.0)
    import sqlalchemy as sa

    from labelwise.review.models import Item

    with db.engine.connect() as conn:
        queued = conn.execute(sa.select(Item.id).where(Item.state == "queued")
                              .order_by(Item.pk)).scalars().all()
    assert queue.lease_next(db, "a", order="oldest")["id"] == queued[0]
    assert queue.lease_next(db, "b", order="oldest")["id"] == queued[1]
    seen = {queue.lease_next(db, f"r{i}", order="random")["id"] for i in range(len(queued) - 2)}
    assert seen == set(queued[2:])
    assert queue.lease_next(db, "late", order="random") is None
    db.close()


def test_review_status_export_and_pause(url, pipe, tmp_path):
    db, counts = _ingest(url, pipe, audit_rate=0.5)
    ds = dataset(60, 5, "a")
    truth = {i: set(ds.label_names(r)) for r, i in enumerate(ds.ids)}
    # a reviewer who rejects every suggestion: audited precision 0 -> every audited label pauses
    assert _review_all(db, "zed", truth={i: set() for i in truth}) == counts["queued"] + counts[
        "audit"]
    st = loop.status(db)
    audited = [r for r in st["labels"] if r["audited"]]
    assert audited and all(r["paused"] and r["interval"][1] < TARGET for r in audited)
    assert st["audited_precision"]["precision"] == 0.0
    # the overall interval: the confidence sequence on every item with auto labels
    from labelwise.review.audit import audited_precision_interval

    with db.engine.connect() as conn:
        items = loop.auto_items(conn)
    a = st["audited_precision"]
    assert items["n_auto"].size == counts["auto"] + counts["audit"]
    assert items["audited"].sum() == counts["audit"] and (items["rate"] == 0.5).all()
    assert (items["reviewed"] == items["audited"]).all()
    assert (items["wrong"] == np.where(items["audited"], items["n_auto"], 0)).all()  # zed
    assert a["method"] == "confidence sequence"
    assert a["auto_accepted_labels"] == items["n_auto"].sum() >= a["audited"]
    assert a["interval"] == list(audited_precision_interval(
        items["n_auto"], items["audited"], items["reviewed"], items["wrong"], items["rate"]))
    assert 0.0 <= a["interval"][0] <= a["interval"][1] < 1.0
    import sqlalchemy as sa

    with db.engine.begin() as conn:  # an ingest from before the rate was recorded
        conn.execute(sa.text("UPDATE model_versions SET audit_rate = NULL"))
    old = loop.status(db)["audited_precision"]
    assert old["method"] == "binomial"
    assert old["interval"] == list(loop.clopper_pearson(a["correct"], a["audited"]))
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET audit_rate = 0.5"))
    more = loop.ingest(db, pipe, pipeline_dir(), dataset(40, 8, "b"), precision=TARGET,
                       audit_rate=0.0)
    assert set(more["paused"]) == {r["label"] for r in audited}

    from labelwise.review.models import Item, Prediction

    with db.engine.connect() as conn:
        auto_labels = set(conn.execute(
            sa.select(Prediction.label).join(Item, Item.pk == Prediction.item_pk)
            .where(Item.id.like("b%"), Prediction.decision == "auto")).scalars())
    assert not auto_labels & set(more["paused"])
    out = tmp_path / "out.jsonl"
    n = loop.export(db, out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == n
    by_id = {x["id"]: x for x in lines}
    assert len(by_id) == n
    reviewed = [x for x in lines if x["id"].startswith("a") and "zed" in x["decided"].values()]
    assert not reviewed  # zed kept nothing
    autos = [x for x in lines if x["decided"] and set(x["decided"].values()) == {"auto"}]
    assert len(autos) == counts["auto"] + more["auto"]
    # the paused labels' chosen predictions went to people as "paused"; their reviews count
    # as audits (every one is reviewed), so a label can recover
    with db.engine.connect() as conn:
        held = conn.execute(
            sa.select(Prediction.label, Prediction.probability).join(Item, Item.pk ==
                                                                     Prediction.item_pk)
            .where(Item.id.like("b%"), Prediction.decision == "paused")).all()
        before = loop.audit_stats(conn)
    overall = loop.status(db)["audited_precision"]
    assert held and {lab for lab, _ in held} <= set(more["paused"])
    assert all(p >= pipe.decision_.threshold_ for _, p in held)
    assert _review_all(db, "amy") > 0  # amy keeps every suggestion
    with db.engine.connect() as conn:
        after = loop.audit_stats(conn)
    for label in more["paused"]:
        n_held = sum(lab == label for lab, _ in held)
        assert after[label] == (before[label][0] + n_held, before[label][1] + n_held)
        row = next(r for r in loop.status(db)["labels"] if r["label"] == label)
        assert (row["audited_correct"], row["audited"]) == after[label]
    # the overall figure estimates what was auto-accepted: the random audits alone
    assert loop.status(db)["audited_precision"] == overall
    db.close()


def test_status_interval_reference():
    from scipy.stats import binom

    lo, hi = loop.clopper_pearson(45, 50)
    assert binom.sf(44, 50, lo) == pytest.approx(0.025, abs=1e-9)
    assert binom.cdf(45, 50, hi) == pytest.approx(0.025, abs=1e-9)
    assert loop.clopper_pearson(0, 10)[0] == 0.0 and loop.clopper_pearson(10, 10)[1] == 1.0


def test_concurrent_reviewers_decide_each_item_once(url, pipe):
    """8 reviewer threads on one queue (the library path; the HTTP version is in
    test_review_api.py): every queued item is reviewed exactly once."""
    db, counts = _ingest(url, pipe, n=200, seed=9, audit_rate=0.1)
    todo = counts["queued"] + counts["audit"]
    done: dict[str, list[str]] = {}
    errors = []
    lock = threading.Lock()

    def work(name):
        try:
            while (it := queue.lease_next(db, name)) is not None:
                queue.submit(db, it["id"], name, accepted=[], seconds=0.1)
                with lock:
                    done.setdefault(it["id"], []).append(name)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(done) == todo and all(len(v) == 1 for v in done.values())
    assert loop.status(db)["reviewed"] == todo
    db.close()
