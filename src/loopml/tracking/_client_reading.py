"""Reading runs back: get, search, notes, lineage, projects."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from sqlalchemy import select

from loopml import settings
from loopml._identity import current_identity
from loopml.errors import InvalidParameter, ProjectNotFound, RunNotFound
from loopml.store import Edge, Node, add_edge, now_ms, read_only, tables, walk
from loopml.tracking._client_base import ClientBase, project_name
from loopml.tracking._filter import parse_filter, parse_order_by
from loopml.tracking._projects import ProjectSummary, project_summaries
from loopml.tracking._queries import RUN_COLUMNS, load_runs
from loopml.tracking._records import Note, Run
from loopml.tracking._search import apply_order, compile_filter, warn_unknown_keys

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReadOps", "RunView"]

_run = tables.RUN
_project = tables.PROJECT
_note = tables.NOTE
_HEX = re.compile(r"[0-9a-f]+")
_MIN_PREFIX = 4

RunView = Literal["live", "deleted", "all"]
"""Which runs a search sees: live ones (the default), deleted ones, or both."""
_VIEWS: tuple[str, ...] = ("live", "deleted", "all")


class ReadOps(ClientBase):
    """Read runs back; attach notes and lineage edges."""

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
        note = Note(text, current_identity(), now_ms())
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

    @read_only()
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

    @read_only()
    def lineage(
        self, node: Node, direction: Literal["upstream", "downstream"], max_depth: int | None = None
    ) -> list[Edge]:
        """Return the edges reachable from ``node`` upstream or downstream."""
        with self.store.read() as conn:
            return walk(conn, node, direction, max_depth)

    # -- reading runs ---------------------------------------------------------------------

    @read_only()
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

    @read_only()
    def resolve_run_id(self, run_id: str) -> str:
        """Return the full id of the run that ``run_id`` names, exactly or by a unique prefix.

        Raises:
            RunNotFound: no run has that id or prefix.
            InvalidParameter: the prefix is shorter than 4 characters or names several runs.
        """
        with self.store.read() as conn:
            if conn.execute(select(_run.c.id).where(_run.c.id == run_id)).first() is not None:
                return run_id
            if isinstance(run_id, str) and len(run_id) < _MIN_PREFIX:
                raise InvalidParameter(
                    f"The run id prefix {run_id!r} is too short: give at least {_MIN_PREFIX} "
                    "characters of the run id ('loopml runs list' shows them)."
                )
            if not isinstance(run_id, str) or not _HEX.fullmatch(run_id):
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
        *,
        view: RunView = ...,
        all_projects: bool = ...,
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
        view: RunView = ...,
        all_projects: bool = ...,
    ) -> pd.DataFrame: ...

    @read_only()
    def search_runs(
        self,
        project: str | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        output: Literal["list", "pandas"] = "list",
        *,
        view: RunView = "live",
        all_projects: bool = False,
    ) -> list[Run] | pd.DataFrame:
        """Find runs of a project by a filter over metrics, params, tags and attributes.

        Args:
            project: project name (default ``LOOPML_PROJECT``).
            filter: e.g. ``"metrics.auc > 0.9 and params.model = 'rf'"``.
            order_by: e.g. ``["metrics.auc DESC", "start_time"]``; newest first by default.
            max_results: at most this many runs.
            output: ``"list"`` of :class:`Run` or a ``"pandas"`` DataFrame.
            view: ``"live"`` (default) skips deleted runs, ``"deleted"`` finds only
                deleted ones, ``"all"`` both.
            all_projects: search every project (``project`` must then be None).

        Params are stored as the text they were logged as. Compared to an unquoted
        number they compare as numbers, with every operator: ``params.C = 1`` finds
        runs logged with ``C=1`` and with ``C=1.0``, ``params.C > 0.5`` compares
        numerically, and a value that is not a number (``'rbf'``, ``'nan'``) matches
        no numeric comparison. A quoted value is an exact text match
        (``params.C = '1.0'`` finds ``1.0`` only). Tags compare as text except with
        ``<``, ``<=``, ``>``, ``>=`` and a number.

        Warns:
            LoopmlWarning: the filter names a metric, param or tag key that no run of
                the project has (a typo, often); the message names the closest key.

        Raises:
            ProjectNotFound: no project has that name (searching never creates one).
            StoreNotFound: there is no store where the settings point (nothing is created).
            FilterSyntaxError: the filter or an ordering does not parse.
            InvalidParameter: a bad ``max_results``, ``output`` or ``view``, or both
                ``project`` and ``all_projects``.
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
        if view not in _VIEWS:
            raise InvalidParameter(
                f"The 'view' parameter of search_runs must be one of {list(_VIEWS)}; got {view!r}."
            )
        if all_projects and project is not None:
            raise InvalidParameter(
                "search_runs takes a 'project' or all_projects=True, not both; "
                f"got project={project!r}."
            )
        expr = parse_filter(filter or "")
        order = parse_order_by(list(order_by or []))
        self.flush()
        cutoff = _lost_cutoff()
        name = None if all_projects else project_name(project)
        query = _runs_query()
        if name is not None:
            query = query.where(_project.c.name == name)
        if view == "live":
            query = query.where(_run.c.deleted_at.is_(None))
        elif view == "deleted":
            query = query.where(_run.c.deleted_at.is_not(None))
        if expr is not None:
            query = query.where(compile_filter(expr, self.store.dialect, cutoff))
        query = apply_order(query, order, self.store.dialect).limit(max_results)
        with self.store.read() as conn:
            if name is not None:
                project_id = self.store.require_project(conn, name)
                if expr is not None:
                    warn_unknown_keys(conn, project_id, name, expr, stacklevel=2)
            runs = load_runs(conn, conn.execute(query).all(), cutoff)
        if output == "pandas":
            from loopml.tracking._frames import runs_to_frame

            return runs_to_frame(runs)
        return runs

    @read_only()
    def list_projects(self) -> list[str]:
        """Return the names of every project, sorted."""
        with self.store.read() as conn:
            return sorted(conn.execute(select(_project.c.name)).scalars())

    def project_summaries(self) -> list[ProjectSummary]:
        """Return every project with its counts of runs (live and deleted), datasets,
        models and endpoints, and its last activity; sorted by name."""
        self.flush()
        with self.store.read() as conn:
            return project_summaries(conn)


def _runs_query() -> Any:
    return select(*RUN_COLUMNS).join(_project, _project.c.id == _run.c.project_id)


def _lost_cutoff() -> int:
    timeout: float = settings.get("LOOPML_HEARTBEAT_TIMEOUT")
    return now_ms() - int(timeout * 1000)
