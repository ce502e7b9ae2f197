"""``POST /v1/endpoints/{name}/feedback``: labels for request ids the endpoint answered.

The body is ``{"items": [{"request_id", "label"}, ...]}``, at most
:data:`MAX_FEEDBACK_ITEMS` labels; every id is checked first
(:class:`~loopml.serving._feedback.RequestIds`), so a body naming an id the
endpoint did not answer is refused whole (422) and nothing is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopml.errors import InvalidParameter
from loopml.serving._core import ServerCore
from loopml.serving._feedback import MAX_LABEL_DEPTH, record_feedback
from loopml.serving._http import ApiError, json_response, parsed
from loopml.serving._payloads import parse_json

__all__ = ["MAX_FEEDBACK_ITEMS", "add_feedback_route"]

MAX_FEEDBACK_ITEMS = 10_000
"""Labels one feedback request may carry."""

_FEEDBACK_DEPTH = MAX_LABEL_DEPTH + 3  # body → items → item → label
_SHOWN_IDS = 5


def add_feedback_route(app: FastAPI, server: ServerCore) -> None:
    """Declare ``POST /v1/endpoints/{name}/feedback`` on ``app``."""

    @app.post("/v1/endpoints/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        server.endpoint(name)
        body = await server.read_body(request)
        items = await server.off_loop(len(body), _feedback_items, body)
        unknown = [rid for rid, _ in items if not server.request_ids.answered(name, rid)]
        if unknown:
            shown = ", ".join(repr(rid[:64]) for rid in unknown[:_SHOWN_IDS])
            raise ApiError(
                422,
                "unknown_request_id",
                f"Endpoint {name!r} did not answer the request ids {shown}"
                f"{' …' if len(unknown) > _SHOWN_IDS else ''}; feedback is taken only for "
                "the request_id of an answered prediction. Nothing was stored.",
                request_ids=[rid[:64] for rid in unknown[:_SHOWN_IDS]],
            )
        client = request.client.host if request.client is not None else "unknown"
        try:
            recorded = await run_in_threadpool(
                record_feedback, server.store, name, items, source=f"http {client}"
            )
        except InvalidParameter as exc:
            raise ApiError(422, "invalid_feedback", str(exc)) from None
        return json_response({"recorded": recorded})


def _feedback_items(raw: bytes) -> list[tuple[str, Any]]:
    """The ``(request_id, label)`` pairs of a feedback body.

    Raises:
        ApiError: 422 for a body that is not ``{"items": [{request_id, label}, ...]}``
            of 1 to :data:`MAX_FEEDBACK_ITEMS` items.
    """
    body = parsed(parse_json, raw, _FEEDBACK_DEPTH)
    items = body.get("items") if isinstance(body, dict) else None
    if isinstance(items, list) and len(items) > MAX_FEEDBACK_ITEMS:
        raise ApiError(
            422,
            "invalid_body",
            f"The field 'items' must hold at most {MAX_FEEDBACK_ITEMS} labels; got {len(items)}.",
            field="items",
            expected=f"at most {MAX_FEEDBACK_ITEMS} items",
        )
    if not isinstance(items, list) or not items:
        raise ApiError(
            422,
            "invalid_body",
            "The field 'items' must be a non-empty list.",
            field="items",
            expected="a non-empty list of {request_id, label}",
        )
    found: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("request_id"), str)
            or ("label" not in item)
        ):
            raise ApiError(
                422,
                "invalid_body",
                f"The field 'items[{i}]' must be an object with a string request_id and a label.",
                field=f"items[{i}]",
                expected="an object with request_id and label",
            )
        found.append((item["request_id"], item["label"]))
    return found
