"""The review database's tables (SQLAlchemy 2 declarative), one schema for SQLite and
PostgreSQL. Every time is a timezone-aware UTC datetime (stored naive in UTC on SQLite,
``timestamptz`` on PostgreSQL; :class:`UTCDateTime` gives them back aware).

items          one row per ingested item: its id (the user's), source, text or a features
               reference, ingested_at; ``state`` (auto | queued | audit | reviewed) and
               ``priority`` (the queue's expected-value key) and ``rand_key`` (uniform: the
               random order's key); the open items (queued, audit) have a partial index per
               order
model_versions the model that predicted (one row per ingest): name, version (sha256 of
               its manifest), path, label names, certified threshold and target, and the
               ingest's audit rate (NULL in ingests before it was recorded)
predictions    (item, label, probability, model version, decision: auto | queued | audit |
               paused: chosen by the policy, its label paused, sent to people)
reviews        (item, reviewer, accepted / rejected / added label names, seconds, created_at);
               one review per item (unique item_pk): each item is decided once
leases         (item, reviewer, expires_at): a row per item waiting for people (deleted when
               it is reviewed); reviewer NULL when free
review_uses    (kind: export | learn, up_to_review_id, detail, created_at): each use of the
               reviews; a review with an id up to a use's ``up_to_review_id`` may have been
               exported or learned from, so it can no longer be undone
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Item", "Lease", "ModelVersion", "Prediction", "Review", "ReviewUse", "utcnow"]

ITEM_STATES = ("auto", "queued", "audit", "reviewed")
DECISIONS = ("auto", "queued", "audit", "paused")
#: the open items (waiting for people): the condition of the queue's partial indexes
OPEN_SQL = text("state IN ('queued', 'audit')")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """A datetime stored in UTC and read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    labels: Mapped[list] = mapped_column(JSON)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    target: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    audit_rate: Mapped[float | None] = mapped_column(Float, nullable=True)


class Item(Base):
    __tablename__ = "items"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(500), unique=True)
    source: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    features_ref: Mapped[str | None] = mapped_column(Text, nullable=True)
    ingested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    rand_key: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (
        Index("ix_items_open_oldest", "ingested_at", "pk",
              sqlite_where=OPEN_SQL, postgresql_where=OPEN_SQL),
        Index("ix_items_open_random", "rand_key", "pk",
              sqlite_where=OPEN_SQL, postgresql_where=OPEN_SQL),
    )


# the queue's orders (review/queue.py _order): one partial index each over the open items
Index("ix_items_open_priority", Item.priority.desc(), Item.pk,
      sqlite_where=OPEN_SQL, postgresql_where=OPEN_SQL)


class Prediction(Base):
    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("items.pk", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(500))
    probability: Mapped[float] = mapped_column(Float)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    decision: Mapped[str] = mapped_column(String(16))
    __table_args__ = (Index("ix_predictions_label_decision", "label", "decision"),)


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("items.pk", ondelete="CASCADE"),
                                         unique=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    accepted: Mapped[list] = mapped_column(JSON)
    rejected: Mapped[list] = mapped_column(JSON)
    added: Mapped[list] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    audit: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (Index("ix_reviews_reviewer_created", "reviewer", "created_at"),)


class Lease(Base):
    __tablename__ = "leases"
    # a reviewer's own lease (review/queue.py lease_next), over held leases only
    __table_args__ = (Index("ix_leases_reviewer", "reviewer", "expires_at",
                            sqlite_where=text("reviewer IS NOT NULL"),
                            postgresql_where=text("reviewer IS NOT NULL")),)
    item_pk: Mapped[int] = mapped_column(ForeignKey("items.pk", ondelete="CASCADE"),
                                         primary_key=True)
    reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReviewUse(Base):
    __tablename__ = "review_uses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    up_to_review_id: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
