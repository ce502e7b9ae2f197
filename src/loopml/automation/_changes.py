"""Which triggers' sources have something after their cursors: one query per kind, per tick.

Polling each trigger (:func:`~loopml.automation._sources.poll`) costs a read transaction
and a query; with a thousand triggers and nothing new that was most of a tick. The
scheduler asks :func:`changed` first, and polls only the triggers it names (and every
``git`` trigger, whose commits are not in the store); :func:`next_tick` does the same for
schedules without walking their cron text each tick.

The answer may name a trigger whose poll then finds nothing (a dataset version that is
quarantined, an alert of another check): that costs a poll, nothing else. It never
leaves out a trigger that has a row after its cursor, since it compares the newest row
of each source, by the same order the poll reads in, with the cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from loopml.automation._schedule import check_timezone
from loopml.automation._sources import Watched
from loopml.automation._triggers import UNFINISHED
from loopml.store import tables

__all__ = ["changed", "next_tick", "unfinished_counts"]

_STORED = ("dataset", "monitor_alert", "pipeline", "model", "manual")


def changed(
    connection: Connection, watched: Iterable[tuple[Watched, Mapping[str, Any]]]
) -> set[int]:
    """The ids of the triggers (of the kinds read from the store) that may have new events.

    Args:
        connection: a read transaction.
        watched: each trigger and its cursor; kinds not read from the store are ignored.
    """
    by_kind: dict[str, list[tuple[Watched, Mapping[str, Any]]]] = {}
    for item in watched:
        if item[0].kind in _STORED:
            kind = item[0].kind
            if kind == "model":
                kind = "promoted" if item[0].source.get("event") == "promoted" else "registered"
            by_kind.setdefault(kind, []).append(item)
    found: set[int] = set()
    for kind, items in by_kind.items():
        if kind == "manual":
            found |= _manual(connection, items)
        elif kind == "pipeline":
            found |= _pipelines(connection, items)
        else:
            found |= _by_id(connection, kind, items)
    return found


def _by_id(
    connection: Connection, kind: str, items: list[tuple[Watched, Mapping[str, Any]]]
) -> set[int]:
    """Sources named within a project, whose events are rows read by growing id."""
    key = {"dataset": "dataset", "monitor_alert": "monitor"}.get(kind, "model")
    projects = {w.project_id for w, _ in items}
    names = {str(w.source[key]) for w, _ in items}
    query: Select[Any]
    if kind == "dataset":
        owner, rows = tables.DATASET, tables.DATASET_VERSION
        query = select(owner.c.project_id, owner.c.name, func.max(rows.c.id)).join(
            owner, owner.c.id == rows.c.dataset_id
        )
    elif kind == "monitor_alert":
        owner, rows = tables.MONITOR, tables.MONITOR_ALERT
        query = select(owner.c.project_id, owner.c.name, func.max(rows.c.id)).join(
            owner, owner.c.id == rows.c.monitor_id
        )
    else:
        owner = tables.MODEL
        rows = tables.ALIAS_EVENT if kind == "promoted" else tables.MODEL_VERSION
        query = select(owner.c.project_id, owner.c.name, func.max(rows.c.id)).join(
            owner, owner.c.id == rows.c.model_id
        )
    selected = query.where(owner.c.project_id.in_(projects), owner.c.name.in_(names))
    newest = {
        (int(r[0]), str(r[1])): int(r[2])
        for r in connection.execute(selected.group_by(owner.c.project_id, owner.c.name))
    }
    return {
        w.trigger_id
        for w, cursor in items
        if newest.get((w.project_id, str(w.source[key])), 0) > int(cursor.get("id", 0))
    }


def _manual(connection: Connection, items: list[tuple[Watched, Mapping[str, Any]]]) -> set[int]:
    inbox = tables.TRIGGER_EVENT
    query = (
        select(inbox.c.trigger_id, func.max(inbox.c.id))
        .where(inbox.c.trigger_id.in_({w.trigger_id for w, _ in items}))
        .group_by(inbox.c.trigger_id)
    )
    newest = {int(r[0]): int(r[1]) for r in connection.execute(query)}
    return {
        w.trigger_id
        for w, cursor in items
        if newest.get(w.trigger_id, 0) > int(cursor.get("id", 0))
    }


def _pipelines(connection: Connection, items: list[tuple[Watched, Mapping[str, Any]]]) -> set[int]:
    """The newest finished run of each pipeline by (end time, run id), as the poll reads."""
    run, pipeline = tables.RUN, tables.PIPELINE_RUN
    projects = {w.project_id for w, _ in items}
    names = {str(w.source["pipeline"]) for w, _ in items}
    ended = (
        select(
            run.c.project_id.label("project_id"),
            pipeline.c.pipeline.label("pipeline"),
            func.max(run.c.end_time).label("end_time"),
        )
        .join(pipeline, pipeline.c.run_id == run.c.id)
        .where(
            run.c.project_id.in_(projects),
            pipeline.c.pipeline.in_(names),
            run.c.end_time.is_not(None),
        )
        .group_by(run.c.project_id, pipeline.c.pipeline)
        .subquery()
    )
    newest = {
        (int(project), str(name)): (int(end), str(last))
        for project, name, end, last in connection.execute(
            select(ended.c.project_id, ended.c.pipeline, ended.c.end_time, func.max(run.c.id))
            .join(pipeline, pipeline.c.pipeline == ended.c.pipeline)
            .join(
                run,
                (run.c.id == pipeline.c.run_id)
                & (run.c.project_id == ended.c.project_id)
                & (run.c.end_time == ended.c.end_time),
            )
            .group_by(ended.c.project_id, ended.c.pipeline, ended.c.end_time)
        )
    }
    found: set[int] = set()
    for w, cursor in items:
        last = newest.get((w.project_id, str(w.source["pipeline"])))
        if last is not None and last > (int(cursor.get("end", 0)), str(cursor.get("run", ""))):
            found.add(w.trigger_id)
    return found


def unfinished_counts(connection: Connection) -> dict[int, int]:
    """How many firings of each trigger are pending or running (absent: none)."""
    firing = tables.TRIGGER_FIRING
    return {
        int(trigger_id): int(count)
        for trigger_id, count in connection.execute(
            select(firing.c.trigger_id, func.count())
            .where(firing.c.status.in_(UNFINISHED))
            .group_by(firing.c.trigger_id)
        )
    }


def next_tick(cron: str, timezone: str, after_ms: int) -> int:
    """The first tick of ``cron`` in ``timezone`` after ``after_ms`` (ms since the epoch)."""
    from croniter import croniter

    zone = check_timezone(timezone)
    start = datetime.fromtimestamp(after_ms / 1000, tz=zone)
    return int(croniter(cron, start).get_next(float) * 1000)
