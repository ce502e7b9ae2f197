"""The ASGI fast path: every request checked by the guard, predict answered straight away.

``POST /v1/endpoints/{name}/predict`` is answered straight from the ASGI call,
without Starlette's middleware, routing and request objects (the route is still
declared, so the OpenAPI schema documents it). Measured at concurrency 1, that
took ~0.3 ms off the request's own handling and, with less code run between two
predicts, ~0.4 ms off the model call.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from loopml.serving._core import ServerCore
from loopml.serving._guard import RequestGuard
from loopml.serving._http import JSON_TYPE, dumps

__all__ = ["InferenceApp"]

_READ_HEADERS = frozenset({b"host", b"authorization", b"content-type", b"content-length"})
_PREDICT_PREFIX, _PREDICT_SUFFIX = "/v1/endpoints/", "/predict"


class InferenceApp(FastAPI):
    """The FastAPI app behind the guard; predict goes straight to :meth:`ServerCore.predict`.

    Args:
        server: what the request handlers share.
        guard: the Host, token and content-type checks every request passes first.
        **kwargs: passed to :class:`~fastapi.FastAPI`.
    """

    def __init__(self, server: ServerCore, guard: RequestGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._server = server
        self._guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await super().__call__(scope, receive, send)
            return
        found: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            if key in _READ_HEADERS:
                found[key] = value
        content_type = found.get(b"content-type")
        refusal = self._guard.check(
            scope["method"],
            scope["path"],
            found.get(b"host"),
            found.get(b"authorization"),
            content_type,
        )
        if refusal is not None:
            self._server.count_error(None, refusal.code, refusal.status)
            body = dumps({"error": {"code": refusal.code, "message": refusal.message}})
            await _send(send, refusal.status, body, refusal.headers)
            return
        name = _predict_endpoint(scope)
        if name is None:
            await super().__call__(scope, receive, send)
            return
        length = found.get(b"content-length")
        status, body, headers = await self._server.predict(
            name,
            None if content_type is None else content_type.decode("latin-1"),
            None if length is None else length.decode("latin-1"),
            receive,
            scope["query_string"],
        )
        await _send(send, status, body, headers)


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Send a whole JSON answer from the ASGI call."""
    response_headers = [
        (b"content-type", JSON_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


def _predict_endpoint(scope: Scope) -> str | None:
    """The endpoint named by a ``POST /v1/endpoints/{name}/predict`` request, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX)):
        return None
    name = path[len(_PREDICT_PREFIX) : -len(_PREDICT_SUFFIX)]
    return name if name and "/" not in name else None
