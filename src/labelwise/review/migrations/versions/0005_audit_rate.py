"""``model_versions.audit_rate``: the probability with which an ingest sent an item with
auto-accepted labels to an audit. The audited precision's interval
(:mod:`labelwise.review.audit`) needs each item's audit probability; ingests made before
this revision recorded none (NULL), and their items' audits are summarised by the plain
binomial interval instead (``status`` says which).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("audit_rate", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "audit_rate")
