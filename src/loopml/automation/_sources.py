"""What each kind of trigger watches: new events since a cursor, read from the store.

:func:`poll` returns the events a trigger has not seen yet (at most :data:`MAX_EVENTS`
per call, oldest first) and the cursor after them; :func:`initial_cursor` is where a
new trigger starts (now: a trigger does not fire for what happened before it existed).
An event's ``key`` is unique within its trigger's source (a dataset version's id, an
alert's id, a commit, a schedule tick), so a firing keyed by it happens once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from loopml.automation._schedule import ticks_between
from loopml.store import Store, tables

__all__ = ["MAX_EVENTS", "Event", "Watched", "initial_cursor", "poll"]

MAX_EVENTS = 1000
"""At most this many events are read per trigger and evaluation; the rest next time."""


@dataclass(frozen=True)
class Event:
    """Something a trigger saw.

    Attributes:
        key: unique within the trigger's source (``dataset:42``, ``tick:1700000000000``).
        at: when it happened (ms since the epoch).
        summary: one line for people.
        evidence: how much it weighs for ``min_evidence`` (rows, commits; else 1).
        data: its fields, for templates (``{event.version}``) and the action.
    """

    key: str
    at: int
    summary: str
    evidence: int = 1
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-able data."""
        return {
            "key": self.key,
            "at": self.at,
            "summary": self.summary,
            "evidence": self.evidence,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The event :meth:`to_dict` wrote."""
        return cls(
            str(data["key"]),
            int(data["at"]),
            str(data["summary"]),
            int(data["evidence"]),
            dict(data["data"]),
        )


@dataclass(frozen=True)
class Watched:
    """The trigger being polled: its id, project, kind and source options."""

    trigger_id: int
    project_id: int
    kind: str
    source: Mapping[str, Any]


GitPoll = Callable[[Mapping[str, Any], str | None], tuple[list[Event], str | None]]
"""A git source's new commits since a commit: (events, newest commit)."""


def initial_cursor(store: Store, watched: Watched, now_ms: int) -> dict[str, Any]:
    """Where a new trigger starts reading: after everything that exists now."""
    kind = watched.kind
    if kind == "schedule":
        return {"tick": now_ms}
    if kind == "git":
        return {"commit": None}
    table = {
        "dataset": tables.DATASET_VERSION,
        "monitor_alert": tables.MONITOR_ALERT,
        "model": (
            tables.ALIAS_EVENT
            if watched.source.get("event") == "promoted"
            else tables.MODEL_VERSION
        ),
        "manual": tables.TRIGGER_EVENT,
    }.get(kind)
    if table is not None:
        with store.read() as connection:
            last = connection.execute(select(func.max(table.c.id))).scalar()
        return {"id": int(last or 0)}
    return {"end": now_ms, "run": ""}  # pipeline: runs that end after now


def poll(
    store: Store,
    watched: Watched,
    cursor: Mapping[str, Any],
    now_ms: int,
    *,
    git: GitPoll | None = None,
) -> tuple[list[Event], dict[str, Any]]:
    """The events after ``cursor`` (oldest first, at most :data:`MAX_EVENTS`), and the
    cursor after them.

    The schedule and git kinds read no store rows: ticks come from the cron text, and
    commits from ``git`` (given by the scheduler, which owns the repository cache).
    """
    if watched.kind == "schedule":
        return _ticks(watched.source, cursor, now_ms)
    if watched.kind == "git":
        if git is None:
            return [], dict(cursor)
        events, commit = git(watched.source, cursor.get("commit"))
        return events[-MAX_EVENTS:], {"commit": commit}
    reader = _READERS[watched.kind]
    with store.read() as connection:
        return reader(connection, watched, cursor)


def _ticks(
    source: Mapping[str, Any], cursor: Mapping[str, Any], now_ms: int
) -> tuple[list[Event], dict[str, Any]]:
    last = int(cursor.get("tick", now_ms))
    ticks, more = ticks_between(source["cron"], source.get("timezone", "UTC"), last, now_ms)
    events = [
        Event(
            f"tick:{t}",
            t,
            f"schedule tick {_iso(t)}" + (" (and earlier ticks missed)" if more and i == 0 else ""),
            1,
            {"tick": t, "tick_iso": _iso(t)},
        )
        for i, t in enumerate(ticks)
    ]
    return events, {"tick": ticks[-1] if ticks else last}


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _datasets(
    connection: Connection, watched: Watched, cursor: Mapping[str, Any]
) -> tuple[list[Event], dict[str, Any]]:
    dataset, version = tables.DATASET, tables.DATASET_VERSION
    rows = connection.execute(
        select(
            version.c.id,
            version.c.version,
            version.c.status,
            version.c.report_passed,
            version.c.row_count,
            version.c.created_at,
            version.c.deleted_at,
        )
        .join(dataset, dataset.c.id == version.c.dataset_id)
        .where(
            dataset.c.project_id == watched.project_id,
            dataset.c.name == watched.source["dataset"],
            version.c.id > int(cursor.get("id", 0)),
        )
        .order_by(version.c.id)
        .limit(MAX_EVENTS)
    ).all()
    passed_only = bool(watched.source.get("passed_only", True))
    name = watched.source["dataset"]
    events = [
        Event(
            f"dataset:{r.id}",
            int(r.created_at),
            f"dataset version {name}:{r.version} ({r.row_count} rows)",
            int(r.row_count),
            {"dataset": name, "version": int(r.version), "ref": f"{name}:{r.version}"},
        )
        for r in rows
        if r.deleted_at is None
        and not (passed_only and (r.status == "quarantined" or r.report_passed is False))
    ]
    return events, {"id": int(rows[-1].id) if rows else int(cursor.get("id", 0))}


def _alerts(
    connection: Connection, watched: Watched, cursor: Mapping[str, Any]
) -> tuple[list[Event], dict[str, Any]]:
    monitor, alert, result = tables.MONITOR, tables.MONITOR_ALERT, tables.MONITOR_RESULT
    query = (
        select(
            alert.c.id,
            alert.c.check,
            alert.c.column,
            alert.c.opened_at,
            alert.c.message,
            alert.c.first_result_id,
            result.c.current_rows,
        )
        .join(monitor, monitor.c.id == alert.c.monitor_id)
        .join(result, result.c.id == alert.c.first_result_id)
        .where(
            monitor.c.project_id == watched.project_id,
            monitor.c.name == watched.source["monitor"],
            alert.c.id > int(cursor.get("id", 0)),
        )
        .order_by(alert.c.id)
        .limit(MAX_EVENTS)
    )
    rows = connection.execute(query).all()
    checks = watched.source.get("checks")
    name = watched.source["monitor"]
    events = [
        Event(
            f"alert:{r.id}",
            int(r.opened_at),
            f"monitor {name}: {r.check} alert on {r.column}",
            int(r.current_rows),
            {
                "monitor": name,
                "alert": int(r.id),
                "check": r.check,
                "column": r.column,
                "result": int(r.first_result_id),
                "message": str(r.message)[:500],
            },
        )
        for r in rows
        if not checks or r.check in checks
    ]
    return events, {"id": int(rows[-1].id) if rows else int(cursor.get("id", 0))}


def _pipelines(
    connection: Connection, watched: Watched, cursor: Mapping[str, Any]
) -> tuple[list[Event], dict[str, Any]]:
    run, pipeline = tables.RUN, tables.PIPELINE_RUN
    wanted = watched.source.get("status", "succeeded")
    statuses = {"succeeded": ("finished",), "failed": ("failed",), "any": ("finished", "failed")}
    end, last = int(cursor.get("end", 0)), str(cursor.get("run", ""))
    rows = connection.execute(
        select(run.c.id, run.c.status, run.c.end_time)
        .join(pipeline, pipeline.c.run_id == run.c.id)
        .where(
            run.c.project_id == watched.project_id,
            pipeline.c.pipeline == watched.source["pipeline"],
            run.c.end_time.is_not(None),
            or_(run.c.end_time > end, and_(run.c.end_time == end, run.c.id > last)),
        )
        .order_by(run.c.end_time, run.c.id)
        .limit(MAX_EVENTS)
    ).all()
    name = watched.source["pipeline"]
    events = [
        Event(
            f"run:{r.id}",
            int(r.end_time),
            f"pipeline {name} run {r.id[:8]} {r.status}",
            1,
            {"pipeline": name, "run": r.id, "status": r.status},
        )
        for r in rows
        if r.status in statuses[wanted]
    ]
    after = {"end": int(rows[-1].end_time), "run": rows[-1].id} if rows else dict(cursor)
    return events, after


def _models(
    connection: Connection, watched: Watched, cursor: Mapping[str, Any]
) -> tuple[list[Event], dict[str, Any]]:
    model, version, moved = tables.MODEL, tables.MODEL_VERSION, tables.ALIAS_EVENT
    name = watched.source["model"]
    after = int(cursor.get("id", 0))
    base = model.c.project_id == watched.project_id, model.c.name == name
    if watched.source["event"] == "registered":
        rows = connection.execute(
            select(version.c.id, version.c.version, version.c.created_at)
            .join(model, model.c.id == version.c.model_id)
            .where(*base, version.c.id > after)
            .order_by(version.c.id)
            .limit(MAX_EVENTS)
        ).all()
        events = [
            Event(
                f"version:{r.id}",
                int(r.created_at),
                f"model version {name}/{r.version} registered",
                1,
                {"model": name, "version": int(r.version), "ref": f"{name}/{r.version}"},
            )
            for r in rows
        ]
    else:
        alias = watched.source.get("alias", "champion")
        moves = connection.execute(
            select(moved.c.id, moved.c.at, moved.c.alias, moved.c.action, version.c.version)
            .join(model, model.c.id == moved.c.model_id)
            .outerjoin(version, version.c.id == moved.c.to_version_id)
            .where(*base, moved.c.id > after)
            .order_by(moved.c.id)
            .limit(MAX_EVENTS)
        ).all()
        events = [
            Event(
                f"alias:{r.id}",
                int(r.at),
                f"{name}/{r.version} promoted to @{alias}",
                1,
                {"model": name, "version": int(r.version), "alias": alias},
            )
            for r in moves
            if r.alias == alias and r.action == "promote" and r.version is not None
        ]
        return events, {"id": int(moves[-1].id) if moves else after}
    return events, {"id": int(rows[-1].id) if rows else after}


def _manual(
    connection: Connection, watched: Watched, cursor: Mapping[str, Any]
) -> tuple[list[Event], dict[str, Any]]:
    inbox = tables.TRIGGER_EVENT
    rows = connection.execute(
        select(inbox.c.id, inbox.c.key, inbox.c.at, inbox.c.data, inbox.c.created_by)
        .where(inbox.c.trigger_id == watched.trigger_id, inbox.c.id > int(cursor.get("id", 0)))
        .order_by(inbox.c.id)
        .limit(MAX_EVENTS)
    ).all()
    events = [
        Event(
            f"manual:{r.key}",
            int(r.at),
            f"a request by {r.created_by or 'an unknown account'} (key {r.key})",
            1,
            {**(r.data if isinstance(r.data, dict) else {}), "by": r.created_by},
        )
        for r in rows
    ]
    return events, {"id": int(rows[-1].id) if rows else int(cursor.get("id", 0))}


_READERS: dict[
    str, Callable[[Connection, Watched, Mapping[str, Any]], tuple[list[Event], dict[str, Any]]]
] = {
    "dataset": _datasets,
    "monitor_alert": _alerts,
    "pipeline": _pipelines,
    "model": _models,
    "manual": _manual,
}
