"""The review loop's operations on a database (:func:`labelwise.review.db.open_db`): ingest
predictions, report the status, export the decisions, and the rows that feed ``learn``.

Ingest: the pipeline's decision policy must be a certified precision target
(``labelwise tune MODEL DATA --objective precision=P``: :class:`PrecisionTarget` with a
Clopper-Pearson confidence, its threshold chosen by fixed-sequence testing) with P >= the
requested target. Per item, the labels in the policy's set are auto-accepted; an item with
none goes to people (``queued``); an item with some goes to people anyway with probability
``audit_rate`` (``audit``: its auto labels are checked). A label whose audited precision's
95 % interval lies wholly below the target is *paused*: its labels are queued, not
auto-accepted (decision ``paused``), until audits bring the interval's upper end back to the
target; the reviews of those paused predictions count as its audits (every one is
reviewed), so a label that was paused by bad luck recovers.

Status per label: auto-accepted, queued, reviewed counts; audited precision (correct audits /
audits, a paused label's reviewed ``paused`` predictions included) with its two-sided 95 %
Clopper-Pearson interval (what the pause rule reads); ``paused``. Overall: the random audits
alone, an estimate of the precision of the labels actually auto-accepted (audited ones
included), with a 95 % interval that holds under the pause rule and the per-item audit draw
(a confidence sequence: :mod:`labelwise.review.audit`; the plain binomial interval missed
the true precision in a benchmark run; databases whose ingests did not record their audit
rate get the binomial one, ``method`` says which).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ReviewInputError
from .models import Item, ModelVersion, Prediction, Review, utcnow
from .queue import expected_value

__all__ = ["audit_stats", "auto_item_ids", "auto_items", "clopper_pearson", "export", "ingest", "label_status", "learning_rows",
           "status",
           "reviewed_rows"]

AUDIT_LEVEL = 0.95
#: prediction decisions whose reviews measure auto-accept's precision (audit_stats)
AUDITED = ("audit", "paused")


def clopper_pearson(k: int, n: int, level: float = AUDIT_LEVEL) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for k successes of n ((0, 1) when n = 0)."""
    from scipy.stats import beta

    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def _certified(pipe: Any, target: float) -> float:
    from labelwise.decision import PrecisionTarget

    pol = pipe.decision_
    hint = (f"tune it with a certified precision target: labelwise tune MODEL DATA "
            f"--objective precision={target:g}")
    if not isinstance(pol, PrecisionTarget) or pol.mode != "set" or pol.confidence is None:
        raise ReviewInputError(f"model: its decision policy is not a certified precision target "
                               f"({type(pol).__name__ if pol is not None else 'none'}); {hint}")
    if float(pol.precision) + 1e-12 < target:
        raise ReviewInputError(f"model: certified for precision {pol.precision:g}, below the "
                               f"target --precision {target:g}; {hint}")
    if pipe.calibrator_ is None:
        raise ReviewInputError(f"model: not calibrated; {hint}")
    return float(pol.threshold_)


