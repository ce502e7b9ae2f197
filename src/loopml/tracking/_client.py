"""The tracking client: every tracking operation, over one store and one artifact store.

The fluent API (``loopml.start_run`` …) only delegates to a client.
"""

from __future__ import annotations

import getpass
import json
import re
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml import settings
from loopml.artifacts import ArtifactStore
from loopml.errors import (
    ArtifactNotFound,
    InvalidParameter,
    ParamConflict,
    ProjectNotFound,
    RunNotFound,
)
from loopml.store import Edge, Node, Store, add_edge, now_ms, open_store, tables, walk
from loopml.tracking import _context
from loopml.tracking._filter import parse_filter, parse_order_by
from loopml.tracking._queries import RUN_COLUMNS, load_runs, metric_history
from loopml.tracking._records import TERMINAL_STATUSES, Metric, Note, Run, RunArtifact
from loopml.tracking._search import apply_order, compile_filter
from loopml.tracking._validate import check_key, check_step, check_timestamp, metric_value
from loopml.tracking._writer import MetricWriter, Point

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrackingClient"]

_run = tables.RUN
_project = tables.PROJECT
_param = tables.PARAM
_tag = tables.TAG
_env = tables.ENVIRONMENT
_artifact = tables.RUN_ARTIFACT
_note = tables.NOTE

_HEX = re.compile(r"[0-9a-f]+")
_RUN_KINDS = ("experiment", "pipeline", "step", "monitor", "training", "evaluation")


