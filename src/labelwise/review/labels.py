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
    """Label names and their lower-case forms, searched by :meth:`search`.

    Typing asks for a query, then for longer ones holding it ("z", "ze", "zeb"): the matches
    of a recent query (up to :attr:`CACHE` of them are kept) that the new query contains are
    the only names that can match it, so each keystroke scans fewer names."""

    CACHE = 256

    def __init__(self, names: list[str]) -> None:
        import threading
        from collections import OrderedDict

        self.names = list(names)
        self.lower = [n.lower() for n in self.names]
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        self._lock = threading.Lock()

    def _matches(self, needle: str) -> list[int]:
        """Indices (ascending) of the names containing ``needle`` (lower case)."""
        with self._lock:
            hit = self._cache.get(needle)
            if hit is not None:
                self._cache.move_to_end(needle)
                return hit
            base = None
            for q, h in self._cache.items():
                if q in needle and (base is None or len(h) < len(base)):
                    base = h
        low = self.lower
        if base is None:
            hit = [j for j, n in enumerate(low) if needle in n]
        else:
            hit = [j for j in base if needle in low[j]]
        with self._lock:
            self._cache[needle] = hit
            while len(self._cache) > self.CACHE:
                self._cache.popitem(last=False)
        return hit

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
            low = self.lower
            matches = self._matches(needle)
            first = [j for j in matches if low[j].startswith(needle)]
            if len(first) >= offset + limit:
                hits, total = first, len(matches)
            else:
                hits = first + [j for j in matches if not low[j].startswith(needle)]
                total = len(hits)
        else:
            hits, total = range(len(self.names)), len(self.names)
        return {"total": total, "offset": offset, "limit": limit,
                "labels": [self.names[j] for j in hits[offset:offset + limit]]}
