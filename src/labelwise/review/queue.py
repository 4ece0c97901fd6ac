"""The review queue: leases and submissions.

``lease_next``: the reviewer's current lease if one is alive, else the next free item
(state queued or audit, no live lease) in the queue's order: ``"uncertainty"`` (the
expected value of a review, from uncertainty and label frequency, below), ``"oldest"``
(ingest order) or ``"random"`` (for unbiased estimates: each item draws a uniform
``rand_key`` at ingest and the queue follows it, so any prefix is a uniform sample of the
items queued). Every order is a key precomputed on ``items`` and served by a partial index
over the open items (migration 0004): the next item is read from the head of an index, not
found by sorting the queue. Two reviewers never hold one item: on PostgreSQL the candidate row is locked with ``SELECT ... FOR UPDATE SKIP LOCKED``; on
SQLite the transaction is ``BEGIN IMMEDIATE`` and the lease is taken by a conditional
``UPDATE ... WHERE reviewer IS NULL OR expires_at < now`` (rowcount 1 or the item is left).
A lease lasts ``lease_seconds`` (default 600); once expired the item returns to the queue.

``submit``: in one transaction, checks the fields (unknown labels, bad numbers: 422 naming
the field), the item (404), and the lease: the review is stored only when this reviewer holds
the item's lease (expired but not taken by anyone else is accepted); a lease taken by another
reviewer, an item never leased to this reviewer, or one already reviewed is a 409 and nothing
is written. The unique review per item backs this in the schema.

Expected value of a review (``items.priority``, computed at ingest by
:func:`expected_value`): a review settles every candidate label of the item; settling
candidate ``j`` with calibrated probability ``p_j`` is worth its uncertainty, the Bernoulli
variance scaled to 1 at p = 1/2, times the rarity of the label::

    value(item) = sum over candidates j of  4 p_j (1 - p_j) / sqrt(1 + n_j)

``n_j``: the positives of label ``j`` known when the item is ingested, the model's training
positives (``Pipeline.label_info``) plus the reviewed items that kept ``j`` (accepted or
added). A review of a rare label teaches the model more than one of a label it has seen a
thousand times (``1/sqrt(1 + n)``: 1 for an unseen label, 0.1 at 99 positives), and a
candidate the model is sure of (p near 0 or 1) teaches little. Audits come first (they check
the promise auto-accept makes): their key is ``AUDIT_FIRST`` plus their value. The key is
fixed at ingest: reviews made later do not reorder items already queued.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Any

from .errors import LeaseConflictError, ReviewInputError, ReviewNotFoundError
from .models import Item, Lease, ModelVersion, Prediction, Review, utcnow

__all__ = ["AUDIT_FIRST", "ORDERS", "LEASE_SECONDS", "expected_value", "item_view",
           "lease_next", "release", "submit"]

ORDERS = ("uncertainty", "oldest", "random")
OPEN_STATES = ("queued", "audit")
#: added to an audit's value: audits come before every other item (a value is at most the
#: number of candidates, far below this)
AUDIT_FIRST = 1e6
LEASE_SECONDS = 600.0
MAX_NAME = 200
MAX_LABELS = 1000


def _check_reviewer(reviewer: Any) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > MAX_NAME:
        raise ReviewInputError(f"reviewer: expected a non-empty name of at most {MAX_NAME} "
                               f"characters, got {str(reviewer)[:40]!r}")
    return reviewer


def expected_value(candidates: list[tuple[str, float]], positives: dict[str, int], *,
                   audit: bool = False) -> float:
    """The queue key of an item (module docstring): ``candidates`` its (label, calibrated
    probability) pairs, ``positives`` label -> positives known (absent: 0)."""
    value = 0.0
    for label, p in candidates:
        value += 4.0 * p * (1.0 - p) / math.sqrt(1.0 + max(int(positives.get(label, 0)), 0))
    return AUDIT_FIRST + value if audit else value


def _order(order: str):
    """The ORDER BY of ``order``: each one matches a partial index of migration 0004."""
    if order == "uncertainty":
        return (Item.priority.desc(), Item.pk)
    if order == "oldest":
        return (Item.ingested_at, Item.pk)
    if order == "random":
        return (Item.rand_key, Item.pk)
    raise ReviewInputError(f"order: expected one of {', '.join(ORDERS)}, got {order!r}")


def _open_items():
    """``items.state IN ('queued', 'audit')`` with the states as literals in the SQL: a
    partial index over the open items is usable only when the query's condition is written
    as the index's own (SQLite does not match bound parameters against it)."""
    from sqlalchemy import bindparam

    return Item.state.in_(bindparam("open_states", list(OPEN_STATES), expanding=True,
                                    literal_execute=True))


