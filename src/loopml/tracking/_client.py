"""The tracking client: every tracking operation, over one store and one artifact store.

The fluent API (``loopml.start_run`` …) only delegates to a client. The client is
assembled from parts by feature: runs, params, tags and metrics here; artifacts in
``_client_artifacts``; reading, search, notes and lineage in ``_client_reading``.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml._identity import current_identity
from loopml.errors import InvalidParameter, ParamConflict, RunNotFound
from loopml.store import now_ms, read_only, tables
from loopml.tracking import _context
from loopml.tracking._client_admin import AdminOps
from loopml.tracking._client_artifacts import ArtifactOps
from loopml.tracking._client_base import json_object, project_name, refresh_json
from loopml.tracking._client_reading import ReadOps
from loopml.tracking._queries import metric_history
from loopml.tracking._records import PAUSED_STATUSES, TERMINAL_STATUSES, Metric
from loopml.tracking._reserved import check_not_reserved
from loopml.tracking._validate import (
    MAX_KEY_LENGTH,
    check_key,
    check_run_name,
    check_step,
    check_timestamp,
    metric_value,
)
from loopml.tracking._writer import Point

__all__ = ["TrackingClient"]

_run = tables.RUN
_param = tables.PARAM
_tag = tables.TAG
_env = tables.ENVIRONMENT

_RUN_KINDS = ("experiment", "pipeline", "step", "monitor", "training", "evaluation")


class TrackingClient(AdminOps, ArtifactOps, ReadOps):
    """Create runs, log to them, read them back and tidy them up (delete, restore, tags).

    Args:
        store_uri: metadata store URL; default from ``LOOPML_STORE_URI``/``LOOPML_HOME``.
        artifact_uri: artifact store folder or URL; default from ``LOOPML_ARTIFACT_URI``.

    Example:
        >>> client = TrackingClient("sqlite://", tempfile.mkdtemp())
        >>> run_id = client.create_run(project="demo", params={"lr": 0.1})
        >>> client.log_metric(run_id, "loss", 0.5, step=1)
        >>> client.end_run(run_id)
        >>> client.get_run(run_id).metrics
        {'loss': 0.5}
    """

    # -- runs -------------------------------------------------------------------

    def create_run(
        self,
        project: str | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        kind: str = "experiment",
        parent_id: str | None = None,
        capture_context: bool = True,
        source: str | Path | None = None,
    ) -> str:
        """Start a run and return its id.

        Args:
            project: project (default ``LOOPML_PROJECT``, or the parent's).
            name: a display name.
            params: immutable parameters.
            tags: mutable labels.
            kind: ``experiment``, ``pipeline``, ``step``, ``monitor``, ``training`` or
                ``evaluation``.
            parent_id: the run this one is part of.
            capture_context: record git, entry point, environment and resources.
            source: the file whose repository the git context describes (default:
                the entry-point script's); a pipeline run names its pipeline's file.

        Raises:
            InvalidParameter: a bad project, kind, param or tag (``ReservedKeyError``
                for a key starting with ``loopml.``, which only loopml writes).
            RunNotFound: ``parent_id`` names no run.
        """
        if project is not None or parent_id is None:
            project = project_name(project)
        if kind not in _RUN_KINDS:
            raise InvalidParameter(
                f"The 'kind' parameter of create_run must be one of {list(_RUN_KINDS)}; "
                f"got {kind!r}."
            )
        name = check_run_name(name)
        param_rows = _text_pairs("param", params)
        tag_rows = _text_pairs("tag", tags)
        run_id = uuid.uuid4().hex
        context: dict[str, Any] = {}
        environment = None
        if capture_context:
            context, environment = _capture_context(None if source is None else Path(source))
        user = current_identity() or context.get("user")
        start = now_ms()
        with self.store.write() as conn:
            if parent_id is not None:
                parent_project = self._require_run(conn, parent_id)
                project_id = parent_project if project is None else None
            if project is not None:
                project_id = self.store.project_id(conn, project)
            if environment is not None and environment[0] not in self._known_environments:
                self._save_environment(conn, *environment)
            conn.execute(
                _run.insert().values(
                    id=run_id,
                    project_id=project_id,
                    name=name,
                    kind=kind,
                    status="running",
                    parent_id=parent_id,
                    user=user,
                    start_time=start,
                    heartbeat_at=start,
                    context=context,
                    environment_sha256=None if environment is None else environment[0],
                    params_json=json_object(param_rows),
                    tags_json=json_object(tag_rows),
                )
            )
            if param_rows:
                conn.execute(_param.insert(), [_kv(run_id, k, v) for k, v in param_rows])
            if tag_rows:
                conn.execute(_tag.insert(), [_kv(run_id, k, v) for k, v in tag_rows])
        self._meters[run_id] = _context.ResourceMeter()
        self.writer.track(run_id)
        return run_id

    def end_run(
        self,
        run_id: str,
        status: Literal["finished", "failed", "killed", "rejected"] = "finished",
        error: BaseException | None = None,
        *,
        failure: tuple[str, str, str] | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        """End a run: flush its metrics, then record status, failure and resource usage.

        Args:
            run_id: the run.
            status: how it ended.
            error: the exception that ended it, if any.
            failure: ``(type, message, traceback)`` of an error raised elsewhere (another
                process), when there is no exception object here.
            resources: ``cpu_seconds``, ``peak_memory_bytes``, ``wall_seconds`` measured
                elsewhere; by default this process measured them since ``create_run``.

        Raises:
            InvalidParameter: ``status`` is not a terminal status.
            RunNotFound: unknown run id.
        """
        if status not in TERMINAL_STATUSES:
            raise InvalidParameter(
                f"The 'status' parameter of end_run must be one of {list(TERMINAL_STATUSES)}; "
                f"got {status!r}."
            )
        self.flush()
        values: dict[str, Any] = {"status": status, "end_time": now_ms()}
        if error is not None:
            failure = (
                f"{type(error).__module__}.{type(error).__qualname__}",
                str(error),
                "".join(traceback.format_exception(error)),
            )
        if failure is not None:
            values.update(
                # the type is a column of key width; a pathological qualname must not fail
                # the end of the run
                failure_type=failure[0][:MAX_KEY_LENGTH],
                failure_message=failure[1],
                failure_traceback=failure[2],
            )
        meter = self._meters.pop(run_id, None)
        if resources is None and meter is not None:
            usage = meter.stop()
            resources = {
                "cpu_seconds": usage.cpu_seconds,
                "peak_memory_bytes": usage.peak_memory_bytes,
                "wall_seconds": usage.wall_seconds,
            }
        if resources is not None:
            values.update(
                cpu_seconds=resources.get("cpu_seconds"),
                peak_memory_bytes=resources.get("peak_memory_bytes"),
                wall_seconds=resources.get("wall_seconds"),
            )
        with self.store.write() as conn:
            done = conn.execute(update(_run).where(_run.c.id == run_id).values(**values))
            if done.rowcount == 0:
                raise RunNotFound(f"No run with id {run_id!r}.")
        if self._writer is not None:
            self._writer.untrack(run_id)

    def set_run_status(
        self, run_id: str, status: Literal["running", "waiting_for_approval"]
    ) -> None:
        """Pause a run (waiting for a human) or take it up again (resume).

        A run waiting for approval sends no heartbeats and is never shown as lost; a
        resumed run starts sending them again from this process.

        Raises:
            InvalidParameter: ``status`` is not ``running`` or ``waiting_for_approval``.
            RunNotFound: unknown run id.
        """
        if status not in PAUSED_STATUSES:
            raise InvalidParameter(
                f"The 'status' parameter of set_run_status must be one of "
                f"{list(PAUSED_STATUSES)}; got {status!r}."
            )
        with self.store.write() as conn:
            done = conn.execute(
                update(_run)
                .where(_run.c.id == run_id)
                .values(status=status, end_time=None, heartbeat_at=now_ms())
            )
            if done.rowcount == 0:
                raise RunNotFound(f"No run with id {run_id!r}.")
        if status == "running":
            self.writer.track(run_id)
        elif self._writer is not None:
            self._writer.untrack(run_id)

    # -- params and tags -----------------------------------------------------------

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        """Record an immutable parameter.

        Raises:
            ParamConflict: the param was already logged with a different value.
        """
        self.log_params(run_id, {key: value})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Record several parameters at once (all or none).

        Raises:
            ParamConflict: one of them was already logged with a different value.
        """
        pairs = _text_pairs("param", params)
        if not pairs:
            return
        with self.store.write() as conn:
            self._require_run(conn, run_id, lock=True)
            existing = dict(
                conn.execute(
                    select(_param.c.key, _param.c.value).where(
                        _param.c.run_id == run_id, _param.c.key.in_([k for k, _ in pairs])
                    )
                ).all()
            )
            new = []
            for key, value in pairs:
                if key not in existing:
                    new.append(_kv(run_id, key, value))
                elif existing[key] != value:
                    raise ParamConflict(
                        f"Param {key!r} of run {run_id} is already {existing[key]!r}; "
                        f"params are immutable, so it cannot become {value!r}. "
                        "Log it under another name, or start a new run."
                    )
            if new:
                conn.execute(_param.insert(), new)
                refresh_json(conn, run_id, _param, "params_json")

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        """Set (or overwrite) a tag."""
        self.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set several tags at once.

        Raises:
            ReservedKeyError: a key starts with ``loopml.`` (written by loopml only).
            InvalidParameter: a malformed key.
        """
        self._write_tags(run_id, tags, public=True)

    def _write_tags(self, run_id: str, tags: Mapping[str, Any], *, public: bool) -> None:
        """Upsert tags; ``public`` refuses the reserved namespace (see :mod:`._reserved`)."""
        pairs = _text_pairs("tag", tags, public=public)
        if not pairs:
            return
        with self.store.write() as conn:
            self._require_run(conn, run_id, lock=True)
            factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = factory(_tag)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[_tag.c.run_id, _tag.c.key],
                    set_={"value": statement.excluded.value},
                ),
                [_kv(run_id, k, v) for k, v in pairs],
            )
            refresh_json(conn, run_id, _tag, "tags_json")

    # -- metrics --------------------------------------------------------------------

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        step: int = 0,
        timestamp: int | None = None,
    ) -> None:
        """Log one metric point (buffered; see :mod:`loopml.tracking._writer`).

        NaN, inf and -inf are valid values and read back as such.

        Raises:
            InvalidParameter: a bad key, value, step or timestamp.
        """
        check_not_reserved("metric", check_key("metric", key))
        stored = metric_value(key, value)
        step = check_step(key, step)
        when = now_ms() if timestamp is None else check_timestamp(key, timestamp)
        self.writer.add((run_id, key, stored, step, when))

    def log_metrics(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        step: int = 0,
        timestamp: int | None = None,
    ) -> None:
        """Log several metrics at the same step."""
        when = now_ms() if timestamp is None else timestamp
        self.log_batch(run_id, [Metric(k, v, step, when) for k, v in metrics.items()])

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric | tuple[str, float, int]] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log many metric points (``Metric`` or ``(key, value, step)``), params and tags.

        Every key is checked before anything is written.

        Raises:
            ReservedKeyError: a key starts with ``loopml.`` (written by loopml only).
            InvalidParameter: a malformed key, value, step or timestamp.
        """
        _text_pairs("param", params)
        _text_pairs("tag", tags)
        now = now_ms()
        points: list[Point] = []
        for item in metrics:
            if isinstance(item, Metric):
                key, value, step, timestamp = item.key, item.value, item.step, item.timestamp
            else:
                key, value, step = item
                timestamp = None
            check_not_reserved("metric", check_key("metric", key))
            when = now if timestamp is None else check_timestamp(key, timestamp)
            points.append((run_id, key, metric_value(key, value), check_step(key, step), when))
        if params:
            self.log_params(run_id, params)
        if tags:
            self.set_tags(run_id, tags)
        if points:
            self.writer.add_many(points)

    @read_only()
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every point of metric ``key`` of a run, in step order.

        Raises:
            RunNotFound: unknown run id.
        """
        self.flush()
        with self.store.read() as conn:
            self._require_run(conn, run_id)
            return metric_history(conn, run_id, key)

    def _save_environment(self, conn: Connection, sha256: str, packages: dict[str, str]) -> None:
        factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            factory(_env)
            .values(sha256=sha256, packages=packages, created_at=now_ms())
            .on_conflict_do_nothing()
        )
        self._known_environments.add(sha256)


def _text_pairs(
    kind: str, values: Mapping[str, Any] | None, *, public: bool = True
) -> list[tuple[str, str]]:
    if values is None:
        return []
    if not isinstance(values, Mapping):
        raise InvalidParameter(
            f"{kind.capitalize()}s must be given as a mapping of key to value; "
            f"got {type(values).__name__}."
        )
    pairs = [(check_key(kind, key), str(value)) for key, value in values.items()]
    if public:
        for key, _ in pairs:
            check_not_reserved(kind, key)
    return pairs


def _kv(run_id: str, key: str, value: str) -> dict[str, str]:
    return {"run_id": run_id, "key": key, "value": value}


def _capture_context(
    source: Path | None = None,
) -> tuple[dict[str, Any], tuple[str, dict[str, str]] | None]:
    """Context of the calling process; never raises (a run must not fail for its context)."""
    context: dict[str, Any] = {}
    environment = None
    try:
        script, script_sha = _context.entry_point()
        if script is not None:
            context["entry_point"] = {"path": script, "sha256": script_sha}
        code = source if source is not None else Path(script) if script else None
        git = _context.capture_git(code.parent if code is not None else Path.cwd())
        if git is not None:
            context["git"] = git.to_dict()
        env = _context.capture_environment()
        described = env.to_dict()
        described.pop("packages", None)
        context.update(described)
        if env.packages and env.packages_sha256:
            environment = (env.packages_sha256, env.packages)
    except Exception as exc:  # the context is a courtesy; the run matters more
        context["capture_error"] = f"{type(exc).__name__}: {exc}"
    context["captured_at"] = time.time()
    return context, environment
