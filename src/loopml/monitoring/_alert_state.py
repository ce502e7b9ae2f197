"""Alert state: one open alert per monitor and check, opened and resolved by results.

After each run (inside the transaction that stores the result):

* a check judged ``alert`` opens an alert for its key (check, column, method,
  segment) unless one is open; an open one is kept, with the latest statistic;
* a check judged ``ok`` resolves the open alert of its key, if any;
* a check judged ``no_data`` changes nothing: it could not be judged;
* a run whose status is ``no_data`` opens a ``no_data`` alert of the monitor (unless
  the monitor says ``alert_on_no_data: false``); the next run with data resolves it.

``monitor_alert.open_key`` (a hash of monitor and key) is unique and set only while
the alert fires, so two runs racing cannot open the same alert twice. SQLite
serialises writers (``BEGIN IMMEDIATE``), so the second run sees the first one's
alert; on PostgreSQL the loser's insert waits for the winner's commit and then fails
on the unique key, inside a savepoint: it updates the winner's alert instead, and
its own transaction (its result, its time series) still commits.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.errors import AlertNotFound, InvalidParameter
from loopml.monitoring._results import CheckResult, MonitorResult
from loopml.store import Store, now_ms, tables

__all__ = ["NO_DATA_CHECK", "Alert", "ack_alert", "apply_alerts", "check_limit", "list_alerts"]

_alert = tables.MONITOR_ALERT
_monitor = tables.MONITOR

_MAX_NOTE = 2_000
_MAX_NOTES = 64_000

NO_DATA_CHECK = "no_data"
"""The check name of the alert a monitor opens when it has too little data to judge."""


@dataclass(frozen=True)
class Alert:
    """An alert of a monitor.

    Attributes:
        id: Its id.
        monitor: The monitor's name.
        check, column, method, segment: The check it is about.
        state: ``firing`` or ``resolved``.
        opened_at: When it opened (ms).
        resolved_at: When it resolved (ms), ``None`` while firing.
        first_result_id: The result that opened it.
        last_result_id: The latest result that judged its check.
        statistic: The statistic in the latest result.
        threshold: The threshold in the latest result.
        message: The latest result's line about it.
        acked_at: When someone acknowledged it (ms), if anyone did.
        acked_by: Who acknowledged it.
        ack_note: What they said.
    """

    id: int
    monitor: str
    check: str
    column: str
    method: str
    segment: str
    state: str
    opened_at: int
    resolved_at: int | None
    first_result_id: int
    last_result_id: int
    statistic: float | None
    threshold: float | None
    message: str
    acked_at: int | None = None
    acked_by: str | None = None
    ack_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


def apply_alerts(
    conn: Connection,
    monitor_id: int,
    monitor_name: str,
    result: MonitorResult,
    *,
    alert_on_no_data: bool,
) -> list[Alert]:
    """Open and resolve ``monitor_id``'s alerts for ``result`` (which has its id).

    Returns:
        The alerts that opened or resolved, in the result's check order.
    """
    assert result.id is not None  # stored before its alerts
    checks = list(result.checks)
    if result.status == "no_data" and alert_on_no_data:
        checks.append(
            CheckResult(
                check=NO_DATA_CHECK,
                column="",
                method="",
                statistic=float(result.current_rows),
                threshold=None,
                status="alert",
                message=f"too little data to judge: {result.current_rows} rows",
            )
        )
    elif result.status != "no_data":
        checks.append(CheckResult(NO_DATA_CHECK, "", "", float(result.current_rows), None, "ok"))
    changed: list[int] = []
    now = now_ms()
    for check in checks:
        key = _open_key(monitor_id, check)
        open_id = conn.execute(select(_alert.c.id).where(_alert.c.open_key == key)).scalar()
        numbers = {
            "statistic": check.to_dict()["statistic"],
            "threshold": check.to_dict()["threshold"],
            "message": check.message or f"{check.check} {check.column}".strip(),
            "last_result_id": result.id,
        }
        if check.status == "alert" and open_id is None:
            values = {
                "monitor_id": monitor_id,
                "open_key": key,
                "check": check.check,
                "column": check.column[:250],
                "method": check.method[:64],
                "segment": check.segment[:250],
                "state": "firing",
                "opened_at": now,
                "first_result_id": result.id,
                **numbers,
            }
            try:
                with conn.begin_nested():
                    new_id = conn.execute(
                        insert(_alert).values(**values).returning(_alert.c.id)
                    ).scalar_one()
                changed.append(int(new_id))
            except IntegrityError:  # a concurrent run opened it first: keep theirs
                conn.execute(update(_alert).where(_alert.c.open_key == key).values(**numbers))
        elif check.status == "alert" and open_id is not None:
            conn.execute(update(_alert).where(_alert.c.id == open_id).values(**numbers))
        elif check.status == "ok" and open_id is not None:
            conn.execute(
                update(_alert)
                .where(_alert.c.id == open_id)
                .values(state="resolved", resolved_at=now, open_key=None, **numbers)
            )
            changed.append(int(open_id))
    return _read(conn, monitor_name, changed)


def list_alerts(
    store: Store,
    *,
    project: str,
    monitor: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts of a project's monitors, newest first.

    Raises:
        ProjectNotFound: no such project.
        InvalidParameter: a bad ``state`` or ``limit``.
    """
    if state not in (None, "firing", "resolved"):
        raise InvalidParameter(
            f"The 'state' parameter must be 'firing' or 'resolved'. Got {state!r} instead."
        )
    check_limit(limit)
    with store.read() as conn:
        project_id = store.require_project(conn, project)
        query = (
            select(_alert, _monitor.c.name.label("monitor_name"))
            .join(_monitor, _monitor.c.id == _alert.c.monitor_id)
            .where(_monitor.c.project_id == project_id)
        )
        if monitor is not None:
            query = query.where(_monitor.c.name == monitor)
        if state is not None:
            query = query.where(_alert.c.state == state)
        rows = conn.execute(
            query.order_by(_alert.c.opened_at.desc(), _alert.c.id.desc()).limit(limit)
        )
        return [_alert_of(row, str(row.monitor_name)) for row in rows]