@functools.cache
def _statements(order: str, postgres: bool):
    """The statements of :func:`lease_next`, built once (their construction cost more than
    their run on a long queue); parameters ``now``, ``who`` (the reviewer), ``item`` (a pk), ``until``."""
    from sqlalchemy import and_, bindparam, or_, select, update

    open_items = _open_items()
    free = or_(Lease.reviewer.is_(None), Lease.expires_at < bindparam("now"))
    own = (select(Lease.item_pk, Lease.expires_at).join(Item, Item.pk == Lease.item_pk)
           .where(Lease.reviewer == bindparam("who"), Lease.expires_at >= bindparam("now"),
                  open_items)
           .order_by(Lease.expires_at).limit(1))
    nxt = (select(Item.pk).join(Lease, Lease.item_pk == Item.pk).where(open_items, free)
           .order_by(*_order(order)).limit(1))
    if postgres:
        nxt = nxt.with_for_update(skip_locked=True, of=Lease)
    # the item is checked again in this statement's own snapshot: on PostgreSQL a row
    # locked after a wait is re-read, but the joined item row is not
    still_open = select(Item.pk).where(Item.pk == bindparam("item"), open_items)
    take = (update(Lease).where(and_(Lease.item_pk == bindparam("item"), free,
                                     Lease.item_pk.in_(still_open)))
            .values(reviewer=bindparam("who"), expires_at=bindparam("until")))
    return own, nxt, take


def next_item_query(order: str, *, postgres: bool):
    """SELECT the pk of the first free open item in ``order`` (locked, skipping locked rows,
    on PostgreSQL); its parameter ``now`` is the time leases expire against."""
    return _statements(order, postgres)[1]


def item_view(conn, pk: int, lease: dict[str, Any] | None = None) -> dict[str, Any]:
    from sqlalchemy import select

    it = conn.execute(select(Item.id, Item.source, Item.text, Item.features_ref,
                             Item.ingested_at, Item.state).where(Item.pk == pk)).one()
    preds = conn.execute(select(Prediction.label, Prediction.probability, Prediction.decision)
                         .where(Prediction.item_pk == pk)
                         .order_by(Prediction.probability.desc(), Prediction.id)).all()
    return {"id": it.id, "source": it.source, "text": it.text, "features_ref": it.features_ref,
            "ingested_at": it.ingested_at.isoformat(), "audit": it.state == "audit",
            "state": it.state,
            "suggestions": [{"label": lab, "probability": p, "decision": d}
                            for lab, p, d in preds],
            **({"lease": lease} if lease else {})}


def lease_next(db, reviewer: str, *, order: str = "uncertainty",
               lease_seconds: float = LEASE_SECONDS, now: dt.datetime | None = None
               ) -> dict[str, Any] | None:
    """Lease the next item to ``reviewer`` (module docstring); None when the queue is empty."""
    _check_reviewer(reviewer)
    if not (isinstance(lease_seconds, int | float) and 0 < lease_seconds <= 86400):
        raise ReviewInputError(f"lease_seconds: expected 0 < seconds <= 86400, got "
                               f"{lease_seconds!r}")
    _order(order)  # checked before any work
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=float(lease_seconds))
    own_q, next_q, take_q = _statements(order, db.is_postgres)
    with db.engine.begin() as conn:
        own = conn.execute(own_q, {"who": reviewer, "now": now}).first()
        if own is not None:
            return item_view(conn, own[0], {"reviewer": reviewer,
                                            "expires_at": own[1].isoformat()})
        for _ in range(20):
            pk = conn.execute(next_q, {"now": now}).scalar()
            if pk is None:
                return None
            got = conn.execute(take_q, {"item": pk, "now": now, "who": reviewer,
                                        "until": expires}).rowcount
            if got == 1:
                return item_view(conn, pk, {"reviewer": reviewer,
                                            "expires_at": expires.isoformat()})
        return None  # pragma: no cover - only under extreme contention