def audit_stats(conn, decisions: tuple[str, ...] = AUDITED) -> dict[str, tuple[int, int]]:
    """label -> (correct, audited): audit predictions of reviewed items, correct when the
    review kept the label (accepted or added). A paused label's predictions that the
    certified policy chose (decision ``paused``: sent to people instead) count as audits
    too: every one of them is reviewed, so they are an unbiased sample of what auto-accept
    would have accepted, and they are how a paused label recovers. ``decisions=("audit",)``:
    the random audits alone (what ``status``'s overall audited precision estimates: the
    precision of the labels actually auto-accepted)."""
    from sqlalchemy import select

    rows = conn.execute(
        select(Prediction.label, Review.accepted, Review.added)
        .join(Review, Review.item_pk == Prediction.item_pk)
        .where(Prediction.decision.in_(decisions))).all()
    out: dict[str, list[int]] = {}
    for label, accepted, added in rows:
        kn = out.setdefault(label, [0, 0])
        kn[0] += label in accepted or label in added
        kn[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def reviewed_positives(conn) -> dict[str, int]:
    """label -> reviewed items that kept it (accepted or added)."""
    from sqlalchemy import select

    out: dict[str, int] = {}
    for accepted, added in conn.execute(select(Review.accepted, Review.added)):
        for label in set(accepted) | set(added):
            out[label] = out.get(label, 0) + 1
    return out


def auto_items(conn) -> dict[str, np.ndarray]:
    """Per item with auto-accepted labels (decision ``auto`` or ``audit``), in ingest order:
    ``n_auto`` (its auto labels), ``audited`` (drawn for an audit), ``reviewed`` (that audit
    was reviewed), ``wrong`` (its auto labels the reviewer did not keep; 0 when not
    reviewed) and ``rate`` (its ingest's audit rate; NaN when not recorded): what
    :func:`labelwise.review.audit.audited_precision_interval` takes."""
    from sqlalchemy import func, select

    rows = conn.execute(
        select(Prediction.item_pk, Prediction.decision, Item.state, ModelVersion.audit_rate,
               func.count())
        .join(Item, Item.pk == Prediction.item_pk)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(Prediction.decision.in_(("auto", "audit")))
        .group_by(Prediction.item_pk, Prediction.decision, Item.state, ModelVersion.audit_rate)
        .order_by(Prediction.item_pk)).all()
    wrong: dict[int, int] = {}
    for pk, label, accepted, added in conn.execute(
            select(Prediction.item_pk, Prediction.label, Review.accepted, Review.added)
            .join(Review, Review.item_pk == Prediction.item_pk)
            .where(Prediction.decision == "audit")):
        wrong[pk] = wrong.get(pk, 0) + (label not in accepted and label not in added)
    reviewed = [d == "audit" and st == "reviewed" for _, d, st, _, _ in rows]
    return {"n_auto": np.array([c for *_, c in rows], np.int64),
            "audited": np.array([d == "audit" for _, d, _, _, _ in rows], bool),
            "reviewed": np.array(reviewed, bool),
            "wrong": np.array([wrong.get(pk, 0) if r else 0
                               for (pk, *_), r in zip(rows, reviewed, strict=True)], np.int64),
            "rate": np.array([np.nan if a is None else a for _, _, _, a, _ in rows],
                             np.float64)}


def paused_labels(conn, target: float) -> set[str]:
    return {label for label, (k, n) in audit_stats(conn).items()
            if clopper_pearson(k, n)[1] < target}


def ingest(db, pipe: Any, model_path: str | Path, data: Any, *, precision: float,
           audit_rate: float = 0.02, k: int = 5, source: str | None = None,
           random_state: int | None = 0) -> dict[str, Any]:
    """Predict ``data`` (a Dataset of texts or features) and store items, predictions,
    decisions and leases in one transaction (all or nothing). Returns the counts."""
    from sqlalchemy import insert, select

    from labelwise.serve.registry import model_version

    if not 0.0 < precision < 1.0:
        raise ReviewInputError(f"precision: expected 0 < P < 1, got {precision!r}")
    if not 0.0 <= audit_rate <= 1.0:
        raise ReviewInputError(f"audit_rate: expected 0 <= rate <= 1, got {audit_rate!r}")
    threshold = _certified(pipe, precision)
    model_path = Path(model_path)
    n = data.n_samples
    source = source or "data"
    ids = ([str(i) for i in data.ids] if data.ids is not None
           else [f"{source}:{i}" for i in range(n)])
    if len(set(ids)) != n:
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise ReviewInputError(f"{source}: item id {dup!r} given twice")
    texts = data.X if data.x_kind == "text" else None
    S, P, sets = pipe.score_and_sets(data.X, k=k)
    names = pipe.labels_.names
    rng = np.random.default_rng(random_state)
    now = utcnow()
    # positives known per label: the model's training positives plus the reviewed ones (the
    # label-frequency part of the queue's expected value, queue.expected_value)
    positives = {r["label"]: int(r["examples"] or 0) for r in pipe.label_info()}
    with db.engine.begin() as conn:
        paused = paused_labels(conn, precision)
        for label, c in reviewed_positives(conn).items():
            positives[label] = positives.get(label, 0) + c
        for start in range(0, n, 5000):
            clash = conn.execute(select(Item.id).where(Item.id.in_(ids[start:start + 5000]))
                                 .limit(1)).first()
            if clash is not None:
                raise ReviewInputError(f"{source}: item id {clash[0]!r} is already in the "
                                       "database")
        mv = conn.execute(insert(ModelVersion).returning(ModelVersion.id), [{
            "name": model_path.name, "version": model_version(model_path),
            "path": str(model_path.resolve()), "labels": list(names),
            "threshold": threshold if math.isfinite(threshold) else None,
            "target": float(precision), "created_at": now,
            "audit_rate": float(audit_rate)}]).scalar_one()
        # the random order's keys: uniform, from their own stream (the audit draw above is
        # unchanged by them), seeded per ingest so two ingests never share a key sequence
        rand_keys = np.random.default_rng(None if random_state is None else
                                          [random_state, int(mv)]).random(n)
        item_rows, pred_rows, counts = [], [], {"auto": 0, "queued": 0, "audit": 0}
        rows, cols, probs, chosen = _stored_candidates(P, sets, k)
        starts = np.searchsorted(rows, np.arange(n + 1))
        cols_l, probs_l, chosen_l = cols.tolist(), probs.tolist(), chosen.tolist()
        for i in range(n):
            a, b = int(starts[i]), int(starts[i + 1])
            held = {cols_l[j] for j in range(a, b) if chosen_l[j] and names[cols_l[j]] in paused}
            auto = {cols_l[j] for j in range(a, b) if chosen_l[j]} - held
            state = "queued"
            if auto:
                state = "audit" if rng.random() < audit_rate else "auto"
            counts[state] += 1
            d_auto = "auto" if state == "auto" else "audit"
            preds = [(names[cols_l[j]], probs_l[j], d_auto if cols_l[j] in auto else
                      "paused" if cols_l[j] in held else "queued") for j in range(a, b)]
            pri = 0.0 if state == "auto" else expected_value(
                [(lab, p) for lab, p, _ in preds], positives, audit=state == "audit")
            item_rows.append({"id": ids[i], "source": source,
                              "text": None if texts is None else str(texts[i]),
                              "features_ref": None if texts is not None else f"{source}#{i}",
                              "ingested_at": now, "state": state, "priority": float(pri),
                              "rand_key": float(rand_keys[i])})
            pred_rows.append(preds)
        (_copy_ingest if db.is_postgres else _sqlite_ingest)(conn, item_rows, pred_rows, mv)
    return {"items": n, **counts, "threshold": threshold, "paused": sorted(paused),
            "model_version": mv}


def _stored_candidates(P, sets, k: int) -> tuple[np.ndarray, ...]:
    """The candidates stored per item: its ``k`` most probable labels plus every label of
    its chosen set (the policy chooses among the tuning's top labels, more than ``k`` when
    the model was tuned with a larger k; the rest is not stored: a reviewer sees ``k``
    suggestions and the auto-accepted ones). Returns (row, column, probability, chosen)
    arrays ordered by row, then probability descending (ties in storage order)."""
    rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
    cols = P.indices.astype(np.int64)
    probs = P.data.astype(np.float64)
    order = np.lexsort((np.arange(rows.size), -probs, rows))
    rows, cols, probs = rows[order], cols[order], probs[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows)
    n_labels = np.int64(P.shape[1])
    set_rows = np.repeat(np.arange(sets.shape[0]), np.diff(sets.indptr))
    chosen = np.isin(rows * n_labels + cols,
                     set_rows * n_labels + sets.indices.astype(np.int64))
    keep = (rank < k) | chosen
    return rows[keep], cols[keep], probs[keep], chosen[keep]


_ITEM_COLUMNS = ("id", "source", "text", "features_ref", "ingested_at", "state", "priority",
                 "rand_key")


def _copy_ingest(conn, item_rows, pred_rows, mv: int) -> None:
    """PostgreSQL: the items, their predictions and leases by ``COPY ... FROM STDIN`` in the
    ingest's transaction (one statement a table instead of one a row: ~2x the rows/s of a
    pipelined executemany), the item pks drawn from their sequence first."""
    from sqlalchemy import text

    pks = conn.execute(text("SELECT nextval(pg_get_serial_sequence('items', 'pk')) "
                            "FROM generate_series(1, :n) ORDER BY 1"),
                       {"n": len(item_rows)}).scalars().all()
    cur = conn.connection.dbapi_connection.cursor()
    try:
        with cur.copy(f"COPY items (pk, {', '.join(_ITEM_COLUMNS)}) FROM STDIN") as cp:
            for pk, r in zip(pks, item_rows, strict=True):
                cp.write_row((pk, *(r[c] for c in _ITEM_COLUMNS)))
        with cur.copy("COPY predictions (item_pk, label, probability, model_version_id, "
                      "decision) FROM STDIN") as cp:
            for pk, preds in zip(pks, pred_rows, strict=True):
                for lab, p, d in preds:
                    cp.write_row((pk, lab, p, mv, d))
        with cur.copy("COPY leases (item_pk) FROM STDIN") as cp:
            for pk, r in zip(pks, item_rows, strict=True):
                if r["state"] != "auto":
                    cp.write_row((pk,))
    finally:
        cur.close()


def _sqlite_ingest(conn, item_rows, pred_rows, mv: int) -> None:
    """SQLite: the items, their predictions and leases by the driver's ``executemany`` on
    plain tuples in the ingest's transaction (``BEGIN IMMEDIATE``: the only writer, so the
    item pks after the largest one are free). Times as SQLAlchemy's SQLite DateTime writes
    them (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    from sqlalchemy import func, select

    start = (conn.execute(select(func.max(Item.pk))).scalar() or 0) + 1
    pks = range(start, start + len(item_rows))
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.executemany(
            f"INSERT INTO items (pk, {', '.join(_ITEM_COLUMNS)}) VALUES "
            f"(?, {', '.join('?' * len(_ITEM_COLUMNS))})",
            ((pk, *(_sqlite_value(r[c]) for c in _ITEM_COLUMNS))
             for pk, r in zip(pks, item_rows, strict=True)))
        cur.executemany("INSERT INTO predictions (item_pk, label, probability, "
                        "model_version_id, decision) VALUES (?, ?, ?, ?, ?)",
                        ((pk, lab, p, mv, d) for pk, preds in zip(pks, pred_rows, strict=True)
                         for lab, p, d in preds))
        cur.executemany("INSERT INTO leases (item_pk) VALUES (?)",
                        ((pk,) for pk, r in zip(pks, item_rows, strict=True)
                         if r["state"] != "auto"))
    finally:
        cur.close()


def _sqlite_value(v):
    import datetime as dt

    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return v


def label_status(conn) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    target = conn.execute(select(ModelVersion.target).order_by(ModelVersion.id.desc())
                          .limit(1)).scalar()
    per: dict[str, dict[str, Any]] = {}

    def row(label: str) -> dict[str, Any]:
        return per.setdefault(label, {"label": label, "auto_accepted": 0, "queued": 0,
                                      "reviewed": 0})

    q = (select(Prediction.label, Prediction.decision, func.count())
         .join(Item, Item.pk == Prediction.item_pk)
         .where(Item.state != "reviewed").group_by(Prediction.label, Prediction.decision))
    for label, decision, c in conn.execute(q):
        if decision == "auto":
            row(label)["auto_accepted"] += c
        else:
            row(label)["queued"] += c
    for accepted, added in conn.execute(select(Review.accepted, Review.added)):
        for label in set(accepted) | set(added):
            row(label)["reviewed"] += 1
    for label, (k, n) in audit_stats(conn).items():
        r = row(label)
        lo, hi = clopper_pearson(k, n)
        r.update(audited=n, audited_correct=k, audited_precision=k / n, interval=[lo, hi],
                 paused=target is not None and hi < target)
    for r in per.values():
        r.setdefault("audited", 0)
        r.setdefault("audited_correct", 0)
        r.setdefault("audited_precision", None)
        r.setdefault("interval", None)
        r.setdefault("paused", False)
    return sorted(per.values(), key=lambda r: r["label"])


def status(db) -> dict[str, Any]:
    """Item counts by state, reviews, target, and per-label figures (module docstring)."""
    from sqlalchemy import func, select

    with db.engine.connect() as conn:
        states = dict(conn.execute(select(Item.state, func.count()).group_by(Item.state)).all())
        target = conn.execute(select(ModelVersion.target).order_by(ModelVersion.id.desc())
                              .limit(1)).scalar()
        n_reviews = conn.execute(select(func.count()).select_from(Review)).scalar_one()
        k_all = n_all = 0
        for k, n in audit_stats(conn, ("audit",)).values():  # of what was auto-accepted
            k_all += k
            n_all += n
        items = auto_items(conn)
        labels = label_status(conn)
    audited = None
    if n_all:
        audited = {"audited": n_all, "correct": k_all, "precision": k_all / n_all,
                   "auto_accepted_labels": int(items["n_auto"].sum())}
        if np.isnan(items["rate"]).any():  # ingests from before the rate was recorded
            audited.update(interval=list(clopper_pearson(k_all, n_all)), method="binomial")
        else:
            from .audit import audited_precision_interval

            lo, hi = audited_precision_interval(
                items["n_auto"], items["audited"], items["reviewed"], items["wrong"],
                items["rate"], level=AUDIT_LEVEL)
            audited.update(interval=[lo, hi], method="confidence sequence")
    return {"target": target, "items": sum(states.values()),
            "auto_accepted": states.get("auto", 0),
            "queued": states.get("queued", 0) + states.get("audit", 0),
            "awaiting_audit": states.get("audit", 0), "reviewed": n_reviews,
            "audited_precision": audited, "labels": labels}


def decisions(conn):
    """(item id, labels, decided) of every decided item: auto-accepted items with their auto
    labels, reviewed items with the labels their reviewer kept or added; ordered by item."""
    from sqlalchemy import select

    auto: dict[int, list[str]] = {}
    for pk, label in conn.execute(
            select(Prediction.item_pk, Prediction.label).join(Item, Item.pk == Prediction.item_pk)
            .where(Item.state == "auto", Prediction.decision == "auto")
            .order_by(Prediction.item_pk, Prediction.probability.desc())):
        auto.setdefault(pk, []).append(label)
    reviews = {pk: (rev, acc, add) for pk, rev, acc, add in conn.execute(
        select(Review.item_pk, Review.reviewer, Review.accepted, Review.added))}
    for pk, item_id, state in conn.execute(select(Item.pk, Item.id, Item.state)
                                           .where(Item.state.in_(("auto", "reviewed")))
                                           .order_by(Item.pk)):
        if state == "auto":
            labels = auto.get(pk, [])
            yield item_id, labels, dict.fromkeys(labels, "auto")
        else:
            rev, acc, add = reviews[pk]
            labels = list(dict.fromkeys([*acc, *add]))
            yield item_id, labels, dict.fromkeys(labels, rev)


def export(db, out: str | Path) -> int:
    """Write the decided items as JSONL (``id``, ``labels``, ``decided``: label -> "auto" or
    the reviewer) atomically; returns the number of lines. The export is marked as a use of
    the reviews (they can no longer be undone: :func:`labelwise.review.queue.undo`) before
    the file appears."""
    from labelwise.atomic import atomic_write

    from .queue import reviews_in_use

    n = 0
    with atomic_write(out, "w", encoding="utf-8") as f:
        with reviews_in_use(db, "export", detail=str(out)[:500]) as use:
            for item_id, labels, decided in decisions(use.conn):
                f.write(json.dumps({"id": item_id, "labels": labels, "decided": decided},
                                   ensure_ascii=False) + "\n")
                n += 1
    return n


def reviewed_rows(db, *, include_auto: bool = False) -> list[tuple[str, str, list[str]]]:
    """(item id, text, labels) of reviewed items (and auto-accepted ones with
    ``include_auto``) that carry a text: the rows ``review learn`` feeds back."""
    with db.engine.connect() as conn:
        return learning_rows(conn, include_auto=include_auto)


def auto_item_ids(conn) -> set[str]:
    """Ids of the items decided by auto-accept (no person saw them)."""
    from sqlalchemy import select

    return set(conn.execute(select(Item.id).where(Item.state == "auto")).scalars())


def learning_rows(conn, *, include_auto: bool = False) -> list[tuple[str, str, list[str]]]:
    """:func:`reviewed_rows` read on an open connection (inside the caller's transaction)."""
    from sqlalchemy import select

    out = []
    texts = dict(conn.execute(select(Item.id, Item.text)).all())
    for item_id, labels, decided in decisions(conn):
        if texts.get(item_id) is None or not labels:
            continue
        if not include_auto and any(v == "auto" for v in decided.values()):
            continue
        out.append((item_id, texts[item_id], labels))
    return out
