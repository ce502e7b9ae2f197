"""Feedback: ground-truth labels that arrive for predictions, by request id, later.

The last label sent for a request is the one in force (``feedback``, what
:func:`~loopml.serving.predictions` joins and the route comparison scores); every
label accepted, the first and each correction, is kept with when it arrived and who
sent it (``feedback_event``, read by :func:`feedback_history`), so a correction
never erases what was there. Sending the label in force again is a no-op (clients
retry batches). Labels are bounded: at most :data:`MAX_LABEL_BYTES` of JSON, nested
at most :data:`MAX_LABEL_DEPTH` deep.

Over HTTP, labels are taken only for request ids the endpoint answered: every id a
server answers with carries a MAC of the endpoint and its random part
(:class:`RequestIds`, keyed by a secret kept in the store, so every worker and every
server of the store agrees), which the feedback route checks before anything is
stored. :func:`record_feedback` itself, called with the store in hand, takes any id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.errors import InvalidParameter
from loopml.serving._payloads import json_depth
from loopml.store import Store, now_ms, tables

__all__ = [
    "MAX_LABEL_BYTES",
    "MAX_LABEL_DEPTH",
    "Feedback",
    "LabelChange",
    "RequestIds",
    "feedback",
    "feedback_history",
    "labels_for",
    "record_feedback",
]

MAX_LABEL_BYTES = 4096
"""A label's JSON text may be at most this long."""
MAX_LABEL_DEPTH = 8
"""A label may nest arrays and objects at most this deep."""

_feedback = tables.FEEDBACK
_events = tables.FEEDBACK_EVENT
_secret = tables.SERVING_SECRET
_REQUEST_ID_LENGTH = 64
_SDK_SOURCE = "sdk"
# Keeps IN (...) lists well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Feedback:
    """One label in force.

    Attributes:
        request_id: the request the label belongs to.
        label: the ground truth (any JSON value).
        received_at: when it was stored, in milliseconds since the epoch.
    """

    request_id: str
    label: Any
    received_at: int


@dataclass(frozen=True, slots=True)
class LabelChange:
    """One label accepted for a request (the first, or a correction).

    Attributes:
        request_id: the request the label belongs to.
        label: the label sent.
        received_at: when it was stored, in milliseconds since the epoch.
        source: who sent it (``sdk``, or ``http <client address>``).
    """

    request_id: str
    label: Any
    received_at: int
    source: str


class RequestIds:
    """Request ids that prove which endpoint answered them: ``<32 hex random><16 hex MAC>``.

    The MAC is HMAC-SHA256 of the endpoint and the random part, truncated to 64 bits,
    keyed by a secret made once per store (``serving_secret``), so ids issued by any
    worker or server of the store are recognised by every other.

    Example:
        >>> from loopml.store import open_store
        >>> ids = RequestIds.of_store(open_store("sqlite://"))
        >>> answered = ids.issue("fraud")
        >>> ids.answered("fraud", answered), ids.answered("other", answered)
        (True, False)
    """

    _RANDOM_HEX = 32
    _MAC_HEX = 16
    _NAME = "request_ids"

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def of_store(cls, store: Store) -> RequestIds:
        """The ids of ``store``'s servers, making the store's secret on first use."""
        with store.write() as connection:
            factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            connection.execute(
                factory(_secret)
                .values(name=cls._NAME, value=secrets.token_hex(32), created_at=now_ms())
                .on_conflict_do_nothing(index_elements=[_secret.c.name])
            )
            value = connection.execute(
                select(_secret.c.value).where(_secret.c.name == cls._NAME)
            ).scalar_one()
        return cls(bytes.fromhex(str(value)))

    def _mac(self, endpoint: str, random_part: str) -> str:
        message = f"{endpoint}\0{random_part}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[: self._MAC_HEX]

    def issue(self, endpoint: str) -> str:
        """A fresh id for a request ``endpoint`` answers."""
        random_part = secrets.token_hex(self._RANDOM_HEX // 2)
        return random_part + self._mac(endpoint, random_part)

    def answered(self, endpoint: str, request_id: str) -> bool:
        """Whether ``request_id`` was issued for ``endpoint`` (constant-time compare)."""
        if len(request_id) != self._RANDOM_HEX + self._MAC_HEX:
            return False
        random_part, mac = request_id[: self._RANDOM_HEX], request_id[self._RANDOM_HEX :]
        return hmac.compare_digest(self._mac(endpoint, random_part), mac)


def record_feedback(
    store: Store,
    endpoint: str,
    items: Iterable[tuple[str, Any]],
    *,
    source: str = _SDK_SOURCE,
) -> int:
    """Store ground-truth labels for predictions of ``endpoint``, all or none.

    A label for a request that has one already replaces it (the last one counts);
    both stay in :func:`feedback_history`. Within one batch, the last label given
    for a request counts.

    Args:
        store: the metadata store.
        endpoint: the endpoint that answered the requests.
        items: ``(request_id, label)`` pairs; a label is any JSON value of at most
            :data:`MAX_LABEL_BYTES` bytes, nested at most :data:`MAX_LABEL_DEPTH` deep.
        source: who sends the labels (kept in the history).

    Returns:
        The number of labels stored or changed (repeats of the label in force are
        not counted).

    Raises:
        InvalidParameter: a request id is empty or too long, or a label is not JSON,
            too large or too deeply nested. Nothing from the batch is stored then.

    Example:
        >>> from loopml.store import open_store
        >>> store = open_store("sqlite://")
        >>> record_feedback(store, "fraud", [("r1", 1), ("r2", 0)])
        2
        >>> record_feedback(store, "fraud", [("r1", 1)])
        0
        >>> record_feedback(store, "fraud", [("r1", 0)])
        1
        >>> [change.label for change in feedback_history(store, "fraud", "r1")]
        [1, 0]
    """
    _check_text(endpoint, "endpoint", "record_feedback")
    _check_text(source, "source", "record_feedback")
    wanted: dict[str, tuple[str, Any]] = {}
    for request_id, label in items:
        if not isinstance(request_id, str) or not 0 < len(request_id) <= _REQUEST_ID_LENGTH:
            raise InvalidParameter(
                "The request ids given to record_feedback must be non-empty strings of at "
                f"most {_REQUEST_ID_LENGTH} characters. Got {request_id!r:.80} instead."
            )
        wanted[request_id] = _label(request_id, label)
    if not wanted:
        return 0
    received_at = now_ms()
    with store.write() as connection:
        stored = labels_for(connection, endpoint, list(wanted))
        changed = [
            request_id
            for request_id, (text, _) in wanted.items()
            if request_id not in stored or _canonical(stored[request_id][0]) != text
        ]
        if not changed:
            return 0
        rows = [
            {
                "endpoint": endpoint,
                "request_id": request_id,
                "label": wanted[request_id][1],
                "received_at": received_at,
            }
            for request_id in changed
        ]
        factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        statement = factory(_feedback)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[_feedback.c.endpoint, _feedback.c.request_id],
                set_={
                    "label": statement.excluded.label,
                    "received_at": statement.excluded.received_at,
                },
            ),
            rows,
        )
        connection.execute(_events.insert(), [{**row, "source": source} for row in rows])
        return len(changed)