class TrackingClient:
    """Create runs, log to them and read them back.

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

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        self._store_uri = store_uri or settings.store_uri()
        self._artifact_uri = artifact_uri or settings.artifact_uri()
        self._store: Store | None = None
        self._artifacts: ArtifactStore | None = None
        self._writer: MetricWriter | None = None
        self._open_lock = threading.Lock()
        self._known_environments: set[str] = set()
        self._meters: dict[str, _context.ResourceMeter] = {}

    # -- plumbing ---------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The metadata store (opened, and migrated if needed, on first use)."""
        if self._store is None:
            with self._open_lock:
                if self._store is None:
                    self._store = open_store(self._store_uri)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        if self._artifacts is None:
            self._artifacts = ArtifactStore.from_uri(self._artifact_uri)
        return self._artifacts

    @property
    def writer(self) -> MetricWriter:
        """The background metric writer of this client."""
        if self._writer is None:
            with self._open_lock:
                if self._writer is None:
                    self._writer = MetricWriter(
                        self.store,
                        flush_interval=settings.get("LOOPML_FLUSH_INTERVAL"),
                        max_points=settings.get("LOOPML_FLUSH_MAX_POINTS"),
                        heartbeat_interval=settings.get("LOOPML_HEARTBEAT_INTERVAL"),
                    )
        return self._writer

    def flush(self) -> None:
        """Write every buffered metric point now."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush, stop the writer and release connections."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._store is not None:
            self._store.close()
            self._store = None

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
    ) -> str:
        """Start a run and return its id.

        Raises:
            InvalidParameter: a bad project, kind, param or tag.
            RunNotFound: ``parent_id`` names no run.
        """
        if project is not None or parent_id is None:
            project = _project_name(project)
        if kind not in _RUN_KINDS:
            raise InvalidParameter(
                f"The 'kind' parameter of create_run must be one of {list(_RUN_KINDS)}; "
                f"got {kind!r}."
            )
        param_rows = _text_pairs("param", params)
        tag_rows = _text_pairs("tag", tags)
        run_id = uuid.uuid4().hex
        context: dict[str, Any] = {}
        environment = None
        if capture_context:
            context, environment = _capture_context()
        user = context.get("user") or _current_user()
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
                    params_json=_json_object(param_rows),
                    tags_json=_json_object(tag_rows),
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
        status: Literal["finished", "failed", "killed"] = "finished",
        error: BaseException | None = None,
    ) -> None:
        """End a run: flush its metrics, then record status, failure and resource usage.

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
            values["failure_type"] = f"{type(error).__module__}.{type(error).__qualname__}"
            values["failure_message"] = str(error)
            values["failure_traceback"] = "".join(traceback.format_exception(error))
        meter = self._meters.pop(run_id, None)
        if meter is not None:
            usage = meter.stop()
            values.update(
                cpu_seconds=usage.cpu_seconds,
                peak_memory_bytes=usage.peak_memory_bytes,
                wall_seconds=usage.wall_seconds,
            )
        with self.store.write() as conn:
            done = conn.execute(update(_run).where(_run.c.id == run_id).values(**values))
            if done.rowcount == 0:
                raise RunNotFound(f"No run with id {run_id!r}.")
        if self._writer is not None:
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
                _refresh_json(conn, run_id, _param, "params_json")

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        """Set (or overwrite) a tag."""
        self.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set several tags at once."""
        pairs = _text_pairs("tag", tags)
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
            _refresh_json(conn, run_id, _tag, "tags_json")

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
        check_key("metric", key)
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
        """Log many metric points (``Metric`` or ``(key, value, step)``), params and tags."""
        now = now_ms()
        points: list[Point] = []
        for item in metrics:
            if isinstance(item, Metric):
                key, value, step, timestamp = item.key, item.value, item.step, item.timestamp
            else:
                key, value, step = item
                timestamp = None
            check_key("metric", key)
            when = now if timestamp is None else check_timestamp(key, timestamp)
            points.append((run_id, key, metric_value(key, value), check_step(key, step), when))
        if params:
            self.log_params(run_id, params)
        if tags:
            self.set_tags(run_id, tags)
        if points:
            self.writer.add_many(points)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every point of metric ``key`` of a run, in step order.

        Raises:
            RunNotFound: unknown run id.
        """
        self.flush()
        with self.store.read() as conn:
            self._require_run(conn, run_id)
            return metric_history(conn, run_id, key)

    # -- artifacts -------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> RunArtifact:
        """Store a file or a directory in the artifact store and attach it to the run.

        Args:
            run_id: the run.
            local_path: file or folder to store.
            artifact_path: name within the run (default: the file or folder name).

        Raises:
            ArtifactNotFound: ``local_path`` does not exist.
        """
        source = Path(local_path)
        if not source.exists():
            raise ArtifactNotFound(f"Cannot log artifact: {source} does not exist.")
        name = _artifact_name(artifact_path or source.name)
        if source.is_dir():
            digest = self.artifacts.put_dir(source)
            size = sum(entry.size for entry in self.artifacts.read_manifest(digest))
        else:
            digest = self.artifacts.put_file(source)
            size = source.stat().st_size
        with self.store.write() as conn:
            self._require_run(conn, run_id)
            values = {
                "run_id": run_id,
                "path": name,
                "digest": digest,
                "size": size,
                "is_dir": source.is_dir(),
                "created_at": now_ms(),
            }
            factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = factory(_artifact).values(**values)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[_artifact.c.run_id, _artifact.c.path],
                    set_={k: statement.excluded[k] for k in ("digest", "size", "is_dir")},
                )
            )
        return RunArtifact(name, digest, size, source.is_dir())

    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> RunArtifact:
        """Attach ``data`` to the run as the file ``artifact_path``."""
        with tempfile.TemporaryDirectory(prefix="loopml-") as folder:
            target = Path(folder) / Path(_artifact_name(artifact_path)).name
            target.write_bytes(data)
            return self.log_artifact(run_id, target, artifact_path)

    def log_dict(self, run_id: str, data: Mapping[str, Any], artifact_path: str) -> RunArtifact:
        """Attach ``data`` to the run as a JSON file."""
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
        return self.log_bytes(run_id, text.encode(), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_path: str) -> RunArtifact:
        """Attach ``text`` to the run as a UTF-8 file."""
        return self.log_bytes(run_id, text.encode(), artifact_path)

    def log_figure(self, run_id: str, figure: Any, artifact_path: str) -> RunArtifact:
        """Attach a matplotlib figure, rendered in the format ``artifact_path`` ends with."""
        if not hasattr(figure, "savefig"):
            raise InvalidParameter(
                "The 'figure' parameter of log_figure must be a matplotlib Figure; "
                f"got {type(figure).__name__}."
            )
        with tempfile.TemporaryDirectory(prefix="loopml-") as folder:
            target = Path(folder) / Path(_artifact_name(artifact_path)).name
            figure.savefig(target)
            return self.log_artifact(run_id, target, artifact_path)

    def download_artifact(self, run_id: str, artifact_path: str, dest: str | Path) -> Path:
        """Copy a run artifact (file or folder) to ``dest``; its bytes are verified.

        Raises:
            ArtifactNotFound: the run has no artifact at ``artifact_path``.
        """
        with self.store.read() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(
                select(_artifact).where(
                    _artifact.c.run_id == run_id, _artifact.c.path == artifact_path
                )
            ).first()
        if row is None:
            raise ArtifactNotFound(f"Run {run_id} has no artifact {artifact_path!r}.")
        target = Path(dest)
        if row.is_dir:
            return self.artifacts.get_dir(row.digest, target)
        if target.is_dir():
            target = target / Path(artifact_path).name
        return self.artifacts.get_file(row.digest, target)

    # -- notes and lineage --------------------------------------------------------------

    def log_note(self, object_kind: str, object_id: str, text: str) -> Note:
        """Attach a Markdown note to a run (``"run"``) or a project (``"project"``).

        Raises:
            InvalidParameter: empty text or an unknown object kind.
            RunNotFound: a run note for an unknown run.
            ProjectNotFound: a project note for a project that was never used.
        """
        if object_kind not in ("run", "project"):
            raise InvalidParameter(
                f"Notes go on a 'run' or a 'project'; got object kind {object_kind!r}."
            )
        if not isinstance(text, str) or not text.strip():
            raise InvalidParameter("A note needs some text; got an empty note.")
        note = Note(text, _current_user(), now_ms())
        with self.store.write() as conn:
            if object_kind == "run":
                self._require_run(conn, object_id)
            elif (
                conn.execute(select(_project.c.id).where(_project.c.name == object_id)).first()
                is None
            ):
                raise ProjectNotFound(f"No project named {object_id!r}.")
            conn.execute(
                _note.insert().values(
                    object_kind=object_kind,
                    object_id=object_id,
                    text=text,
                    author=note.author,
                    created_at=note.created_at,
                )
            )
        return note

    def get_notes(self, object_kind: str, object_id: str) -> list[Note]:
        """Return the notes of an object, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(_note)
                .where(_note.c.object_kind == object_kind, _note.c.object_id == object_id)
                .order_by(_note.c.created_at, _note.c.id)
            )
            return [Note(r.text, r.author, r.created_at) for r in rows]

    def add_lineage(self, src: Node, dst: Node, relation: str) -> None:
        """Record that ``src`` --relation--> ``dst`` (e.g. run *produced* model)."""
        with self.store.write() as conn:
            add_edge(conn, src, dst, relation, now_ms())

    def lineage(
        self, node: Node, direction: Literal["upstream", "downstream"], max_depth: int | None = None
    ) -> list[Edge]:
        """Return the edges reachable from ``node`` upstream or downstream."""
        with self.store.read() as conn:
            return walk(conn, node, direction, max_depth)

    # -- reading runs ---------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """Return everything recorded about a run.

        Raises:
            RunNotFound: unknown run id.
        """
        self.flush()
        with self.store.read() as conn:
            row = conn.execute(_runs_query().where(_run.c.id == run_id)).first()
            if row is None:
                raise RunNotFound(f"No run with id {run_id!r}.")
            return load_runs(conn, [row], _lost_cutoff(), with_notes=True)[0]

    def resolve_run_id(self, run_id: str) -> str:
        """Return the full id of the run that ``run_id`` names, exactly or by a unique prefix.

        Raises:
            RunNotFound: no run has that id or prefix.
            InvalidParameter: the prefix is shorter than 4 characters or names several runs.
        """
        with self.store.read() as conn:
            if conn.execute(select(_run.c.id).where(_run.c.id == run_id)).first() is not None:
                return run_id
            if not isinstance(run_id, str) or len(run_id) < 4 or not _HEX.fullmatch(run_id):
                raise RunNotFound(f"No run with id {run_id!r}.")
            matches = (
                conn.execute(select(_run.c.id).where(_run.c.id.startswith(run_id)).limit(10))
                .scalars()
                .all()
            )
        if not matches:
            raise RunNotFound(f"No run with id {run_id!r}.")
        if len(matches) > 1:
            raise InvalidParameter(
                f"The run id prefix {run_id!r} names several runs "
                f"({', '.join(m[:12] for m in matches)}, …); give more characters."
            )
        return str(matches[0])

    @overload
    def search_runs(
        self,
        project: str | None = ...,
        filter: str | None = ...,
        order_by: Sequence[str] | None = ...,
        max_results: int = ...,
        output: Literal["list"] = ...,
    ) -> list[Run]: ...

    @overload
    def search_runs(
        self,
        project: str | None = ...,
        filter: str | None = ...,
        order_by: Sequence[str] | None = ...,
        max_results: int = ...,
        *,
        output: Literal["pandas"],
    ) -> pd.DataFrame: ...

    def search_runs(
        self,
        project: str | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        output: Literal["list", "pandas"] = "list",
    ) -> list[Run] | pd.DataFrame:
        """Find runs of a project by a filter over metrics, params, tags and attributes.

        Args:
            project: project name (default ``LOOPML_PROJECT``).
            filter: e.g. ``"metrics.auc > 0.9 and params.model = 'rf'"``.
            order_by: e.g. ``["metrics.auc DESC", "start_time"]``; newest first by default.
            max_results: at most this many runs.
            output: ``"list"`` of :class:`Run` or a ``"pandas"`` DataFrame.

        Raises:
            FilterSyntaxError: the filter or an ordering does not parse.
            InvalidParameter: a bad ``max_results`` or ``output``.
        """
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise InvalidParameter(
                "The 'max_results' parameter of search_runs must be a positive int; "
                f"got {max_results!r}."
            )
        if output not in ("list", "pandas"):
            raise InvalidParameter(
                f"The 'output' parameter of search_runs must be 'list' or 'pandas'; got {output!r}."
            )
        expr = parse_filter(filter or "")
        order = parse_order_by(list(order_by or []))
        self.flush()
        cutoff = _lost_cutoff()
        query = _runs_query().where(_project.c.name == _project_name(project))
        if expr is not None:
            query = query.where(compile_filter(expr, self.store.dialect, cutoff))
        query = apply_order(query, order, self.store.dialect).limit(max_results)
        with self.store.read() as conn:
            runs = load_runs(conn, conn.execute(query).all(), cutoff)
        if output == "pandas":
            from loopml.tracking._frames import runs_to_frame

            return runs_to_frame(runs)
        return runs

    def list_projects(self) -> list[str]:
        """Return the names of every project, sorted."""
        with self.store.read() as conn:
            return sorted(conn.execute(select(_project.c.name)).scalars())

    # -- helpers ----------------------------------------------------------------------------

    def _require_run(self, conn: Connection, run_id: str, lock: bool = False) -> int:
        """Return the project id of run ``run_id``; raise RunNotFound if there is none.

        ``lock`` holds the run's row until the transaction ends (PostgreSQL; SQLite
        write transactions are exclusive already), so read-modify-writes of the run
        row by concurrent writers take turns.
        """
        if not isinstance(run_id, str):
            raise InvalidParameter(f"A run id must be a str; got {type(run_id).__name__}.")
        query = select(_run.c.project_id).where(_run.c.id == run_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        project_id = conn.execute(query).scalar()
        if project_id is None:
            raise RunNotFound(f"No run with id {run_id!r}.")
        return int(project_id)

    def _save_environment(self, conn: Connection, sha256: str, packages: dict[str, str]) -> None:
        factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            factory(_env)
            .values(sha256=sha256, packages=packages, created_at=now_ms())
            .on_conflict_do_nothing()
        )
        self._known_environments.add(sha256)


def _runs_query() -> Any:
    return select(*RUN_COLUMNS).join(_project, _project.c.id == _run.c.project_id)


def _lost_cutoff() -> int:
    timeout: float = settings.get("LOOPML_HEARTBEAT_TIMEOUT")
    return now_ms() - int(timeout * 1000)


def _project_name(project: str | None) -> str:
    name = project if project is not None else settings.get("LOOPML_PROJECT")
    if not isinstance(name, str) or not name.strip() or len(name) > 250:
        raise InvalidParameter(
            f"A project name must be a non-empty str of at most 250 characters; got {name!r}."
        )
    return str(name)


def _text_pairs(kind: str, values: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if values is None:
        return []
    if not isinstance(values, Mapping):
        raise InvalidParameter(
            f"{kind.capitalize()}s must be given as a mapping of key to value; "
            f"got {type(values).__name__}."
        )
    return [(check_key(kind, key), str(value)) for key, value in values.items()]


def _json_object(pairs: Sequence[tuple[str, str]]) -> str:
    return json.dumps(dict(pairs), sort_keys=True, separators=(",", ":"))


def _refresh_json(conn: Connection, run_id: str, table: Any, column: str) -> None:
    """Rewrite the run's JSON copy of its params or tags from the table."""
    pairs = conn.execute(select(table.c.key, table.c.value).where(table.c.run_id == run_id)).all()
    conn.execute(
        update(_run)
        .where(_run.c.id == run_id)
        .values({column: _json_object([(k, v) for k, v in pairs])})
    )


def _kv(run_id: str, key: str, value: str) -> dict[str, str]:
    return {"run_id": run_id, "key": key, "value": value}


def _artifact_name(path: str) -> str:
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidParameter(
            f"An artifact path must be a relative path inside the run; got {path!r}."
        )
    return "/".join(parts)


def _current_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _capture_context() -> tuple[dict[str, Any], tuple[str, dict[str, str]] | None]:
    """Context of the calling process; never raises (a run must not fail for its context)."""
    context: dict[str, Any] = {}
    environment = None
    try:
        script, script_sha = _context.entry_point()
        if script is not None:
            context["entry_point"] = {"path": script, "sha256": script_sha}
        git = _context.capture_git(Path(script).parent if script else Path.cwd())
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
