"""The model event log: policy changes and version archiving, recorded with who, when, why.

Each change writes its ``model_event`` row in the same transaction as the change
itself, so no change is ever left without its record.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, select

from loopml.approvals import current_identity
from loopml.errors import InvalidParameter
from loopml.registry._records import ModelEvent
from loopml.store import now_ms, tables

__all__ = [
    "MAX_REASON",
    "POLICY_ACTIONS",
    "check_reason",
    "events_of",
    "latest_event",
    "record_event",
]

_event = tables.MODEL_EVENT
_version = tables.MODEL_VERSION

POLICY_ACTIONS = ("policy_set", "policy_clear")
MAX_REASON = 2000
"""The longest reason a change keeps, in characters."""


def check_reason(reason: object, *, what: str, required: bool) -> str | None:
    """``reason`` stripped, or None; refuses a missing required or an over-long reason.

    Raises:
        InvalidParameter: a required reason is missing or blank, the reason is not a
            string, or it is longer than :data:`MAX_REASON` characters.
    """
    if reason is None and not required:
        return None
    if not isinstance(reason, str) or (required and not reason.strip()):
        raise InvalidParameter(
            f"{what} needs a reason (a non-empty string, kept with the record); got {reason!r}."
        )
    if len(reason) > MAX_REASON:
        raise InvalidParameter(
            f"The reason for {what} is {len(reason)} characters long; at most {MAX_REASON}."
        )
    return reason.strip() or None


def record_event(conn: Connection, model_id: int, action: str, **values: Any) -> None:
    """Insert one ``model_event`` row as the current identity, now."""
    conn.execute(
        _event.insert().values(
            model_id=model_id, action=action, actor=current_identity(), at=now_ms(), **values
        )
    )


def events_of(
    conn: Connection, model_id: int, actions: Collection[str] | None = None
) -> list[ModelEvent]:
    """The model's events (of ``actions`` only, if given), oldest first."""
    query = (
        select(_event, _version.c.version.label("version_number"))
        .outerjoin(_version, _version.c.id == _event.c.version_id)
        .where(_event.c.model_id == model_id)
        .order_by(_event.c.id)
    )
    if actions is not None:
        query = query.where(_event.c.action.in_(tuple(actions)))
    return [_event_record(row) for row in conn.execute(query)]


def latest_event(
    conn: Connection, model_id: int, actions: Collection[str], *, version_id: int | None = None
) -> ModelEvent | None:
    """The model's newest event of ``actions`` (about ``version_id``, if given), or None."""
    query = (
        select(_event, _version.c.version.label("version_number"))
        .outerjoin(_version, _version.c.id == _event.c.version_id)
        .where(_event.c.model_id == model_id, _event.c.action.in_(tuple(actions)))
        .order_by(_event.c.id.desc())
        .limit(1)
    )
    if version_id is not None:
        query = query.where(_event.c.version_id == version_id)
    row = conn.execute(query).first()
    return None if row is None else _event_record(row)


def _event_record(row: Any) -> ModelEvent:
    return ModelEvent(
        action=row.action,
        version=row.version_number,
        revision=row.revision,
        policy=None if row.policy is None else list(row.policy),
        policy_text=row.policy_text,
        status_before=row.status_before,
        reason=row.reason,
        actor=row.actor,
        at=row.at,
    )
