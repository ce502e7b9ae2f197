"""Feedback: ground-truth labels that arrive for predictions, by request id, later.

The first label stored for a request is final. Sending the same label again is a
no-op (clients retry batches), and a *different* label for a request that already
has one raises :class:`~loopml.errors.InvalidParameter` naming the request: a
silent overwrite would change evaluation results after the fact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.errors import InvalidParameter
from loopml.store import Store, now_ms, tables

__all__ = ["Feedback", "feedback", "labels_for", "record_feedback"]

_feedback = tables.FEEDBACK
_REQUEST_ID_LENGTH = 64
# Keeps IN (...) lists well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Feedback:
    """One stored label.

    Attributes:
        request_id: the request the label belongs to.
        label: the ground truth (any JSON value).
        received_at: when it was stored, in milliseconds since the epoch.
    """

    request_id: str
    label: Any
    received_at: int


def record_feedback(store: Store, endpoint: str, items: Iterable[tuple[str, Any]]) -> int:
    """Store ground-truth labels for predictions of ``endpoint``, all or none.

    Args:
        store: the metadata store.
        endpoint: the endpoint that answered the requests.
        items: ``(request_id, label)`` pairs; a label is any JSON value.

    Returns:
        The number of labels newly stored (repeats of stored labels are not counted).

    Raises:
        InvalidParameter: a request id is empty or too long, a label is not JSON,
            or a request already has (or is given in the same batch) a different
            label. Nothing from the batch is stored then.

    Example:
        >>> from loopml.store import open_store
        >>> store = open_store("sqlite://")
        >>> record_feedback(store, "fraud", [("r1", 1), ("r2", 0)])
        2
        >>> record_feedback(store, "fraud", [("r1", 1)])
        0
    """
    _check_endpoint(endpoint, "record_feedback")
    wanted: dict[str, Any] = {}
    for request_id, label in items:
        if not isinstance(request_id, str) or not 0 < len(request_id) <= _REQUEST_ID_LENGTH:
            raise InvalidParameter(
                "The request ids given to record_feedback must be non-empty strings of at "
                f"most {_REQUEST_ID_LENGTH} characters. Got {request_id!r} instead."
            )
        value = _json_value(request_id, label)
        if request_id in wanted and wanted[request_id] != value:
            raise _conflict(request_id, wanted[request_id], value)
        wanted[request_id] = value
    if not wanted:
        return 0
    received_at = now_ms()
    with store.write() as connection:
        stored = labels_for(connection, endpoint, list(wanted))
        for request_id, value in wanted.items():
            if request_id in stored and stored[request_id][0] != value:
                raise _conflict(request_id, stored[request_id][0], value)
        new = [rid for rid in wanted if rid not in stored]
        if not new:
            return 0
        factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        statement = factory(_feedback).on_conflict_do_nothing(
            index_elements=[_feedback.c.endpoint, _feedback.c.request_id]
        )
        connection.execute(
            statement,
            [
                {
                    "endpoint": endpoint,
                    "request_id": rid,
                    "label": wanted[rid],
                    "received_at": received_at,
                }
                for rid in new
            ],
        )
        # Another writer may have stored a label for one of these requests between
        # our read and our insert (the insert then did nothing): check what won.
        inserted = 0
        for request_id, (label, at) in labels_for(connection, endpoint, new).items():
            if label != wanted[request_id]:
                raise _conflict(request_id, label, wanted[request_id])
            inserted += at == received_at
        return inserted


def feedback(store: Store, endpoint: str, since_ms: int | None = None) -> list[Feedback]:
    """Return the labels stored for ``endpoint``, oldest first.

    Args:
        store: the metadata store.
        endpoint: the endpoint name.
        since_ms: only labels received at or after this time (ms since the epoch).

    Returns:
        The stored labels, ordered by the time they were received.
    """
    _check_endpoint(endpoint, "feedback")
    query = select(_feedback.c.request_id, _feedback.c.label, _feedback.c.received_at).where(
        _feedback.c.endpoint == endpoint
    )
    if since_ms is not None:
        query = query.where(_feedback.c.received_at >= since_ms)
    query = query.order_by(_feedback.c.received_at, _feedback.c.id)
    with store.read() as connection:
        return [Feedback(str(r), label, int(at)) for r, label, at in connection.execute(query)]


def labels_for(
    connection: Connection, endpoint: str, request_ids: Sequence[str]
) -> dict[str, tuple[Any, int]]:
    """Return ``{request_id: (label, received_at)}`` for the requests that have a label."""
    found: dict[str, tuple[Any, int]] = {}
    for start in range(0, len(request_ids), _CHUNK):
        chunk = request_ids[start : start + _CHUNK]
        rows = connection.execute(
            select(_feedback.c.request_id, _feedback.c.label, _feedback.c.received_at).where(
                _feedback.c.endpoint == endpoint, _feedback.c.request_id.in_(chunk)
            )
        )
        for request_id, label, received_at in rows:
            found[str(request_id)] = (label, int(received_at))
    return found


def _json_value(request_id: str, label: Any) -> Any:
    # Compare labels as the store will return them (tuples become lists, etc.).
    try:
        return json.loads(json.dumps(label, allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidParameter(
            f"The label of request {request_id!r} given to record_feedback must be a JSON "
            f"value. Got {type(label).__name__} {label!r} instead."
        ) from None


def _conflict(request_id: str, stored: Any, given: Any) -> InvalidParameter:
    return InvalidParameter(
        f"Request {request_id!r} already has the label {stored!r}; a different label "
        f"{given!r} cannot replace it (the first label sent is final)."
    )


def _check_endpoint(endpoint: str, function: str) -> None:
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidParameter(
            f"The 'endpoint' parameter of {function} must be a non-empty string. "
            f"Got {endpoint!r} instead."
        )
