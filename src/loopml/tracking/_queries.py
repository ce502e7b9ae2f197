"""Read side of tracking: turn rows into :class:`Run` records, many at a time."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    String,
    Table,
    Text,
    any_,
    bindparam,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY

from loopml.store import tables
from loopml.tracking._records import JSONMapping, Metric, Note, Run, RunArtifact

__all__ = ["RUN_COLUMNS", "load_runs", "metric_history", "nan_if_none"]

_run = tables.RUN
_project = tables.PROJECT
_latest = tables.LATEST_METRIC
_metric = tables.METRIC
_artifact = tables.RUN_ARTIFACT
_note = tables.NOTE

# Fixed order: _record unpacks rows positionally (much cheaper than by name). The
# context is selected as text and parsed only when read (see JSONMapping).
_RUN_FIELDS = (
    "id",
    "name",
    "kind",
    "status",
    "parent_id",
    "user",
    "start_time",
    "end_time",
    "heartbeat_at",
    "failure_type",
    "failure_message",
    "failure_traceback",
    "environment_sha256",
    "params_json",
    "tags_json",
    "cpu_seconds",
    "peak_memory_bytes",
    "wall_seconds",
    "deleted_at",
)
RUN_COLUMNS = (
    *(_run.c[name] for name in _RUN_FIELDS),
    type_coerce(_run.c.context, Text).label("context"),
    _project.c.name.label("project_name"),
)
_CHUNK = 5_000


def nan_if_none(value: float | None) -> float:
    """Stored NULL metric values stand for NaN."""
    return float("nan") if value is None else value


def load_runs(
    connection: Connection,
    rows: Sequence[Row[Any]],
    lost_before_ms: int,
    *,
    with_notes: bool = False,
) -> list[Run]:
    """Build full records for ``rows`` (selected with :data:`RUN_COLUMNS`), keeping their order."""
    ids = [row.id for row in rows]
    metrics: dict[str, dict[str, float]] = defaultdict(dict)
    for run_id, key, value in _related(connection, _latest, ("key", "value"), ids):
        metrics[run_id][key] = nan_if_none(value)
    artifacts: dict[str, list[RunArtifact]] = defaultdict(list)
    for run_id, path, digest, size, is_dir in _related(
        connection, _artifact, ("path", "digest", "size", "is_dir"), ids
    ):
        artifacts[run_id].append(RunArtifact(path, digest, size, is_dir))
    for entries in artifacts.values():
        entries.sort(key=lambda artifact: artifact.path)
    notes: dict[str, list[Note]] = defaultdict(list)
    if with_notes:
        for chunk in _chunks(ids):
            query = (
                select(_note)
                .where(_note.c.object_kind == "run", _note.c.object_id.in_(chunk))
                .order_by(_note.c.created_at, _note.c.id)
            )
            for n in connection.execute(query):
                notes[n.object_id].append(Note(n.text, n.author, n.created_at))
    return [
        _record(
            row,
            lost_before_ms,
            metrics.get(row.id, {}),
            tuple(artifacts.get(row.id, ())),
            tuple(notes.get(row.id, ())),
        )
        for row in rows
    ]


def _related(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    ids: Sequence[str],
) -> list[Any]:
    """Rows of ``table`` (run_id first, then ``columns``) for the given runs."""
    selected = [table.c.run_id, *(table.c[name] for name in columns)]
    found: list[Any] = []
    for chunk in _chunks(ids):
        condition = _one_of(table.c.run_id, chunk, connection.dialect.name)
        found.extend(connection.execute(select(*selected).where(condition)).all())
    return found


def _one_of(column: ColumnElement[Any], ids: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """``column IN ids`` with the ids bound as ONE parameter (a JSON array / an array).

    Hundreds of separate bound values cost more to render and bind than the query
    costs to run.
    """
    if len(ids) <= 8:
        return column.in_(ids)
    if dialect == "sqlite":
        values = (
            text("SELECT value FROM json_each(:loopml_ids)")
            .bindparams(loopml_ids=json.dumps(list(ids)))
            .columns(value=String)
        )
        return column.in_(values)
    if dialect == "postgresql":
        return column == any_(bindparam("loopml_ids", list(ids), type_=ARRAY(String)))
    return column.in_(ids)


def metric_history(connection: Connection, run_id: str, key: str) -> list[Metric]:
    """Every point of one metric, in step order (then time, then logging order)."""
    query = (
        select(_metric.c.key, _metric.c.value, _metric.c.step, _metric.c.timestamp)
        .where(_metric.c.run_id == run_id, _metric.c.key == key)
        .order_by(_metric.c.step, _metric.c.timestamp, _metric.c.id)
    )
    return [Metric(k, nan_if_none(v), s, t) for k, v, s, t in connection.execute(query)]


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _record(
    row: Sequence[Any],
    lost_before_ms: int,
    metrics: dict[str, float],
    artifacts: tuple[RunArtifact, ...],
    notes: tuple[Note, ...],
) -> Run:
    (
        run_id,
        name,
        kind,
        status,
        parent_id,
        user,
        start_time,
        end_time,
        heartbeat_at,
        failure_type,
        failure_message,
        failure_traceback,
        environment,
        params_json,
        tags_json,
        cpu_seconds,
        peak_memory_bytes,
        wall_seconds,
        deleted_at,
        context_json,
        project,
    ) = row
    if status == "running" and heartbeat_at < lost_before_ms:
        status = "lost"
    failure = None
    if failure_type is not None:
        failure = {
            "type": failure_type,
            "message": failure_message or "",
            "traceback": failure_traceback or "",
        }
    resources = None
    if wall_seconds is not None:
        resources = {
            "cpu_seconds": cpu_seconds,
            "peak_memory_bytes": peak_memory_bytes,
            "wall_seconds": wall_seconds,
        }
    extra = {"environment_sha256": environment} if environment else None
    return Run(
        run_id,
        project,
        name,
        kind,
        status,
        parent_id,
        user,
        start_time,
        end_time,
        heartbeat_at,
        JSONMapping(params_json),
        JSONMapping(tags_json),
        metrics,
        JSONMapping(context_json, extra),
        artifacts,
        notes,
        failure,
        resources,
        deleted_at,
    )
