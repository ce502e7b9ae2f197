"""Stored monitors and their results: create, list, get, delete, record a run, history.

A monitor is a ``monitor`` row holding its :class:`MonitorSpec` as JSON. Recording a
run (:meth:`MonitorStore.record`) writes, in ONE transaction, the ``monitor_result``
row (the whole result is a JSON blob in the artifact store, put before the
transaction so a crash leaves at most an unreferenced blob for garbage collection),
one ``monitor_check`` row per check (the time series), the lineage edges to the model
version and the reference dataset version, and the alert transitions
(:mod:`loopml.monitoring._alert_state`). Either all of it is stored or none.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from loopml._names import closest
from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter, MonitorNotFound
from loopml.monitoring._alert_state import Alert, apply_alerts, check_limit
from loopml.monitoring._results import CheckResult, MonitorResult
from loopml.monitoring._sinks import sink_from_spec
from loopml.monitoring._spec import MonitorSpec
from loopml.store import Store, now_ms, tables
from loopml.store._lineage import Node, add_edge

__all__ = ["HistoryPoint", "MonitorRecord", "MonitorStore"]

_monitor = tables.MONITOR
_result = tables.MONITOR_RESULT
_check = tables.MONITOR_CHECK
_alert = tables.MONITOR_ALERT
_MAX_RESULT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class MonitorRecord:
    """A stored monitor.

    Attributes:
        id: Its id in the store.
        project: Its project.
        spec: Its configuration.
        created_at: When it was created (ms).
        updated_at: When its configuration last changed (ms).
        last_status: The status of its latest run, ``None`` if it never ran.
        last_run_at: When its latest run started (ms), ``None`` if it never ran.
    """

    id: int
    project: str
    spec: MonitorSpec
    created_at: int
    updated_at: int
    last_status: str | None = None
    last_run_at: int | None = None

    @property
    def name(self) -> str:
        """The monitor's name."""
        return self.spec.name


@dataclass(frozen=True)
class HistoryPoint:
    """One check of one run, from the time series.

    Attributes:
        result_id: The run's result id.
        at: When the run started (ms).
        check, column, method, segment: Which check.
        statistic, threshold, p_value: Its numbers.
        status: Its decision.
    """

    result_id: int
    at: int
    check: str
    column: str
    method: str
    segment: str
    statistic: float | None
    threshold: float | None
    p_value: float | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