def ack_alert(
    store: Store, alert_id: int, *, project: str, by: str | None, note: str | None = None
) -> Alert:
    """Acknowledge an alert: someone has seen it (it keeps firing until resolved).

    The first acknowledgement is kept (who, when); a later one adds its note, as
    ``"WHO: NOTE"`` on a new line, so no one's acknowledgement overwrites another's.

    Raises:
        AlertNotFound: no alert of ``project`` has that id. Nothing changes.
        InvalidParameter: a bad ``alert_id`` or ``note``, or the alert's notes would
            exceed their limit. Nothing changes.
    """
    if isinstance(alert_id, bool) or not isinstance(alert_id, int) or not 1 <= alert_id < 2**63:
        raise InvalidParameter(
            f"The 'alert_id' parameter must be a positive int. Got {alert_id!r} instead."
        )
    if note is not None and (
        not isinstance(note, str)
        or len(note) > _MAX_NOTE
        or any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in note)
    ):
        raise InvalidParameter(
            f"The 'note' parameter must be a text of at most {_MAX_NOTE} characters without "
            f"control characters. Got {note[:80]!r} instead."
            if isinstance(note, str)
            else f"The 'note' parameter must be a text. Got {type(note).__name__} instead."
        )
    with store.write() as conn:
        project_id = store.require_project(conn, project)
        row = conn.execute(
            select(_alert.c.id, _alert.c.acked_at, _alert.c.ack_note, _monitor.c.name)
            .join(_monitor, _monitor.c.id == _alert.c.monitor_id)
            .where(_alert.c.id == alert_id, _monitor.c.project_id == project_id)
        ).first()
        if row is None:
            raise AlertNotFound(
                f"No alert {alert_id} in project {project!r}; `loopml alerts list` shows them."
            )
        if row.acked_at is None:
            values: dict[str, Any] = {"acked_at": now_ms(), "acked_by": by, "ack_note": note}
        else:
            values = {"ack_note": _added_note(row.ack_note, by, note, alert_id)}
        conn.execute(update(_alert).where(_alert.c.id == alert_id).values(**values))
        return _read(conn, str(row.name), [alert_id])[0]


def _added_note(notes: str | None, by: str | None, note: str | None, alert_id: int) -> str | None:
    if not note:
        return notes
    line = f"{by or 'someone'}: {note}"
    joined = line if not notes else f"{notes}\n{line}"
    if len(joined) > _MAX_NOTES:
        raise InvalidParameter(
            f"Alert {alert_id} already holds {len(notes or '')} characters of notes; they "
            f"are kept to {_MAX_NOTES}. Nothing was added."
        )
    return joined


def _open_key(monitor_id: int, check: CheckResult) -> str:
    text = "\x1f".join((str(monitor_id), check.check, check.column, check.method, check.segment))
    return hashlib.sha256(text.encode()).hexdigest()


def _read(conn: Connection, monitor_name: str, ids: list[int]) -> list[Alert]:
    if not ids:
        return []
    rows = {int(r.id): r for r in conn.execute(select(_alert).where(_alert.c.id.in_(ids)))}
    return [_alert_of(rows[i], monitor_name) for i in ids]


def _alert_of(row: Any, monitor_name: str) -> Alert:
    return Alert(
        id=int(row.id),
        monitor=monitor_name,
        check=str(row.check),
        column=str(row.column),
        method=str(row.method),
        segment=str(row.segment),
        state=str(row.state),
        opened_at=int(row.opened_at),
        resolved_at=None if row.resolved_at is None else int(row.resolved_at),
        first_result_id=int(row.first_result_id),
        last_result_id=int(row.last_result_id),
        statistic=row.statistic,
        threshold=row.threshold,
        message=str(row.message),
        acked_at=None if row.acked_at is None else int(row.acked_at),
        acked_by=row.acked_by,
        ack_note=row.ack_note,
    )


def check_limit(limit: object) -> None:
    """Refuse a listing ``limit`` that is not an int from 1 to 100,000.

    Raises:
        InvalidParameter: naming the limit and what was given.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise InvalidParameter(
            f"The 'limit' parameter must be an int from 1 to 100000. Got {limit!r} instead."
        )
