"""Errors of the review loop (all :class:`labelwise.errors.LabelwiseError`); ``status`` is the
HTTP status the server answers with::

    ReviewError (400)
    ├── SchemaVersionError        (500) a database this labelwise cannot use as it is
    ├── DatabaseUnavailableError  (503) the database does not answer
    ├── ReviewNotFoundError       (404) an item id the database does not hold
    ├── ReviewInputError          (422) a bad field: names it (``accepted[2]: ...``)
    └── LeaseConflictError        (409) no lease on the item, or another reviewer holds it
"""

from __future__ import annotations

from labelwise.errors import LabelwiseError

__all__ = ["DatabaseUnavailableError", "LeaseConflictError", "ReviewError", "ReviewInputError",
           "ReviewNotFoundError", "SchemaVersionError"]


class ReviewError(LabelwiseError):
    status = 400


class SchemaVersionError(ReviewError):
    status = 500


class DatabaseUnavailableError(ReviewError):
    status = 503


class ReviewNotFoundError(ReviewError, KeyError):
    status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ReviewInputError(ReviewError, ValueError):
    status = 422


class LeaseConflictError(ReviewError):
    status = 409


class NothingToLearnError(ReviewError):
    """No reviewed item (with a text and labels) to learn from (409: the database's state)."""

    status = 409


__all__ += ["NothingToLearnError"]