class MonitorStore:
    """Monitors, results and alerts in a metadata store (blobs in an artifact store).

    Args:
        store: The metadata store.
        artifacts: The artifact store that holds each result's JSON.
    """

    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    # -- monitors -----------------------------------------------------------------

    def create(self, spec: MonitorSpec, *, project: str, replace: bool = False) -> MonitorRecord:
        """Store a new monitor, or (with ``replace``) a new configuration of an existing one.

        Every sink is checked first (a webhook's scheme and literal address, a command's
        form), so a monitor that could never deliver is not stored.

        Raises:
            InvalidParameter: the monitor exists and ``replace`` is false, or a sink is
                malformed. Nothing changes.
            ForbiddenAddress: a webhook points at a loopback, private or reserved address
                the settings do not allow.
        """
        for sink in spec.sinks:
            sink_from_spec(sink)
        now = now_ms()
        with self.store.write() as conn:
            project_id = self.store.project_id(conn, project)
            existing = conn.execute(
                select(_monitor.c.id).where(
                    _monitor.c.project_id == project_id, _monitor.c.name == spec.name
                )
            ).scalar()
            values = {"spec": spec.to_dict(), "schedule": spec.schedule, "updated_at": now}
            if existing is None:
                conn.execute(
                    insert(_monitor).values(
                        project_id=project_id, name=spec.name, created_at=now, **values
                    )
                )
            elif replace:
                conn.execute(update(_monitor).where(_monitor.c.id == existing).values(**values))
            else:
                raise InvalidParameter(
                    f"Monitor {spec.name!r} already exists in project {project!r}; pass "
                    "replace=True (`loopml monitor create --replace`) to change it."
                )
        return self.get(spec.name, project=project)

    def get(self, name: str, *, project: str) -> MonitorRecord:
        """The monitor ``name``.

        Raises:
            ProjectNotFound: no such project.
            MonitorNotFound: no such monitor; the message names the closest one.
        """
        with self.store.read() as conn:
            project_id = self.store.require_project(conn, project)
            row = conn.execute(
                select(_monitor).where(_monitor.c.project_id == project_id, _monitor.c.name == name)
            ).first()
            if row is None:
                known = conn.execute(
                    select(_monitor.c.name).where(_monitor.c.project_id == project_id)
                ).scalars()
                hint = closest(name, [str(k) for k in known])
                raise MonitorNotFound(
                    f"No monitor named {name!r} in project {project!r}"
                    + (f" (did you mean {hint!r}?)" if hint else "")
                    + "; `loopml monitor list` shows the monitors there are."
                )
            return self._record(conn, row, project)

    def list(self, *, project: str) -> list[MonitorRecord]:
        """Every monitor of ``project``, by name.

        Raises:
            ProjectNotFound: no such project.
        """
        with self.store.read() as conn:
            project_id = self.store.require_project(conn, project)
            rows = conn.execute(
                select(_monitor)
                .where(_monitor.c.project_id == project_id)
                .order_by(_monitor.c.name)
            ).all()
            return [self._record(conn, row, project) for row in rows]

    def delete(self, name: str, *, project: str) -> int:
        """Delete a monitor with its results and alerts; returns how many results went.

        The results' JSON blobs are left to garbage collection (``loopml gc``).

        Raises:
            MonitorNotFound: no such monitor. Nothing changes.
        """
        monitor_id = self.get(name, project=project).id
        with self.store.write() as conn:
            conn.execute(delete(_alert).where(_alert.c.monitor_id == monitor_id))
            conn.execute(delete(_check).where(_check.c.monitor_id == monitor_id))
            removed = conn.execute(delete(_result).where(_result.c.monitor_id == monitor_id))
            conn.execute(delete(_monitor).where(_monitor.c.id == monitor_id))
        return int(removed.rowcount or 0)

    # -- results ------------------------------------------------------------------

    def record(
        self, monitor: MonitorRecord, result: MonitorResult, *, alert_on_no_data: bool = True
    ) -> tuple[MonitorResult, builtins.list[Alert]]:
        """Store one run's result, its time series, lineage and alert transitions.

        Returns:
            The result with its ``id``, and the alerts that changed state (opened or
            resolved) -- what the sinks are told.
        """
        blob = orjson.dumps(result.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
        digest = self.artifacts.put_bytes(blob)
        finished = now_ms()
        with self.store.write() as conn:
            result_id = int(
                conn.execute(
                    insert(_result)
                    .values(
                        monitor_id=monitor.id,
                        status=result.status,
                        started_at=result.started_at,
                        finished_at=finished,
                        reference=result.reference,
                        current=result.current,
                        reference_rows=result.reference_rows,
                        current_rows=result.current_rows,
                        lineage=dict(result.lineage),
                        digest=digest,
                    )
                    .returning(_result.c.id)
                ).scalar_one()
            )
            stored = replace(result, id=result_id)
            if stored.checks:
                conn.execute(
                    insert(_check),
                    [
                        _check_row(c, result_id, monitor.id, result.started_at)
                        for c in stored.checks
                    ],
                )
            _lineage(conn, stored, result_id, finished)
            changed = apply_alerts(
                conn, monitor.id, monitor.name, stored, alert_on_no_data=alert_on_no_data
            )
        return stored, changed

    def results(
        self, name: str, *, project: str, limit: int = 20, since_ms: int | None = None
    ) -> builtins.list[MonitorResult]:
        """The latest results of a monitor, newest first, read back in full.

        Raises:
            MonitorNotFound: no such monitor.
            InvalidParameter: a bad ``limit``.
        """
        check_limit(limit)
        monitor = self.get(name, project=project)
        query = select(_result.c.id, _result.c.digest).where(_result.c.monitor_id == monitor.id)
        if since_ms is not None:
            query = query.where(_result.c.started_at >= since_ms)
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(_result.c.started_at.desc()).limit(limit)).all()
        return [self._load(int(r.id), str(r.digest)) for r in rows]

    def result(self, result_id: int, *, monitor: MonitorRecord | None = None) -> MonitorResult:
        """A stored result by id (with ``monitor``, only one of that monitor's).

        The monitor is matched by the stored row, not by the name inside the result's
        blob, so an id cannot reach across monitors or projects.

        Raises:
            InvalidParameter: no result (of ``monitor``) has that id.
        """
        if isinstance(result_id, bool) or not isinstance(result_id, int) or result_id < 1:
            raise InvalidParameter(
                f"The 'result_id' parameter must be a positive int. Got {result_id!r} instead."
            )
        query = select(_result.c.digest).where(_result.c.id == result_id)
        if monitor is not None:
            query = query.where(_result.c.monitor_id == monitor.id)
        with self.store.read() as conn:
            digest = conn.execute(query).scalar() if result_id < 2**63 else None
        if digest is None:
            owner = "" if monitor is None else f" of monitor {monitor.name!r}"
            raise InvalidParameter(f"No monitor result{owner} has id {result_id}.")
        return self._load(result_id, str(digest))

    def history(
        self,
        name: str,
        *,
        project: str,
        check: str | None = None,
        column: str | None = None,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> builtins.list[HistoryPoint]:
        """The time series of a monitor's checks, oldest first (from ``monitor_check``).

        Raises:
            MonitorNotFound: no such monitor.
            InvalidParameter: a bad ``limit``, or a ``check``/``column`` the monitor never
                recorded (naming the closest one).
        """
        check_limit(limit)
        monitor = self.get(name, project=project)
        query = select(_check).where(_check.c.monitor_id == monitor.id)
        with self.store.read() as conn:
            for attribute, value in (("check", check), ("column", column)):
                if value is None:
                    continue
                _require_known(conn, monitor, attribute, value)
                query = query.where(_check.c[attribute] == value)
            if since_ms is not None:
                query = query.where(_check.c.at >= since_ms)
            rows = conn.execute(query.order_by(_check.c.at.desc(), _check.c.id).limit(limit)).all()
        points = [
            HistoryPoint(
                result_id=int(r.result_id),
                at=int(r.at),
                check=str(r.check),
                column=str(r.column),
                method=str(r.method),
                segment=str(r.segment),
                statistic=r.statistic,
                threshold=r.threshold,
                p_value=r.p_value,
                status=str(r.status),
            )
            for r in rows
        ]
        return sorted(points, key=lambda p: (p.at, p.result_id))

    def _load(self, result_id: int, digest: str) -> MonitorResult:
        if self.artifacts.size(digest) > _MAX_RESULT_BYTES:
            raise InvalidParameter(
                f"Monitor result {result_id} is larger than {_MAX_RESULT_BYTES} bytes; "
                "it was not written by loopml."
            )
        try:
            data = orjson.loads(self.artifacts.get_bytes(digest))
            return replace(MonitorResult.from_dict(data), id=result_id)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidParameter(
                f"Monitor result {result_id} cannot be read back: {exc}."
            ) from None

    def _record(self, conn: Connection, row: Any, project: str) -> MonitorRecord:
        last = conn.execute(
            select(_result.c.status, _result.c.started_at)
            .where(_result.c.monitor_id == row.id)
            .order_by(_result.c.started_at.desc(), _result.c.id.desc())
            .limit(1)
        ).first()
        try:
            spec = MonitorSpec.from_dict(row.spec)
        except InvalidParameter as exc:
            # Name the row, so whoever fixes it knows which of the monitors is broken.
            raise InvalidParameter(
                f"The stored monitor {row.name!r} of project {project!r} is not valid: {exc} "
                f"Replace it (`loopml monitor create --replace`) or delete it."
            ) from None
        return MonitorRecord(
            id=int(row.id),
            project=project,
            spec=spec,
            created_at=int(row.created_at),
            updated_at=int(row.updated_at),
            last_status=None if last is None else str(last.status),
            last_run_at=None if last is None else int(last.started_at),
        )


def _check_row(check: CheckResult, result_id: int, monitor_id: int, at: int) -> dict[str, Any]:
    data = check.to_dict()
    return {
        "result_id": result_id,
        "monitor_id": monitor_id,
        "at": at,
        "check": check.check,
        "column": check.column[:250],
        "method": check.method[:64],
        "segment": check.segment[:250],
        "statistic": data["statistic"],
        "threshold": data["threshold"],
        "p_value": data["p_value"],
        "status": check.status,
    }


def _lineage(conn: Connection, result: MonitorResult, result_id: int, at: int) -> None:
    node = Node("monitor_result", str(result_id))
    version_id = result.lineage.get("model_version_id")
    if version_id is not None:
        add_edge(conn, Node("model_version", str(version_id)), node, "monitored_by", at)
    dataset_id = result.lineage.get("reference_dataset_id")
    if dataset_id is not None:
        add_edge(conn, Node("dataset_version", str(dataset_id)), node, "reference_of", at)
    current_id = result.lineage.get("current_dataset_id")
    if current_id is not None:
        add_edge(conn, Node("dataset_version", str(current_id)), node, "judged_by", at)


def _require_known(conn: Connection, monitor: MonitorRecord, attribute: str, value: str) -> None:
    known: Sequence[str] = [
        str(v)
        for v in conn.execute(
            select(_check.c[attribute]).where(_check.c.monitor_id == monitor.id).distinct()
        ).scalars()
    ]
    if value not in known:
        hint = closest(value, known)
        raise InvalidParameter(
            f"Monitor {monitor.name!r} has recorded no {attribute} {value!r}"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + (f"; it has: {', '.join(sorted(known)[:20])}." if known else "; it never ran.")
        )