def feedback(store: Store, endpoint: str, since_ms: int | None = None) -> list[Feedback]:
    """Return the labels in force for ``endpoint``, oldest first.

    Args:
        store: the metadata store.
        endpoint: the endpoint name.
        since_ms: only labels received at or after this time (ms since the epoch).

    Returns:
        The labels in force (the last one sent for each request), ordered by the
        time they were received.
    """
    _check_text(endpoint, "endpoint", "feedback")
    query = select(_feedback.c.request_id, _feedback.c.label, _feedback.c.received_at).where(
        _feedback.c.endpoint == endpoint
    )
    if since_ms is not None:
        query = query.where(_feedback.c.received_at >= since_ms)
    query = query.order_by(_feedback.c.received_at, _feedback.c.id)
    with store.read() as connection:
        return [Feedback(str(r), label, int(at)) for r, label, at in connection.execute(query)]


def feedback_history(
    store: Store, endpoint: str, request_id: str | None = None
) -> list[LabelChange]:
    """Return every label accepted for ``endpoint`` (or one request), oldest first.

    Args:
        store: the metadata store.
        endpoint: the endpoint name.
        request_id: only this request's labels.

    Returns:
        Each label accepted, the first and every correction, in the order received.
    """
    _check_text(endpoint, "endpoint", "feedback_history")
    query = select(
        _events.c.request_id, _events.c.label, _events.c.received_at, _events.c.source
    ).where(_events.c.endpoint == endpoint)
    if request_id is not None:
        query = query.where(_events.c.request_id == request_id)
    with store.read() as connection:
        rows = connection.execute(query.order_by(_events.c.received_at, _events.c.id))
        return [LabelChange(str(r), label, int(at), str(src)) for r, label, at, src in rows]


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


def _label(request_id: str, label: Any) -> tuple[str, Any]:
    """The label's canonical JSON text and its value as the store will return it."""
    if json_depth(label) > MAX_LABEL_DEPTH:
        raise InvalidParameter(
            f"The label of request {request_id!r} given to record_feedback must nest at "
            f"most {MAX_LABEL_DEPTH} arrays or objects deep."
        )
    try:
        text = _canonical(label)
    except (TypeError, ValueError):  # not JSON, or NaN / infinity
        raise InvalidParameter(
            f"The label of request {request_id!r} given to record_feedback must be a JSON "
            f"value. Got {type(label).__name__} {label!r:.80} instead."
        ) from None
    if len(text) > MAX_LABEL_BYTES:
        raise InvalidParameter(
            f"The label of request {request_id!r} given to record_feedback must be at most "
            f"{MAX_LABEL_BYTES} bytes of JSON. Got {len(text)} bytes instead."
        )
    return text, json.loads(text)


def _canonical(label: Any) -> str:
    """JSON text that is equal for equal labels (sorted keys; ``1`` and ``true`` differ).

    The label's depth is bounded before this is called, so the encoder cannot recurse
    too deep.
    """
    return json.dumps(label, allow_nan=False, sort_keys=True, separators=(",", ":"))


def _check_text(value: object, name: str, function: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(
            f"The {name!r} parameter of {function} must be a non-empty string. "
            f"Got {value!r} instead."
        )