def _names(field: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ReviewInputError(f"{field}: expected a list of label names")
    if len(value) > MAX_LABELS:
        raise ReviewInputError(f"{field}: {len(value)} labels, at most {MAX_LABELS}")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v:
            raise ReviewInputError(f"{field}[{i}]: expected a label name, got {v!r}")
    if len(set(value)) != len(value):
        dup = next(v for i, v in enumerate(value) if v in value[:i])
        raise ReviewInputError(f"{field}: label {dup!r} given twice")
    return value


def _lease_row(conn, db, pk: int):
    from sqlalchemy import select

    q = select(Lease.reviewer, Lease.expires_at).where(Lease.item_pk == pk)
    if db.is_postgres:
        q = q.with_for_update()
    return conn.execute(q).first()


def submit(db, item_id: str, reviewer: str, *, accepted: list[str], rejected: list[str] = (),
           added: list[str] = (), seconds: float = 0.0, now: dt.datetime | None = None
           ) -> dict[str, Any]:
    """Store one review (module docstring); returns it as a dict."""
    from sqlalchemy import delete, insert, select, update

    _check_reviewer(reviewer)
    accepted = _names("accepted", list(accepted) if isinstance(accepted, tuple) else accepted)
    rejected = _names("rejected", list(rejected) if isinstance(rejected, tuple) else rejected)
    added = _names("added", list(added) if isinstance(added, tuple) else added)
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
            or not math.isfinite(seconds) or not 0 <= seconds <= 86400):
        raise ReviewInputError(f"seconds: expected 0 <= seconds <= 86400, got {seconds!r}")
    both = set(accepted) & set(rejected)
    if both:
        raise ReviewInputError(f"rejected: {sorted(both)[0]!r} is also in accepted")
    now = now or utcnow()
    with db.engine.begin() as conn:
        row = conn.execute(select(Item.pk, Item.state).where(Item.id == str(item_id))).first()
        if row is None:
            raise ReviewNotFoundError(f"item_id: no item {str(item_id)[:100]!r} in the database")
        pk, state = row
        suggested = set(conn.execute(select(Prediction.label)
                                     .where(Prediction.item_pk == pk)).scalars())
        for field, names in (("accepted", accepted), ("rejected", rejected)):
            for i, name in enumerate(names):
                if name not in suggested:
                    raise ReviewInputError(f"{field}[{i}]: {name!r} is not a suggested label of "
                                           f"item {item_id!r} (new labels go in added)")
        known = set()
        for labels in conn.execute(select(ModelVersion.labels)).scalars():
            known.update(labels)
        for i, name in enumerate(added):
            if name in suggested:
                raise ReviewInputError(f"added[{i}]: {name!r} is a suggested label (accept it)")
            if name not in known:
                raise ReviewInputError(f"added[{i}]: unknown label name {name!r}")
        lease = _lease_row(conn, db, pk)
        if state == "reviewed":
            raise LeaseConflictError(f"item_id: item {item_id!r} was already reviewed; "
                                     "nothing stored")
        if state == "auto" or lease is None or lease.reviewer is None:
            raise LeaseConflictError(f"item_id: item {item_id!r} is not leased to {reviewer!r}; "
                                     "lease it first (GET next); nothing stored")
        if lease.reviewer != reviewer:
            raise LeaseConflictError(f"item_id: item {item_id!r} is not leased to {reviewer!r}: "
                                     "another reviewer holds it (a lease that expired went back "
                                     "to the queue); nothing stored")
        conn.execute(insert(Review).values(
            item_pk=pk, reviewer=reviewer, accepted=accepted, rejected=rejected, added=added,
            seconds=float(seconds), audit=state == "audit", created_at=now))
        conn.execute(update(Item).where(Item.pk == pk).values(state="reviewed"))
        # a decided item has no lease row: a concurrent lease_next waiting on this row
        # finds it gone (PostgreSQL) instead of a free lease on a reviewed item
        conn.execute(delete(Lease).where(Lease.item_pk == pk))
    return {"id": str(item_id), "reviewer": reviewer, "accepted": accepted,
            "rejected": rejected, "added": added, "seconds": float(seconds),
            "audit": state == "audit", "created_at": now.isoformat()}


def release(db, item_id: str, reviewer: str) -> bool:
    """Give a leased item back (skip): True when this reviewer held it."""
    from sqlalchemy import select, update

    _check_reviewer(reviewer)
    with db.engine.begin() as conn:
        pk = conn.execute(select(Item.pk).where(Item.id == str(item_id))).scalar()
        if pk is None:
            raise ReviewNotFoundError(f"item_id: no item {str(item_id)[:100]!r} in the database")
        got = conn.execute(update(Lease).where(Lease.item_pk == pk, Lease.reviewer == reviewer)
                           .values(reviewer=None, expires_at=None)).rowcount
    return got == 1


