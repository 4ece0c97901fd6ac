"""An index on reviews (reviewer, created_at): a reviewer's progress and items per hour.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_index("ix_reviews_reviewer_created", "reviews", ["reviewer", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_reviews_reviewer_created", "reviews")
