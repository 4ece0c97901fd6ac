"""The review loop's routes (``/v1/review/...``), on when the server has a review database
(``labelwise serve ... --review-db URL``). Every write (ingest, lease, review, release)
needs the bearer token. Errors are problem+json naming the field: unknown item 404, bad
field 422, lease conflict 409, body too large 413, database unreachable 503.

- ``GET /v1/review/status``: the figures of ``labelwise review status``.
- ``POST /v1/review/ingest`` ``{"model", "items": [{"id", "text"}], "precision",
  "audit_rate"}``: predict with a served model and store (as ``labelwise review ingest``).
- ``POST /v1/review/next`` ``{"reviewer", "order", "lease_seconds"}``: lease the next item
  (200 with the item and its suggestions, 204 when the queue is empty).
- ``POST /v1/review/items/{item_id}/review`` ``{"reviewer", "accepted", "rejected",
  "added", "seconds"}``: store a review (201).
- ``POST /v1/review/items/{item_id}/release`` ``{"reviewer"}``: give a leased item back.
- ``GET /v1/review/export``: the decided items as JSONL (marks the reviews used: they can
  no longer be undone).
- ``POST /v1/review/items/{item_id}/undo`` ``{"reviewer", "lease_seconds"}``: undo the
  reviewer's own last submission (the review of that item): the review is removed and the
  item leased back to them (200 with the item). 409 when the review is someone else's, not
  their last one, or already used by an export or a learn; nothing changed.
- ``POST /v1/review/items/{item_id}/skip`` ``{"reviewer", "order", "lease_seconds"}``: give
  the held item back and lease the next other one (200, or 204 when none is left).
- ``GET /v1/review/labels?q=&offset=&limit=``: the label names ``added`` may use, searched
  (prefix matches first, then substrings; paged).
- ``POST /v1/review/learn`` ``{"model", "include_auto", "retrain"}``: what ``labelwise
  review learn`` does, on a served model named by ``--allow-learn`` (403 otherwise): the
  new version is saved atomically and served from the next request on.

The reviewer page is at ``/review``, the overview at ``/review/overview`` (``page_router``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .errors import Problem, log

__all__ = ["page_router", "router"]

router = APIRouter(prefix="/v1/review", tags=["review"])
page_router = APIRouter(include_in_schema=False)

_P = {code: {"content": {"application/problem+json": {}}} for code in (401, 403, 404, 409, 413,
                                                                        422, 503)}
Name = Field(min_length=1, max_length=200)


class NextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Name
    order: Literal["uncertainty", "oldest", "random"] = "uncertainty"
    lease_seconds: float = Field(600.0, gt=0, le=86400)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Name
    accepted: list[str] = Field(default_factory=list, max_length=1000)
    rejected: list[str] = Field(default_factory=list, max_length=1000)
    added: list[str] = Field(default_factory=list, max_length=1000)
    seconds: float = Field(0.0, ge=0, le=86400)


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Name


class IngestItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1, max_length=100_000)


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Name
    items: list[IngestItem] = Field(min_length=1, max_length=10_000)
    precision: float = Field(gt=0, lt=1)
    audit_rate: float = Field(0.02, ge=0, le=1)


_lock = threading.Lock()


def _db(request: Request):
    """The app's review database, opened on first use (503 while it does not answer)."""
    state = request.app.state
    url = state.settings.extra.get("review_db")
    if not url:
        raise Problem(404, "this server has no review database (start it with --review-db URL)")
    db = getattr(state, "review_db", None)
    if db is not None:
        return db
    from labelwise.review import ReviewError, open_db

    with _lock:
        db = getattr(state, "review_db", None)
        if db is None:
            try:
                db = open_db(url)
            except ReviewError as e:
                raise Problem(e.status if e.status != 500 else 503,
                              f"review database: {e}") from None
            state.review_db = db
    return db