# ---------------------------------------------------------------------------- undo, skip, uses
# (added after the queue above; they reuse it without changing it)
import contextlib  # noqa: E402

#: a lease holder that is no reviewer: held by it, an item is neither free nor anyone's own
#: (used for a moment by :func:`skip`; such a lease expires after SKIP_HOLD_SECONDS)
SKIP_HOLDER = "\x1fskip"
SKIP_HOLD_SECONDS = 30.0
USE_KINDS = ("export", "learn")


#: the PostgreSQL advisory lock that serialises undo with the uses of reviews
USES_LOCK = 720_2020


def _lock_uses(conn, db) -> None:
    """Serialise this transaction with undo and the other uses of reviews: a transaction-level
    advisory lock on PostgreSQL; on SQLite every transaction is one at a time already
    (``BEGIN IMMEDIATE``)."""
    if db.is_postgres:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({USES_LOCK})")


class ReviewUseNote:
    """What :func:`reviews_in_use` yields: ``conn`` (read the reviews on it); once the block
    ended, ``id`` and ``up_to_review_id`` of the use noted."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.id: int | None = None
        self.up_to_review_id: int | None = None


@contextlib.contextmanager
def reviews_in_use(db, kind: str, *, detail: str | None = None):
    """A transaction in which the caller reads the reviews for an export or a learn
    (``kind``) on the yielded note's ``conn``; when the block ends without an error, the
    same transaction notes the use (:class:`~labelwise.review.models.ReviewUse`, up to the
    highest review id), so every review read can no longer be undone, and no undo can slip
    between the read and the note. An error in the block notes nothing."""
    from sqlalchemy import func, insert, select

    from .models import ReviewUse

    if kind not in USE_KINDS:
        raise ReviewInputError(f"kind: expected one of {', '.join(USE_KINDS)}, got {kind!r}")
    with db.engine.begin() as conn:
        _lock_uses(conn, db)
        note = ReviewUseNote(conn)
        yield note
        up_to = int(conn.execute(select(func.max(Review.id))).scalar() or 0)
        note.id = conn.execute(
            insert(ReviewUse).returning(ReviewUse.id)
            .values(kind=kind, up_to_review_id=up_to, detail=detail,
                    created_at=utcnow())).scalar_one()
        note.up_to_review_id = up_to


def forget_use(db, use_id: int) -> None:
    """Remove a use noted by :func:`reviews_in_use` whose work then failed (a learn whose
    model was not saved): its reviews can be undone again."""
    from sqlalchemy import delete

    from .models import ReviewUse

    with db.engine.begin() as conn:
        conn.execute(delete(ReviewUse).where(ReviewUse.id == int(use_id)))


def max_review_id(db) -> int:
    """The highest review id stored now (0 when none)."""
    from sqlalchemy import func, select

    with db.engine.connect() as conn:
        return conn.execute(select(func.max(Review.id))).scalar() or 0


def undo(db, item_id: str, reviewer: str, *, lease_seconds: float = LEASE_SECONDS,
         now: dt.datetime | None = None) -> dict[str, Any]:
    """Undo ``reviewer``'s last submission, the review of ``item_id``, in one transaction:
    the review row is removed, the item returns to its state before the review (queued, or
    audit) and is leased to ``reviewer`` for ``lease_seconds``. Returns the item as
    :func:`lease_next` does, with the undone review under ``"undone"``.

    Refused, with nothing changed: an unknown item (404); an item not reviewed, reviewed by
    another reviewer, or not this reviewer's last review (only the last submission can be
    undone; 409); a review that was already used by an export or a learn (its id is at
    most the ``up_to_review_id`` of a use noted by :func:`reviews_in_use`; 409). Runs under
    the uses' lock, so an export or a learn reads the reviews either before or after it."""
    from sqlalchemy import delete, func, insert, select, update

    from .models import ReviewUse

    _check_reviewer(reviewer)
    if not (isinstance(lease_seconds, int | float) and not isinstance(lease_seconds, bool)
            and 0 < lease_seconds <= 86400):
        raise ReviewInputError(f"lease_seconds: expected 0 < seconds <= 86400, got "
                               f"{lease_seconds!r}")
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=float(lease_seconds))
    with db.engine.begin() as conn:
        _lock_uses(conn, db)
        pk = conn.execute(select(Item.pk).where(Item.id == str(item_id))).scalar()
        if pk is None:
            raise ReviewNotFoundError(f"item_id: no item {str(item_id)[:100]!r} in the database")
        q = select(Review).where(Review.item_pk == pk)
        if db.is_postgres:
            q = q.with_for_update()
        rev = conn.execute(q).first()
        if rev is None:
            raise LeaseConflictError(f"item_id: item {item_id!r} has no review to undo; "
                                     "nothing changed")
        if rev.reviewer != reviewer:
            raise LeaseConflictError(f"item_id: item {item_id!r} was reviewed by another "
                                     f"reviewer, not {reviewer!r}: only one's own last "
                                     "submission can be undone; nothing changed")
        last = conn.execute(select(Review.id).where(Review.reviewer == reviewer)
                            .order_by(Review.created_at.desc(), Review.id.desc())
                            .limit(1)).scalar()
        if last != rev.id:
            raise LeaseConflictError(f"item_id: item {item_id!r} is not {reviewer!r}'s last "
                                     "submission (only the last one can be undone); nothing "
                                     "changed")
        used = conn.execute(select(func.max(ReviewUse.up_to_review_id))).scalar()
        if used is not None and rev.id <= used:
            kind = conn.execute(select(ReviewUse.kind).where(ReviewUse.up_to_review_id >= rev.id)
                                .order_by(ReviewUse.id).limit(1)).scalar()
            raise LeaseConflictError(f"item_id: the review of item {item_id!r} was already "
                                     f"used by {'an' if kind == 'export' else 'a'} {kind} and "
                                     "can no longer be undone; nothing changed")
        state = "audit" if rev.audit else "queued"
        conn.execute(delete(Review).where(Review.id == rev.id))
        conn.execute(update(Item).where(Item.pk == pk).values(state=state))
        conn.execute(delete(Lease).where(Lease.item_pk == pk))  # none: a reviewed item has none
        conn.execute(insert(Lease).values(item_pk=pk, reviewer=reviewer, expires_at=expires))
        out = item_view(conn, pk, {"reviewer": reviewer, "expires_at": expires.isoformat()})
    out["undone"] = {"reviewer": rev.reviewer, "accepted": rev.accepted,
                     "rejected": rev.rejected, "added": rev.added, "seconds": rev.seconds,
                     "created_at": rev.created_at.isoformat()}
    return out


