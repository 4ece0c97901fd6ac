"""A table of the uses of reviews (an export, a learn): a review stored before one can no
longer be undone.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from labelwise.review.models import UTCDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "review_uses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("up_to_review_id", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False))


def downgrade() -> None:
    op.drop_table("review_uses")
