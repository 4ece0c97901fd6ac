"""The review loop: auto-accept what a certified precision target allows, send the rest
(and an audited share) to people, keep every decision in a database (SQLite by default,
PostgreSQL by URL). Needs the ``[review]`` extra (SQLAlchemy, Alembic; psycopg for
PostgreSQL). See :mod:`labelwise.review.loop`, :mod:`labelwise.review.queue`,
:mod:`labelwise.review.db`."""

from .db import Database, open_db
from .errors import (
    DatabaseUnavailableError,
    LeaseConflictError,
    ReviewError,
    ReviewInputError,
    ReviewNotFoundError,
    SchemaVersionError,
)

__all__ = ["Database", "DatabaseUnavailableError", "LeaseConflictError", "ReviewError",
           "ReviewInputError", "ReviewNotFoundError", "SchemaVersionError", "open_db"]
