"""The queue's expected-value order (uncertainty and label frequency), its random order, and
the indexes that serve every order (migration 0004), on SQLite and a real PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")

import scipy.sparse as sp  # noqa: E402

from labelwise.review import loop, open_db, queue  # noqa: E402
from review_support import NAMES, TARGET, create_database, dataset, pipeline_dir  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return create_database(request.getfixturevalue("pg"))


@pytest.fixture
def pipe():
    from labelwise.pipeline import load_any

    return load_any(pipeline_dir())


def test_expected_value_hand_values():
    # 4 p (1 - p) / sqrt(1 + n) summed over the candidates
    assert queue.expected_value([("a", 0.5)], {}) == 1.0
    assert queue.expected_value([("a", 0.5)], {"a": 3}) == 0.5
    assert queue.expected_value([("a", 0.1), ("b", 0.5)], {"a": 0, "b": 3}) == pytest.approx(
        0.36 + 0.5)
    assert queue.expected_value([("a", 0.5)], {"a": 99}) == pytest.approx(0.1)
    assert queue.expected_value([("a", 1.0), ("b", 0.0)], {}) == 0.0
    assert queue.expected_value([("a", 0.5)], {}, audit=True) == queue.AUDIT_FIRST + 1.0


def _hand_pipe(pipe, monkeypatch, rows, chosen, examples):
    """``pipe`` answering ``rows`` (per item: {label: probability}) with the certified sets
    ``chosen`` (per item: labels) and training positives ``examples``: hand-set inputs for
    ingest."""
    col = {n: j for j, n in enumerate(NAMES)}

    def csr(per_item):
        indptr, indices, data = [0], [], []
        for d in per_item:
            for lab, v in d.items():
                indices.append(col[lab])
                data.append(v)
            indptr.append(len(indices))
        return sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int64),
                              np.asarray(indptr, np.int64)), shape=(len(per_item), len(NAMES)))

    P = csr(rows)
    sets = csr([dict.fromkeys(c, 1.0) for c in chosen])
    monkeypatch.setattr(pipe, "score_and_sets", lambda X, k=5: (P, P, sets))
    monkeypatch.setattr(pipe, "label_info",
                        lambda: [{"label": n, "examples": examples.get(n, 0)} for n in NAMES])
    return pipe


def _ids(prefix, n):
    from labelwise import Dataset

    return Dataset([f"text {i}" for i in range(n)], [[0]] * n, NAMES,
                   ids=[f"{prefix}{i}" for i in range(n)])


def _lease_order(db, n):
    got = []
    for r in range(n + 1):
        it = queue.lease_next(db, f"r{r}")
        if it is None:
            break
        got.append(it["id"])
    return got


def test_queue_follows_expected_value_hand_computed(url, pipe, monkeypatch):
    """Hand values: red seen 0 times in training, green 3, blue 99.
    a0: red .5                -> 1                  a1: green .5          -> 1/2
    a2: red .1, green .5      -> .36 + .5 = .86     a3: blue .5           -> 1/10
    a4: blue .95 (certified)  -> auto-accepted, not queued.
    The former rule (most uncertain candidate only) ties a0, a1, a2 at p = 1/2."""
    examples = {"red": 0, "green": 3, "blue": 99}
    rows = [{"red": .5}, {"green": .5}, {"red": .1, "green": .5}, {"blue": .5}, {"blue": .95}]
    chosen = [[], [], [], [], ["blue"]]
    _hand_pipe(pipe, monkeypatch, rows, chosen, examples)
    db = open_db(url, create=True)
    c = loop.ingest(db, pipe, pipeline_dir(), _ids("a", 5), precision=TARGET, audit_rate=0.0)
    assert (c["auto"], c["queued"]) == (1, 4)
    assert _lease_order(db, 4) == ["a0", "a2", "a1", "a3"]
    # a review that keeps red makes red less rare for the next ingest: n_red = 0 + 1
    queue.submit(db, "a0", "r0", accepted=["red"])
    for i in (2, 1, 3):
        queue.release(db, f"a{i}", f"r{[2, 1, 3].index(i) + 1}")
    # b0: red .5 -> 1/sqrt(2) = .7071; b1: green .5, blue .5 -> .5 + .1 = .6;
    # b2: green .6 -> .96 / 2 = .48; with a2 .86, a1 .5, a3 .1 still queued
    rows = [{"red": .5}, {"green": .5, "blue": .5}, {"green": .6}]
    _hand_pipe(pipe, monkeypatch, rows, [[], [], []], examples)
    loop.ingest(db, pipe, pipeline_dir(), _ids("b", 3), precision=TARGET, audit_rate=0.0)
    assert _lease_order(db, 6) == ["a2", "b0", "b1", "a1", "b2", "a3"]
    db.close()


def test_audits_first_then_value_matches_a_reference(url, pipe):
    """On a real ingest: audits first, then the value computed here from the stored
    candidates by a plain loop, ties by ingest order."""
    import sqlalchemy as sa

    from labelwise.review.models import Item, Prediction

    db = open_db(url, create=True)
    loop.ingest(db, pipe, pipeline_dir(), dataset(60, 5, "a"), precision=TARGET,
                audit_rate=0.2, random_state=0)
    n_pos = {r["label"]: r["examples"] or 0 for r in pipe.label_info()}
    with db.engine.connect() as conn:
        items = conn.execute(sa.select(Item.pk, Item.id, Item.state)
                             .where(Item.state.in_(["queued", "audit"]))).all()
        cands = conn.execute(sa.select(Prediction.item_pk, Prediction.label,
                                       Prediction.probability)).all()
    value = {}
    for pk, label, p in cands:
        value[pk] = value.get(pk, 0.0) + 4 * p * (1 - p) / math.sqrt(1 + n_pos[label])
    want = [i for _, _, _, i in sorted((st != "audit", -value[pk], pk, i)
                                       for pk, i, st in items)]
    assert any(st == "audit" for _, _, st in items)
    assert _lease_order(db, len(items)) == want
    db.close()


def test_random_order_follows_uniform_keys(url, pipe):
    import sqlalchemy as sa

    from labelwise.review.models import Item

    db = open_db(url, create=True)
    loop.ingest(db, pipe, pipeline_dir(), dataset(200, 6, "a"), precision=TARGET,
                audit_rate=0.5, random_state=3)
    with db.engine.connect() as conn:
        keys = conn.execute(sa.select(Item.id, Item.rand_key)
                            .where(Item.state.in_(["queued", "audit"]))).all()
    k = np.array([v for _, v in keys])
    assert len(k) > 10 and np.all((k >= 0) & (k < 1)) and len(set(k.tolist())) == len(k)
    got = [queue.lease_next(db, f"r{i}", order="random")["id"] for i in range(len(keys))]
    assert got == [i for _, i in sorted((v, i) for i, v in keys)]
    db.close()


def _plan(db, order):
    """The query plan of the next-item query in ``order``, as text."""
    import datetime as dt

    q = queue.next_item_query(order, postgres=db.is_postgres)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with db.engine.begin() as conn:
        st = q.compile(dialect=conn.dialect).construct_expanded_state({"now": now})
        sql, params = st.statement, st.parameters
        if db.is_postgres:
            # with sorting priced out, a plan without the index exists only if the index
            # cannot serve the query (its WHERE not implied, its columns not the order)
            conn.exec_driver_sql("SET LOCAL enable_sort = off")
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + sql, params).all()
        else:
            args = tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime)
                         else v for v in (params[k] for k in st.positiontup))
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args).all()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("order,index", [("uncertainty", "ix_items_open_priority"),
                                         ("oldest", "ix_items_open_oldest"),
                                         ("random", "ix_items_open_random")])
def test_every_order_is_served_by_its_index(url, pipe, order, index):
    db = open_db(url, create=True)
    loop.ingest(db, pipe, pipeline_dir(), dataset(30, 5, "a"), precision=TARGET)
    plan = _plan(db, order)
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    db.close()


def test_0003_database_gains_the_order_keys(url):
    """An 0003 database with items migrates to the head: rand_key (0004) filled in [0, 1)
    for the stored items, the partial indexes in place; model_versions gains audit_rate
    (0005)."""
    import sqlalchemy as sa

    from labelwise.review.db import _make_engine, head_revision, migrate, schema_revision

    engine = _make_engine(url)
    migrate(engine, "0003")
    with engine.begin() as conn:
        for i in range(20):
            conn.execute(sa.text(
                "INSERT INTO items (id, source, text, ingested_at, state, priority) VALUES "
                "(:id, 's', 't', :at, :st, 0.5)"),
                {"id": f"x{i}", "at": "2026-01-01 00:00:00", "st": ["queued", "auto"][i % 2]})
    engine.dispose()
    db = open_db(url)
    assert db.migrated == ("0003", head_revision()) and schema_revision(db.engine) == "0005"
    with db.engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT rand_key FROM items")).scalars().all()
    assert len(keys) == 20 and all(0 <= k < 1 for k in keys) and len(set(keys)) == 20
    insp = sa.inspect(db.engine)
    assert {"ix_items_open_priority", "ix_items_open_oldest", "ix_items_open_random"} <= {
        i["name"] for i in insp.get_indexes("items")}
    assert "ix_leases_reviewer" in {i["name"] for i in insp.get_indexes("leases")}
    assert "audit_rate" in {c["name"] for c in insp.get_columns("model_versions")}
    db.close()
