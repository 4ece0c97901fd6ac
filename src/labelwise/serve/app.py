"""The FastAPI application: :func:`create_app` (routes in the module's functions below).

Start-up loads every model in a background thread (memory-mapped, warmed by one prediction)
so that ``/health/live`` answers at once and ``/health/ready`` turns 200 when all are loaded.
A server process (``labelwise serve``, :func:`create_app_from_env`; the prefork parent does
the same before forking) then moves every object loaded so far out of the garbage
collector's reach (``gc.collect(); gc.freeze()``), before ``/health/ready`` turns 200:
otherwise each full collection walks the ~230K objects of the loaded models and libraries
(150-300 ms on the loaded 2-core machine, the event loop stopped meanwhile), which was the
p99 at concurrency 32 with one worker. Objects freed by reference counting are still freed;
only cycles among the frozen objects (an old version's, after a reload) are never collected.
Model calls run in threads (through the micro-batcher unless ``batching`` is off), except a
micro-batch of one item and a lone request expected to take at most 10 ms, which run on the
event loop (cheaper than the thread hop: :mod:`labelwise.serve.batching`); the event loop
otherwise only parses, validates and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hmac
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from . import schemas as S
from .batching import Batcher
from .errors import BodyLimit, Problem, answer_of, install_handlers, log, replaying, scrub
from .inputs import check_policy, items_to_input, policy_json, policy_key, predict_items
from .metrics import Metrics, MetricsMiddleware
from .registry import ModelEntry, Registry
from .settings import ServeSettings

__all__ = ["create_app", "create_app_from_env"]

STATIC = Path(__file__).with_name("static")


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of problem+json answers (moved to that media type by _openapi)."""
    return {code: {"model": S.ProblemBody, "content": {"application/problem+json": {}}}
            for code in codes}


_GET_PROBLEMS = _problems(404, 422, 503)
_PROBLEMS = _problems(404, 413, 422, 503)
_AUTH_PROBLEMS = _problems(401, 403, 404, 409, 413, 422, 503)


def _openapi(app: FastAPI) -> Any:
    """FastAPI's schema with problem answers under application/problem+json only."""
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version,
                              description=app.description, routes=app.routes)
            for ops in doc.get("paths", {}).values():
                for op in ops.values():
                    for answer in op.get("responses", {}).values():
                        content = answer.get("content", {})
                        if "application/problem+json" in content and "application/json" in content:
                            content["application/problem+json"] = content.pop("application/json")
            app.openapi_schema = doc
        return app.openapi_schema

    return build


