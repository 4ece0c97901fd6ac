"""Alembic environment of the review database: run programmatically by
:func:`labelwise.review.db.migrate` with the connection in ``config.attributes``."""

from alembic import context

from labelwise.review.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
