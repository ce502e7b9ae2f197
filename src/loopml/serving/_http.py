"""JSON answers of the inference server: :class:`ApiError` and the shared error bodies.

Every error is answered as ``{"error": {"code", "message", ...}}`` with its HTTP
status; an unexpected one as :data:`INTERNAL_ERROR`, never with a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi.responses import Response

from loopml.serving._payloads import PayloadError

__all__ = [
    "INTERNAL_ERROR",
    "JSON_TYPE",
    "LOG_DOWN",
    "RETRY_SOON",
    "ApiError",
    "dumps",
    "json_response",
    "parsed",
]

JSON_TYPE = "application/json"
LOG_DOWN = "The prediction log cannot be written right now, so predictions are refused."
"""Why predictions (and readiness) are refused while the prediction log is down."""
RETRY_SOON = {"Retry-After": "1"}
INTERNAL_ERROR = {
    "code": "internal_error",
    "message": "Internal server error; see the server log.",
}
"""The body of an unexpected error (its details go to the server log only)."""


class ApiError(Exception):
    """An error answered as JSON with an HTTP status (raised inside request handlers)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body: dict[str, Any] = {"code": code, "message": message, **extra}


def dumps(body: Any) -> bytes:
    """``body`` as JSON bytes (numpy values included)."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as a JSON response."""
    return Response(dumps(body), status_code=status, headers=headers, media_type=JSON_TYPE)


def parsed(parser: Callable[..., Any], value: Any, *args: Any) -> Any:
    """``parser(value, *args)``, its :class:`PayloadError` answered as a 422 ``invalid_body``."""
    try:
        return parser(value, *args)
    except PayloadError as exc:
        raise ApiError(
            422, "invalid_body", str(exc), field=exc.field, expected=exc.expected
        ) from None