def create_app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` (``labelwise serve`` passes its settings in the
    environment variable ``LABELWISE_SERVE_SETTINGS``, as JSON)."""
    return create_app(ServeSettings.from_json(os.environ["LABELWISE_SERVE_SETTINGS"]),
                      freeze_gc=True)


def create_app(settings: ServeSettings, *, load_in_background: bool = True,
               freeze_gc: bool = False) -> FastAPI:
    """An app serving ``settings.models`` (name -> directory). ``freeze_gc``: once the
    models are loaded, and before ready, freeze the objects so far out of the garbage
    collector's reach (module docstring; for a server process, not a test's)."""
    from labelwise import __version__

    registry = Registry({name: Path(p) for name, p in settings.models.items()},
                        state_dir=settings.state_dir)
    metrics = Metrics()
    token = settings.read_token()

    def on_swap(old: ModelEntry | None, new: ModelEntry) -> ModelEntry:
        metrics.loaded(new.name, new.version, new.load_seconds,
                       None if old is None else old.version)
        if not settings.batching:
            return new
        pipe, name = new.pipe, new.name
        batcher = Batcher(lambda key, X: predict_items(pipe, X, key[0], key[1]),
                          max_batch=settings.max_batch, max_wait=settings.batch_wait_ms / 1000,
                          observe=metrics.batch.labels(name).observe)
        return dataclasses.replace(new, batcher=batcher)

    registry.on_swap = on_swap
    settled = threading.Event()  # the start-up load (and freeze) is over

    def load() -> None:
        try:
            registry.load_all()
            if freeze_gc:
                gc.collect()
                gc.freeze()
        finally:
            settled.set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for entry in registry.entries():  # loaded before a fork: this worker's gauges
            metrics.loaded(entry.name, entry.version, entry.load_seconds, None)
        if load_in_background:
            threading.Thread(target=load, name="labelwise-load", daemon=True).start()
        else:
            load()
        yield
        for entry in registry.entries():
            if entry.batcher is not None:
                entry.batcher.close()
        review_db = getattr(app.state, "review_db", None)  # opened by the review routes
        if review_db is not None:
            review_db.close()

    app = FastAPI(title="labelwise", version=__version__, lifespan=lifespan,
                  description="Multi-label classification: predict, inspect labels, learn, "
                              "reload. Errors are application/problem+json.")
    app.state.registry = registry
    app.state.settings = settings
    app.state.metrics = metrics
    install_handlers(app)

    async def current(name: str) -> ModelEntry:
        """The entry serving ``name`` now (after loading a version another worker
        announced)."""
        if name in registry.paths and registry.stale(name):
            await asyncio.to_thread(registry.sync, name)
        return entry_of(name)

    def entry_of(name: str) -> ModelEntry:
        entry = registry.get(name)
        if entry is None:
            if name in registry.paths:
                raise Problem(503, f"model {name!r} is not loaded: "
                                   f"{registry.status() or 'loading'}")
            raise Problem(404, f"no model named {name!r} (GET /v1/models lists them)")
        return entry

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization")
        if token is None:
            raise Problem(403, "write routes are off: the server was started without "
                               "--token-file")
        if not header:
            raise Problem(401, "this route needs 'Authorization: Bearer TOKEN'",
                          headers={"WWW-Authenticate": "Bearer"})
        scheme, _, given = header.partition(" ")
        ok = hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                 token.encode("utf-8"))
        if scheme.lower() != "bearer" or not ok:
            raise Problem(403, "wrong token")

    app.state.authorize = authorize  # for the routers of other modules (review)

    # ------------------------------------------------------------------ health
    @app.get("/health/live", response_model=S.Health, tags=["health"])
    async def live() -> dict[str, Any]:
        """The process answers."""
        return {"status": "live", "models": []}

    @app.get("/health/ready", response_model=S.Health, tags=["health"],
             responses={503: {"model": S.ProblemBody,
                              "content": {"application/problem+json": {}}}})
    async def ready() -> dict[str, Any]:
        """200 once every model is loaded and warmed, else 503 saying what is missing."""
        if not (registry.ready and settled.is_set()):
            raise Problem(503, f"not ready: {registry.status() or 'loading'}")
        return {"status": "ready", "models": registry.names}

    # ------------------------------------------------------------------ models
    @app.get("/v1/models", response_model=S.ModelList, tags=["models"])
    async def models() -> dict[str, Any]:
        """The models served (the ones loaded so far)."""
        return {"models": [e.info() for e in registry.entries()]}

    @app.get("/v1/models/{name}", response_model=S.ModelInfo, tags=["models"],
             responses=_GET_PROBLEMS)
    async def model(name: str) -> dict[str, Any]:
        return (await current(name)).info()

    @app.get("/v1/models/{name}/labels", response_model=S.LabelPage, tags=["models"],
             responses=_GET_PROBLEMS)
    async def labels(name: str, offset: int = Query(0, ge=0),
                     limit: int = Query(100, ge=1, le=1000),
                     q: str | None = Query(None, max_length=200)) -> dict[str, Any]:
        """The model's labels, paged; ``q`` keeps names containing it (any case), names
        starting with it first."""
        entry = await current(name)
        return await asyncio.to_thread(_label_page, entry, offset, limit, q)

    # ------------------------------------------------------------------ predict
    async def answer_predict(name: str, body: S.PredictRequest) -> Response:
        """The predict route's answer (FastAPI's route and the fast path share it)."""
        entry = await current(name)
        n = len(body.items)
        if n > settings.max_items:
            raise Problem(422, f"items: {n} items, at most {settings.max_items} per request "
                               "(--max-items)")
        X = items_to_input(body.items, text=entry.pipe.is_text, n_features=entry.n_features,
                           fills_missing=entry.fills_missing)
        key = (body.top_k, policy_key(body.policy))
        check_policy(entry.pipe, key[1])
        if entry.batcher is not None:
            out = await entry.batcher.submit(key, X)
        else:
            metrics.batch.labels(name).observe(n)
            out = await asyncio.to_thread(predict_items, entry.pipe, X, key[0], key[1])
        metrics.items.labels(name).inc(n)
        for item, result in zip(body.items, out):
            if item.id is not None:
                result["id"] = item.id
        doc = {"model": name, "version": entry.version, "policy": policy_json(key[1]),
               "items": [({"id": r.pop("id"), **r} if "id" in r else r) for r in out]}
        return Response(json.dumps(doc, ensure_ascii=False, allow_nan=False,
                                   separators=(",", ":")), media_type="application/json")

    @app.post("/v1/models/{name}/predict", response_model=S.PredictResponse, tags=["predict"],
              responses=_PROBLEMS)
    async def predict(name: str, body: S.PredictRequest) -> Response:
        """Chosen labels, their probabilities and the top-k candidates of each item, in
        request order (the fields ``labelwise predict`` writes)."""
        return await answer_predict(name, body)

    predict_route = app.routes[-1]

    # ------------------------------------------------------------------ write routes
    @app.post("/v1/models/{name}/learn", response_model=S.LearnResponse, tags=["write"],
              responses=_AUTH_PROBLEMS)
    async def learn(name: str, body: S.LearnRequest, request: Request) -> dict[str, Any]:
        """Add labelled examples and new labels (zero-/few-shot, no retraining), save the
        pipeline atomically as a new version and serve it from the next request on. Needs the
        token and a model named by ``--allow-learn``."""
        authorize(request)
        entry_of(name)
        if name not in settings.allow_learn:
            raise Problem(403, f"learning is off for {name!r} (start the server with "
                               f"--allow-learn {name})")
        if not body.examples and not body.labels:
            raise Problem(422, "body: give examples and/or labels")
        from .learning import learn_into

        return await asyncio.to_thread(learn_into, registry, name, body)

    @app.post("/v1/admin/models/{name}/reload", response_model=S.ReloadResponse,
              tags=["write"], responses=_AUTH_PROBLEMS)
    async def reload(name: str, request: Request) -> dict[str, Any]:
        """Load the version on disk beside the served one and swap them; requests in flight
        finish on the old one. A version that fails to load leaves the old one serving."""
        authorize(request)
        if name not in registry.paths:
            raise Problem(404, f"no model named {name!r} (GET /v1/models lists them)")
        old = registry.get(name)
        try:
            _, new = await asyncio.to_thread(registry.reload, name)
        except Exception as e:  # noqa: BLE001 - answered with the reason
            log.error("reload of %s failed: %s", name, e)
            still = "nothing" if old is None else f"version {old.version}"
            raise Problem(409, f"the version on disk failed to load, still serving {still}: "
                               f"{scrub(str(e)) or type(e).__name__}",
                          title="Reload failed") from None
        return {"model": name, "version": new.version,
                "previous_version": None if old is None else old.version,
                "changed": old is None or old.version != new.version,
                "load_seconds": round(new.load_seconds, 4)}

    # ------------------------------------------------------------------ metrics, page
    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        data, ctype = metrics.exposition()
        return Response(data, media_type=ctype)

    index = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        if index.is_file():
            return FileResponse(index, media_type="text/html")
        return JSONResponse({"detail": "labelwise serve: see /docs for the API"})

    if STATIC.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    with contextlib.suppress(ImportError):
        from .explain import router as explain_router  # the page's route ("page" owns it)

        app.include_router(explain_router)

    if settings.extra.get("review_db"):
        from .review import page_router as review_pages
        from .review import router as review_router  # the review loop (--review-db URL)

        app.include_router(review_router)
        app.include_router(review_pages)  # /review, /review/overview
    app.openapi = _openapi(app)
    app.add_middleware(FastPredict, answer=answer_predict, route=predict_route)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


#: the predict route's path (FastAPI's ``{name}``: one path segment)
_PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict$")
_PREDICT_REQUEST: Any = None  # TypeAdapter(PredictRequest), built on first use


class FastPredict:
    """ASGI middleware: ``POST /v1/models/{name}/predict`` with a valid JSON body answered
    without FastAPI's routing and dependency solving, by the route's own function.

    The body is parsed as FastAPI parses it (``json.loads``) and validated by a precompiled
    ``TypeAdapter(PredictRequest)`` (the model's own validator, which FastAPI's body field
    runs too). Anything else (another route or method, a mounted app, a content type that is
    not exactly ``application/json``, a body that does not parse or validate) goes to FastAPI
    unchanged, with the body replayed, so error answers, the OpenAPI schema and ``/docs`` stay
    FastAPI's. Problems raised while answering get the app's problem+json answer
    (:func:`~labelwise.serve.errors.answer_of`); any other exception propagates to the same
    outer handler as before. The app's CPU per one-document predict, model call aside:
    0.37 -> 0.18 ms (in-process, the model stubbed).
    """

    def __init__(self, app: Any, answer: Any, route: Any) -> None:
        self.app = app
        self.answer = answer
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        match = _PREDICT_PATH.match(scope["path"])
        ctype = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                ctype = value
        if match is None or ctype is None or ctype.lower() != b"application/json":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # gone: nothing to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            request = _request_adapter().validate_python(json.loads(body))
        except Exception:  # noqa: BLE001 - FastAPI parses it again and says what is wrong
            await self.app(scope, replaying(body, receive), send)
            return
        scope["route"] = self.route  # the metrics' route label, as the router sets it
        try:
            response = await self.answer(match.group(1), request)
        except Exception as e:
            response = answer_of(e)
            if response is None:
                raise
        await response(scope, receive, send)


def _request_adapter() -> Any:
    global _PREDICT_REQUEST
    if _PREDICT_REQUEST is None:
        from pydantic import TypeAdapter

        _PREDICT_REQUEST = TypeAdapter(S.PredictRequest)
    return _PREDICT_REQUEST


def _label_page(entry: ModelEntry, offset: int, limit: int, q: str | None) -> dict[str, Any]:
    names = entry.label_names_lower
    if q:
        needle = q.lower()
        first = [j for j, n in enumerate(names) if n.startswith(needle)]
        rest = [j for j, n in enumerate(names) if needle in n and not n.startswith(needle)]
        hits = first + rest
    else:
        hits = range(len(names))
    page = hits[offset:offset + limit]
    pipe = entry.pipe
    info = entry.cache.get("label_info")
    if info is None:
        info = entry.cache["label_info"] = pipe.label_info()
    thr = entry.thresholds()
    out = []
    for j in page:
        d = info[j]
        t = None if thr is None else (float(thr[j]) if not isinstance(thr, float) else thr)
        if t is not None and t != t or t in (float("inf"), float("-inf")):
            t = None
        out.append({"index": int(j), "name": d["label"], "description": d["description"],
                    "kind": d["kind"], "examples": d["examples"], "threshold": t})
    return {"model": entry.name, "version": entry.version, "total": len(hits),
            "offset": offset, "limit": limit, "labels": out}