async def _call(request: Request, fn, *args, **kw) -> Any:
    """Run a review operation in a thread; review errors become problems with their status,
    a database that stops answering becomes 503."""
    from sqlalchemy.exc import DBAPIError

    from labelwise.review import ReviewError

    db = await asyncio.to_thread(_db, request)
    try:
        return await asyncio.to_thread(fn, db, *args, **kw)
    except ReviewError as e:
        raise Problem(e.status, str(e)) from None
    except DBAPIError as e:
        if e.connection_invalidated or "connect" in str(e.orig).lower() or isinstance(
                e.orig, OSError):
            log.error("review database unreachable: %s", e.orig)
            raise Problem(503, f"review database unreachable ({db.url}); nothing was "
                               "stored, retry later") from None
        raise


def _authorize(request: Request) -> None:
    request.app.state.authorize(request)


@router.get("/status", responses=_P)
async def status(request: Request) -> dict[str, Any]:
    """Items queued / auto-accepted / reviewed and, per label, the audited precision with its
    95 % interval (paused when the interval's upper end is below the target)."""
    from labelwise.review import loop

    return await _call(request, loop.status)


@router.post("/next", responses={**_P, 204: {"description": "the queue is empty"}})
async def lease_next(body: NextRequest, request: Request) -> Any:
    """Lease the next item to the reviewer (their current lease first); 204 when none is
    left. The lease lasts ``lease_seconds`` (default 600)."""
    from labelwise.review import queue

    _authorize(request)
    item = await _call(request, queue.lease_next, body.reviewer, order=body.order,
                       lease_seconds=body.lease_seconds)
    return Response(status_code=204) if item is None else item


@router.post("/items/{item_id}/review", status_code=201, responses=_P)
async def review(item_id: str, body: ReviewRequest, request: Request) -> dict[str, Any]:
    """Store the reviewer's decision on a leased item (409 when the lease is not theirs)."""
    from labelwise.review import queue

    _authorize(request)
    return await _call(request, queue.submit, item_id, body.reviewer, accepted=body.accepted,
                       rejected=body.rejected, added=body.added, seconds=body.seconds)


@router.post("/items/{item_id}/release", responses=_P)
async def release(item_id: str, body: ReleaseRequest, request: Request) -> dict[str, Any]:
    """Give a leased item back to the queue (skip)."""
    from labelwise.review import queue

    _authorize(request)
    return {"id": item_id, "released": await _call(request, queue.release, item_id,
                                                    body.reviewer)}


@router.post("/ingest", responses=_P)
async def ingest(body: IngestRequest, request: Request) -> dict[str, Any]:
    """Predict the items with a served model and store them (auto-accepted, audit or
    queued), as ``labelwise review ingest``."""
    from labelwise.dataset import Dataset
    from labelwise.review import loop

    _authorize(request)
    registry = request.app.state.registry
    entry = registry.get(body.model)
    if entry is None:
        raise Problem(404, f"model: no model named {body.model!r} (GET /v1/models lists them)")
    if not entry.pipe.is_text:
        raise Problem(422, f"model: {body.model!r} does not take texts")
    names = entry.pipe.labels_.names
    data = Dataset([it.text for it in body.items], [[] for _ in body.items], list(names),
                   ids=[it.id for it in body.items])
    out = await _call(request, loop.ingest, entry.pipe, registry.paths[body.model], data,
                      precision=body.precision, audit_rate=body.audit_rate, source="api",
                      random_state=None)
    if out["threshold"] == float("inf"):
        out["threshold"] = None
    return out


@router.get("/export", responses={200: {"content": {"application/x-ndjson": {}}}, **_P})
async def export(request: Request) -> Response:
    """The decided items, one JSON object a line: ``id``, ``labels``, ``decided``."""
    from labelwise.review import loop

    def lines(db) -> str:
        from labelwise.review.queue import reviews_in_use

        with reviews_in_use(db, "export", detail="GET /v1/review/export") as use:
            return "".join(json.dumps({"id": i, "labels": labs, "decided": dec},
                                      ensure_ascii=False) + "\n"
                           for i, labs, dec in loop.decisions(use.conn))

    return Response(await _call(request, lines), media_type="application/x-ndjson")


class UndoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Name
    lease_seconds: float = Field(600.0, gt=0, le=86400)


class LearnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Name
    include_auto: bool = False
    retrain: bool = Field(False, description="refit on the training data the server was given "
                                             "for this model (--review-train NAME=DATA) plus "
                                             "the review rows, instead of learn")


