"""Read side of tracking: turn rows into :class:`Run` records, many at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from loopml.store import tables
from loopml.tracking._records import Metric, Note, Run, RunArtifact

__all__ = ["RUN_COLUMNS", "load_runs", "metric_history", "nan_if_none"]

_run = tables.RUN
_project = tables.PROJECT
_param = tables.PARAM
_tag = tables.TAG
_latest = tables.LATEST_METRIC
_metric = tables.METRIC
_artifact = tables.RUN_ARTIFACT
_note = tables.NOTE

RUN_COLUMNS = (*_run.c, _project.c.name.label("project_name"))
_CHUNK = 5_000


def nan_if_none(value: float | None) -> float:
    """Stored NULL metric values stand for NaN."""
    return float("nan") if value is None else value


def load_runs(
    connection: Connection,
    rows: Sequence[Row[Any]],
    lost_before_ms: int,
    with_notes: bool = False,
) -> list[Run]:
    """Build full records for ``rows`` (selected with :data:`RUN_COLUMNS`), keeping their order."""
    ids = [row.id for row in rows]
    params = _key_values(connection, _param, ids)
    tags = _key_values(connection, _tag, ids)
    metrics: dict[str, dict[str, float]] = defaultdict(dict)
    for chunk in _chunks(ids):
        query = select(_latest.c.run_id, _latest.c.key, _latest.c.value).where(
            _latest.c.run_id.in_(chunk)
        )
        for run_id, key, value in connection.execute(query):
            metrics[run_id][key] = nan_if_none(value)
    artifacts: dict[str, list[RunArtifact]] = defaultdict(list)
    for chunk in _chunks(ids):
        query = select(_artifact).where(_artifact.c.run_id.in_(chunk)).order_by(_artifact.c.path)
        for a in connection.execute(query):
            artifacts[a.run_id].append(RunArtifact(a.path, a.digest, a.size, a.is_dir))
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
            params.get(row.id, {}),
            tags.get(row.id, {}),
            metrics.get(row.id, {}),
            tuple(artifacts.get(row.id, ())),
            tuple(notes.get(row.id, ())),
        )
        for row in rows
    ]


def metric_history(connection: Connection, run_id: str, key: str) -> list[Metric]:
    """Every point of one metric, in step order (then time, then logging order)."""
    query = (
        select(_metric.c.key, _metric.c.value, _metric.c.step, _metric.c.timestamp)
        .where(_metric.c.run_id == run_id, _metric.c.key == key)
        .order_by(_metric.c.step, _metric.c.timestamp, _metric.c.id)
    )
    return [Metric(k, nan_if_none(v), s, t) for k, v, s, t in connection.execute(query)]


def _key_values(
    connection: Connection, table: Any, ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(ids):
        query = select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(chunk))
        for run_id, key, value in connection.execute(query):
            found[run_id][key] = value
    return found


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _record(
    row: Row[Any],
    lost_before_ms: int,
    params: dict[str, str],
    tags: dict[str, str],
    metrics: dict[str, float],
    artifacts: tuple[RunArtifact, ...],
    notes: tuple[Note, ...],
) -> Run:
    status = row.status
    if status == "running" and row.heartbeat_at < lost_before_ms:
        status = "lost"
    failure = None
    if row.failure_type is not None:
        failure = {
            "type": row.failure_type,
            "message": row.failure_message or "",
            "traceback": row.failure_traceback or "",
        }
    resources = None
    if row.wall_seconds is not None:
        resources = {
            "cpu_seconds": row.cpu_seconds,
            "peak_memory_bytes": row.peak_memory_bytes,
            "wall_seconds": row.wall_seconds,
        }
    context = dict(row.context or {})
    if row.environment_sha256:
        context.setdefault("environment_sha256", row.environment_sha256)
    return Run(
        id=row.id,
        project=row.project_name,
        name=row.name,
        kind=row.kind,
        status=status,
        parent_id=row.parent_id,
        user=row.user,
        start_time=row.start_time,
        end_time=row.end_time,
        heartbeat_at=row.heartbeat_at,
        params=params,
        tags=tags,
        metrics=metrics,
        context=context,
        artifacts=artifacts,
        notes=notes,
        failure=failure,
        resources=resources,
    )
