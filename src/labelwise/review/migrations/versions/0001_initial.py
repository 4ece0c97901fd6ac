"""The first schema: items, model_versions, predictions, reviews, leases.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from labelwise.review.models import UTCDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("target", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False))
    op.create_table(
        "items",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(500), nullable=False, unique=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("features_ref", sa.Text, nullable=True),
        sa.Column("ingested_at", UTCDateTime, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Float, nullable=False))
    op.create_index("ix_items_state_priority", "items", ["state", "priority"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_pk", sa.Integer, sa.ForeignKey("items.pk", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("label", sa.String(500), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"),
                  nullable=False),
        sa.Column("decision", sa.String(16), nullable=False))
    op.create_index("ix_predictions_item_pk", "predictions", ["item_pk"])
    op.create_index("ix_predictions_label_decision", "predictions", ["label", "decision"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_pk", sa.Integer, sa.ForeignKey("items.pk", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("accepted", sa.JSON, nullable=False),
        sa.Column("rejected", sa.JSON, nullable=False),
        sa.Column("added", sa.JSON, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("audit", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False))
    op.create_table(
        "leases",
        sa.Column("item_pk", sa.Integer, sa.ForeignKey("items.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    for name in ("leases", "reviews", "predictions", "items", "model_versions"):
        op.drop_table(name)
