"""Errors of the server as ``application/problem+json`` (RFC 9457), and the body-size limit.

Every error answer is ``{"type", "title", "status", "detail"}``: ``detail`` names the field
(``items[3].features.indices[7]: 200001 >= n_features 200000``). No traceback, exception
class or server path ever reaches a client: labelwise errors carry their message (paths in
it are replaced), anything else answers a generic 500 and is logged.

:class:`BodyLimit` is a pure ASGI middleware that refuses a request body over the limit
while reading it (a too large Content-Length is refused before any byte is read), so a
large upload never sits in memory whole.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["Problem", "problem_response", "install_handlers", "BodyLimit", "field_path",
           "PROBLEM_JSON", "answer_of"]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("labelwise.serve")

_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
           415: "Unsupported media type", 422: "Unprocessable content",
           500: "Internal server error", 503: "Service unavailable"}


class Problem(Exception):
    """An error answer: HTTP ``status``, a short ``title`` and a ``detail`` naming the field."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers


def problem_response(status: int, detail: str, *, title: str | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": title or _TITLES.get(status, "Error"),
            "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "items", 3, "text")`` -> ``items[3].text``."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


#: what a field whose value is a union expects, said once instead of once per member
_UNION_FIELDS = {"policy": 'expected "tuned", "top_k", {"threshold": t} with 0 <= t <= 1 or '
                           '{"precision": p} with 0 < p <= 1'}


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for e in errors[:5]:
        loc = list(e.get("loc", ()))
        if len(loc) >= 2 and loc[0] == "body" and loc[1] in _UNION_FIELDS:
            text = f"{loc[1]}: {_UNION_FIELDS[loc[1]]}"
            if text not in parts:
                parts.append(text)
            continue
        loc = list(e.get("loc", ()))
        # pydantic names the union member it tried ("str", "ThresholdPolicy"): not a field
        loc = [p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in (
            "str", "int", "literal['tuned','top_k']", "function-after[_check(), Item]")))]
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            msg = f"invalid JSON: {ctx.get('error', msg)}"
            pos = loc[-1] if loc and isinstance(loc[-1], int) else None
            parts.append(msg + (f" at character {pos}" if pos is not None else ""))
            continue
        if e.get("type") == "missing" and loc[:1] == ["body"] and len(loc) == 1:
            parts.append("body: a JSON object is required")
            continue
        parts.append(f"{field_path(loc)}: {msg}")
    more = len(errors) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def install_handlers(app: Any) -> None:
    """Problem+json for labelwise errors, HTTP errors, validation errors and anything else."""
    from fastapi.exceptions import RequestValidationError

    from labelwise.errors import LabelwiseError

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return answer_of(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, _validation_detail(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}"
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(LabelwiseError)
    async def _labelwise(request: Request, exc: LabelwiseError) -> JSONResponse:
        return answer_of(exc)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error answering %s %s", request.method, request.url.path)
        return problem_response(500, "the server failed to answer this request; it is logged")


def answer_of(exc: Exception) -> JSONResponse | None:
    """The answer to a :class:`Problem` or a labelwise error raised while answering (the
    handlers above, and the predict route's fast path in :mod:`labelwise.serve.app`); None
    for anything else (answered 500 by the outermost handler)."""
    from labelwise.errors import LabelwiseError

    if isinstance(exc, Problem):
        return problem_response(exc.status, exc.detail, title=exc.title, headers=exc.headers)
    if isinstance(exc, LabelwiseError):
        return problem_response(422, scrub(str(exc)))
    return None


def scrub(message: str) -> str:
    """A message without the server's file system paths (any absolute path becomes its last
    part), so an error never tells a client where the models live."""
    import re

    return re.sub(r"(?<![\w.])/(?:[^\s:'\"/]+/)+([^\s:'\"/]*)", r"\1", message)


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, checked while reading."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        too_big = f"the request body is over the limit of {limit} bytes (--max-body)"
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    n = -1
                if n > limit:
                    await _send(send, scope, problem_response(413, too_big))
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _send(send, scope, problem_response(413, too_big))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)


def replaying(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` (already read) as one message, then defers to
    ``receive`` (for the disconnect that follows)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send(send: Any, scope: dict[str, Any], response: JSONResponse) -> None:
    async def no_body() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
