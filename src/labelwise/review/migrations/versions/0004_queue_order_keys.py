"""The queue's order keys and their indexes: ``items.rand_key`` (uniform, the random order's
key; filled for the items already stored) and one partial index per order over the open
items (state queued or audit): (priority DESC, pk), (ingested_at, pk), (rand_key, pk); and
leases (reviewer, expires_at) over held leases (a reviewer's own lease). With them the next
item is read from the head of an index, not found by sorting the queue (1M items queued:
see benchmarks/review.py). The former (state, priority) index goes: the partial index
replaces it, and SQLite's planner preferred it (then sorted the whole queue: 14 s a next
item at 1M queued).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

OPEN = sa.text("state IN ('queued', 'audit')")
HELD = sa.text("reviewer IS NOT NULL")


def upgrade() -> None:
    op.add_column("items", sa.Column("rand_key", sa.Float, nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # random() is a 64-bit integer there: map it to [0, 1)
        op.execute("UPDATE items SET rand_key = (random() / 18446744073709551616.0) + 0.5")
    else:
        op.execute("UPDATE items SET rand_key = random()")
    op.drop_index("ix_items_state_priority", "items")
    op.create_index("ix_items_open_priority", "items", [sa.text("priority DESC"), "pk"],
                    sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_index("ix_items_open_oldest", "items", ["ingested_at", "pk"],
                    sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_index("ix_items_open_random", "items", ["rand_key", "pk"],
                    sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_index("ix_leases_reviewer", "leases", ["reviewer", "expires_at"],
                    sqlite_where=HELD, postgresql_where=HELD)


def downgrade() -> None:
    for name, table in (("ix_leases_reviewer", "leases"), ("ix_items_open_random", "items"),
                        ("ix_items_open_oldest", "items"), ("ix_items_open_priority", "items")):
        op.drop_index(name, table)
    op.create_index("ix_items_state_priority", "items", ["state", "priority"])
    with op.batch_alter_table("items") as batch:
        batch.drop_column("rand_key")