@router.post("/items/{item_id}/undo", responses=_P)
async def undo(item_id: str, body: UndoRequest, request: Request) -> dict[str, Any]:
    """Undo the reviewer's own last submission, the review of this item: the review is
    removed and the item leased back to them (the item, with ``undone``: the removed review).
    409 when the review is another reviewer's, not their last, or already used by an export
    or a learn; nothing is changed then."""
    from labelwise.review import queue

    _authorize(request)
    return await _call(request, queue.undo, item_id, body.reviewer,
                       lease_seconds=body.lease_seconds)


@router.post("/items/{item_id}/skip", responses={**_P, 204: {"description": "no other item"}})
async def skip(item_id: str, body: NextRequest, request: Request) -> Any:
    """Give the held item back to the queue and lease the reviewer the next other one (204
    when no other item is left; the skipped one is given back all the same)."""
    from labelwise.review import queue

    _authorize(request)
    item = await _call(request, queue.skip, item_id, body.reviewer, order=body.order,
                       lease_seconds=body.lease_seconds)
    return Response(status_code=204) if item is None else item


@router.get("/labels", responses=_P)
async def labels(request: Request, q: str | None = Query(None, max_length=200),
                 offset: int = Query(0, ge=0), limit: int = Query(20, ge=1, le=1000)
                 ) -> dict[str, Any]:
    """The label names a review may add (every label of the ingested model versions), with
    ``q``: those containing it (any case), names starting with it first; paged."""
    from labelwise.review.labels import LabelIndex, label_names, labels_key

    state = request.app.state

    def search(db) -> dict[str, Any]:
        key = labels_key(db)
        cached = getattr(state, "review_labels", None)
        if cached is None or cached[0] != key:
            cached = (key, LabelIndex(label_names(db)))
            state.review_labels = cached
        return cached[1].search(q, offset=offset, limit=limit)

    return await _call(request, search)


@router.post("/learn", responses=_P)
async def learn(body: LearnRequest, request: Request) -> dict[str, Any]:
    """Feed the reviews back into a served model, as ``labelwise review learn``: learn
    (zero-/few-shot and added labels) or, with ``retrain``, a refit on the server's training
    data for the model plus the review rows; ``include_auto`` adds the auto-accepted items as
    pseudo-labels. The new version is saved atomically and served from the next request on;
    the reviews used can no longer be undone. Needs the token and a model named by
    ``--allow-learn`` (403 otherwise)."""
    from labelwise.review.learn import learn_model

    _authorize(request)
    state = request.app.state
    registry, settings = state.registry, state.settings
    name = body.model
    if name not in registry.paths:
        raise Problem(404, f"model: no model named {name!r} (GET /v1/models lists them)")
    if name not in settings.allow_learn:
        raise Problem(403, f"learning is off for {name!r} (start the server with "
                           f"--allow-learn {name})")
    train_path = settings.extra.get(f"review_train:{name}")
    if body.retrain and not train_path:
        raise Problem(422, f"retrain: the server has no training data for {name!r} (start it "
                           f"with --review-train {name}=DATA)")

    def run(db) -> dict[str, Any]:
        from labelwise.errors import LabelwiseError
        from labelwise.review import ReviewInputError

        train = None
        if body.retrain:
            from labelwise.io import read

            try:
                train = read(train_path)
            except (LabelwiseError, OSError) as e:
                raise ReviewInputError(f"retrain: the training data failed to load: {e}") from None
        with registry.lock(name):
            old = registry.get(name)
            out = learn_model(db, registry.paths[name], train=train,
                              include_auto=body.include_auto)
            _, new = registry.reload(name)
        out.pop("pipeline")
        return {"model": name, "version": new.version,
                "previous_version": None if old is None else old.version, **out}

    return await _call(request, run)


_STATIC = Path(__file__).with_name("static")


@page_router.get("/review")
async def review_page() -> Response:
    """The reviewer page (static/review.html)."""
    return FileResponse(_STATIC / "review.html", media_type="text/html")


@page_router.get("/review/overview")
async def overview_page() -> Response:
    """The overview page: the status figures and the audited precision per label."""
    return FileResponse(_STATIC / "overview.html", media_type="text/html")
