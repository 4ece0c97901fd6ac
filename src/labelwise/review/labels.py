"""The label names a review database knows (the ones ``added`` may name: every label of every
model version ingested) and a paged search over them, fast for 30,000 labels and more.

:func:`label_names` reads them (in model-version order, first appearance kept);
:class:`LabelIndex` holds them with their lower-case forms and answers
:meth:`~LabelIndex.search`: names starting with the query (any case) first, then names
containing it, each group in the stored order; paged by ``offset`` / ``limit``.
"""

from __future__ import annotations

from typing import Any

from .errors import ReviewInputError

__all__ = ["LabelIndex", "label_names", "labels_key"]

MAX_QUERY = 200
MAX_LIMIT = 1000


def labels_key(db) -> tuple[int, int]:
    """Changes whenever a model version is added: (count, highest id) of model_versions."""
    from sqlalchemy import func, select

    from .models import ModelVersion

    with db.engine.connect() as conn:
        n, top = conn.execute(select(func.count(), func.max(ModelVersion.id))).one()
    return int(n), int(top or 0)


def label_names(db) -> list[str]:
    from sqlalchemy import select

    from .models import ModelVersion

    seen: dict[str, None] = {}
    with db.engine.connect() as conn:
        for labels in conn.execute(select(ModelVersion.labels).order_by(ModelVersion.id)).scalars():
            seen.update(dict.fromkeys(labels))
    return list(seen)


class LabelIndex:
    """Label names and their lower-case forms, searched by :meth:`search`."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.lower = [n.lower() for n in self.names]

    def search(self, q: str | None, *, offset: int = 0, limit: int = 20) -> dict[str, Any]:
        """``{"total", "offset", "limit", "labels"}``: the names matching ``q`` (all when
        empty), prefix matches first."""
        if q is not None and (not isinstance(q, str) or len(q) > MAX_QUERY):
            raise ReviewInputError(f"q: expected at most {MAX_QUERY} characters")
        if not (isinstance(offset, int) and offset >= 0):
            raise ReviewInputError(f"offset: expected an integer >= 0, got {offset!r}")
        if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
            raise ReviewInputError(f"limit: expected 1 <= limit <= {MAX_LIMIT}, got {limit!r}")
        if q:
            needle = q.lower()
            first = [j for j, n in enumerate(self.lower) if n.startswith(needle)]
            rest = [j for j, n in enumerate(self.lower) if needle in n and not n.startswith(needle)]
            hits = first + rest
        else:
            hits = range(len(self.names))
        return {"total": len(hits), "offset": offset, "limit": limit,
                "labels": [self.names[j] for j in hits[offset:offset + limit]]}