def skip(db, item_id: str, reviewer: str, *, order: str = "uncertainty",
         lease_seconds: float = LEASE_SECONDS) -> dict[str, Any] | None:
    """Skip the item ``reviewer`` holds: lease them the next other item (as
    :func:`lease_next`), then give the skipped one back to the queue, free for anyone (the
    skipper included, later). None when no other item is left (the skipped one is given
    back all the same). 404 unknown item; 409 when the item is not leased to ``reviewer``.

    How: the skipped item's lease moves to :data:`SKIP_HOLDER` (neither free nor the
    reviewer's own) while :func:`lease_next` runs, then is released. Three short
    transactions; a crash between them leaves a hold that expires after
    :data:`SKIP_HOLD_SECONDS`, nothing else."""
    from sqlalchemy import select, update

    _check_reviewer(reviewer)
    _order(order)
    now = utcnow()
    with db.engine.begin() as conn:
        pk = conn.execute(select(Item.pk).where(Item.id == str(item_id))).scalar()
        if pk is None:
            raise ReviewNotFoundError(f"item_id: no item {str(item_id)[:100]!r} in the database")
        got = conn.execute(update(Lease).where(Lease.item_pk == pk, Lease.reviewer == reviewer)
                           .values(reviewer=SKIP_HOLDER, expires_at=now + dt.timedelta(
                               seconds=SKIP_HOLD_SECONDS))).rowcount
        if got != 1:
            raise LeaseConflictError(f"item_id: item {item_id!r} is not leased to {reviewer!r};"
                                     " nothing changed")
    try:
        nxt = lease_next(db, reviewer, order=order, lease_seconds=lease_seconds)
    finally:
        with db.engine.begin() as conn:
            conn.execute(update(Lease).where(Lease.item_pk == pk, Lease.reviewer == SKIP_HOLDER)
                         .values(reviewer=None, expires_at=None))
    return nxt


__all__ += ["SKIP_HOLDER", "ReviewUseNote", "forget_use", "max_review_id", "reviews_in_use", "skip", "undo"]
