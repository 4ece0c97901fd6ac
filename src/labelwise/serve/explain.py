"""``POST /v1/models/{name}/explain``: the terms that pushed each label up (the web page's
"why" column), for pipelines with a tf-idf featurizer and a OneVsRest or LabelTree model.

Body ``{"items": [{"id": ..., "text": ..., "labels": [names] | null}], "top_k": 5,
"n_terms": 10}``: an item's ``labels`` are explained when given, else its ``top_k``
candidates (as ``predict`` ranks them). The arithmetic is :mod:`labelwise.explain`'s: a term's
contribution is its tf-idf value times the label classifier's weight (for a label tree, the
classifier of the label in its leaf). The answer keeps request order::

    {"model": NAME, "version": SHA256, "items": [{"id": ..., "labels": [
        {"label": "baking", "margin": 0.83, "intercept": -0.41,
         "terms": [{"term": "flour", "value": 0.31, "weight": 2.2, "contribution": 0.68}]}]}]}

Other models answer 422 saying why (the API never guesses an explanation).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, Strict

from .errors import PROBLEM_JSON, Problem
from .schemas import ItemId, ProblemBody

__all__ = ["router", "ExplainRequest", "ExplainResponse", "MAX_TERMS"]

#: most terms per label a request may ask for
MAX_TERMS = 100
#: most labels explained per item
MAX_LABELS = 100

router = APIRouter()


class ExplainItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ItemId | None = None
    text: Annotated[str, Strict()]
    labels: list[Annotated[str, Strict()]] | None = Field(default=None, max_length=MAX_LABELS)


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ExplainItem] = Field(min_length=1)
    top_k: Annotated[int, Strict(), Field(ge=1, le=MAX_LABELS)] = 5
    n_terms: Annotated[int, Strict(), Field(ge=1, le=MAX_TERMS)] = 10


class Term(BaseModel):
    term: str
    value: float
    weight: float
    contribution: float


class LabelTerms(BaseModel):
    label: str
    margin: float | None
    intercept: float | None
    terms: list[Term] | None
    reason: str | None = None


class ExplainedItem(BaseModel):
    id: str | int | None = None
    labels: list[LabelTerms]


class ExplainResponse(BaseModel):
    model: str
    version: str
    items: list[ExplainedItem]


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemBody, "content": {PROBLEM_JSON: {}}} for code in (404, 413, 422, 503)}

@router.post("/v1/models/{name}/explain", response_model=ExplainResponse, tags=["predict"],
             responses=_PROBLEMS)
async def explain(name: str, body: ExplainRequest, request: Request) -> dict[str, Any]:
    """The terms that pushed each asked label (or each top-k candidate) up, per item."""
    from labelwise.explain import explainable

    app = request.app
    registry = app.state.registry
    if name in registry.paths and registry.stale(name):  # a version another worker loaded
        await asyncio.to_thread(registry.sync, name)
    entry = registry.get(name)
    if entry is None:
        if name in registry.paths:
            raise Problem(503, f"model {name!r} is not loaded: {registry.status() or 'loading'}")
        raise Problem(404, f"no model named {name!r} (GET /v1/models lists them)")
    max_items = app.state.settings.max_items
    if len(body.items) > max_items:
        raise Problem(422, f"items: {len(body.items)} items, at most {max_items} per request "
                           "(--max-items)")
    pipe = entry.pipe
    if not explainable(pipe):
        feat = "no featurizer" if pipe.featurizer is None else type(pipe.featurizer).__name__
        raise Problem(422, f"model {name!r} ({type(pipe.model).__name__}, {feat}) has no term "
                           "explanations: they need a tf-idf featurizer and a OneVsRest or "
                           "LabelTree model")
    known = pipe.labels_
    for i, item in enumerate(body.items):
        for j, label in enumerate(item.labels or ()):
            if label not in known:
                raise Problem(422, f"items[{i}].labels[{j}]: unknown label {label!r}")
    items = await asyncio.to_thread(_explain, pipe, body)
    return {"model": name, "version": entry.version, "items": items}


def _explain(pipe: Any, body: ExplainRequest) -> list[dict[str, Any]]:
    from labelwise.explain import explain_labels

    texts = [item.text for item in body.items]
    asked = [item.labels for item in body.items]
    missing = [i for i, labels in enumerate(asked) if labels is None]
    if missing:
        ranked = pipe.predict_labels([texts[i] for i in missing], k=body.top_k)
        for i, found in zip(missing, ranked, strict=True):
            asked[i] = [c["label"] for c in found["candidates"]]
    out = explain_labels(pipe, texts, asked, n_terms=body.n_terms)
    return [({"id": item.id} if item.id is not None else {}) | {"labels": labels}
            for item, labels in zip(body.items, out, strict=True)]
