"""The fluent API: ``with loopml.start_run(): loopml.log_metric(...)``.

Every function here only finds the active run and delegates to the process's
default :class:`~loopml.tracking.TrackingClient`. Runs started while another is
active become its children. The stack of active runs is per process (shared by
its threads, so a callback thread logs to the run its trainer started).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from loopml.errors import RunNotActive

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking._client import TrackingClient
    from loopml.tracking._client_reading import RunView
    from loopml.tracking._records import Metric, Note, Run, RunArtifact

__all__ = [
    "ActiveRun",
    "active_run",
    "delete_run",
    "end_run",
    "get_client",
    "get_metric_history",
    "get_run",
    "log_artifact",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_note",
    "log_param",
    "log_params",
    "log_text",
    "restore_run",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]

_lock = threading.RLock()
_client: TrackingClient | None = None
_client_pid: int | None = None
_stack: list[ActiveRun] = []
_exit_hook_registered = False


def get_client() -> TrackingClient:
    """Return this process's default tracking client (configured from ``LOOPML_*``)."""
    global _client, _client_pid, _exit_hook_registered
    with _lock:
        if _client is None or _client_pid != os.getpid():
            from loopml.tracking._client import TrackingClient

            if _client_pid != os.getpid():
                _stack.clear()  # a forked child does not own its parent's runs
            _client = TrackingClient()
            _client_pid = os.getpid()
            if not _exit_hook_registered:
                atexit.register(_end_open_runs)
                _exit_hook_registered = True
        return _client


class ActiveRun:
    """A started run; a context manager that ends it (finished, failed or killed).

    Attributes:
        id: the run id.
    """

    def __init__(self, run_id: str, client: TrackingClient) -> None:
        self.id = run_id
        self._client = client
        self._ended = False

    @property
    def info(self) -> Run:
        """Everything recorded about the run so far."""
        return self._client.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(_ending_status(exc), exc)

    def end(
        self,
        status: Literal["finished", "failed", "killed"] = "finished",
        error: BaseException | None = None,
    ) -> None:
        """End the run (idempotent)."""
        with _lock:
            if self._ended:
                return
            self._ended = True
            if self in _stack:
                _stack.remove(self)
        self._client.end_run(self.id, status, error)

    def log_param(self, key: str, value: Any) -> None:
        """Log a param to this run."""
        self._client.log_param(self.id, key, value)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        """Log a metric point to this run."""
        self._client.log_metric(self.id, key, value, step)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag on this run."""
        self._client.set_tag(self.id, key, value)

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r})"


def start_run(
    name: str | None = None,
    project: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    kind: str = "experiment",
    parent_id: str | None = None,
) -> ActiveRun:
    """Start a run and make it the active one; use it as a context manager.

    A run started while another is active becomes its child (unless
    ``parent_id`` says otherwise).

    Example:
        >>> with loopml.start_run(name="baseline", params={"C": 1.0}) as run:
        ...     loopml.log_metric("accuracy", 0.93)
    """
    client = get_client()
    with _lock:
        parent = parent_id if parent_id is not None else (_stack[-1].id if _stack else None)
    run_id = client.create_run(
        project=project, name=name, params=params, tags=tags, kind=kind, parent_id=parent
    )
    run = ActiveRun(run_id, client)
    with _lock:
        _stack.append(run)
    return run


def active_run() -> ActiveRun | None:
    """Return the innermost active run, or None."""
    with _lock:
        return _stack[-1] if _stack else None


def end_run(status: Literal["finished", "failed", "killed"] = "finished") -> None:
    """End the active run.

    Raises:
        RunNotActive: no run is active.
    """
    _require_active().end(status)


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise RunNotActive("No active run: call loopml.start_run() first.")
    return run


def log_param(key: str, value: Any) -> None:
    """Log an immutable param to the active run."""
    get_client().log_param(_require_active().id, key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Log several params to the active run."""
    get_client().log_params(_require_active().id, params)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the active run."""
    get_client().set_tag(_require_active().id, key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags on the active run."""
    get_client().set_tags(_require_active().id, tags)


def log_metric(key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
    """Log a metric point to the active run (buffered, cheap)."""
    get_client().log_metric(_require_active().id, key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> None:
    """Log several metrics at one step to the active run."""
    get_client().log_metrics(_require_active().id, metrics, step, timestamp)


def log_batch(
    metrics: Iterable[Metric | tuple[str, float, int]] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """Log many metric points, params and tags to the active run at once."""
    get_client().log_batch(_require_active().id, metrics, params, tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> RunArtifact:
    """Store a file or folder as an artifact of the active run."""
    return get_client().log_artifact(_require_active().id, local_path, artifact_path)


def log_dict(data: Mapping[str, Any], artifact_path: str) -> RunArtifact:
    """Store ``data`` as a JSON artifact of the active run."""
    return get_client().log_dict(_require_active().id, data, artifact_path)


def log_text(text: str, artifact_path: str) -> RunArtifact:
    """Store ``text`` as an artifact of the active run."""
    return get_client().log_text(_require_active().id, text, artifact_path)


def log_figure(figure: Any, artifact_path: str) -> RunArtifact:
    """Store a matplotlib figure as an artifact of the active run."""
    return get_client().log_figure(_require_active().id, figure, artifact_path)


def log_note(text: str, run_id: str | None = None, project: str | None = None) -> Note:
    """Attach a Markdown note to a run (the active one by default) or to a project."""
    if project is not None:
        return get_client().log_note("project", project, text)
    return get_client().log_note("run", run_id or _require_active().id, text)


def get_run(run_id: str) -> Run:
    """Return everything recorded about a run."""
    return get_client().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    """Return every point of a run's metric, in step order."""
    return get_client().get_metric_history(run_id, key)


@overload
def search_runs(
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
    project: str | None = ...,
    filter: str | None = ...,
    order_by: Sequence[str] | None = ...,
    max_results: int = ...,
    *,
    output: Literal["pandas"],
    view: RunView = ...,
    all_projects: bool = ...,
) -> pd.DataFrame: ...


def search_runs(
    project: str | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    output: Literal["list", "pandas"] = "list",
    *,
    view: RunView = "live",
    all_projects: bool = False,
) -> list[Run] | pd.DataFrame:
    """Find runs by a filter such as ``"metrics.auc > 0.9 and params.model = 'rf'"``.

    Deleted runs are skipped unless ``view`` is ``"deleted"`` or ``"all"``. See
    :meth:`TrackingClient.search_runs` for the arguments.
    """
    client = get_client()
    if output == "pandas":
        return client.search_runs(
            project,
            filter,
            order_by,
            max_results,
            output="pandas",
            view=view,
            all_projects=all_projects,
        )
    return client.search_runs(
        project, filter, order_by, max_results, output=output, view=view, all_projects=all_projects
    )


def delete_run(run_id: str, *, force: bool = False) -> list[str]:
    """Soft-delete a run and its child runs; ``restore_run`` brings them back.

    See :meth:`TrackingClient.delete_run`.

    Example:
        >>> loopml.tracking.delete_run(run_id)
        ['4f1c…']
    """
    return get_client().delete_run(run_id, force=force)


def restore_run(run_id: str) -> list[str]:
    """Bring back a deleted run and the children deleted with it.

    See :meth:`TrackingClient.restore_run`.
    """
    return get_client().restore_run(run_id)


def _ending_status(error: BaseException | None) -> Literal["finished", "failed", "killed"]:
    """How a run ends when its block or process ends with ``error`` (None: normally)."""
    if error is None:
        return "finished"
    return "killed" if isinstance(error, KeyboardInterrupt) else "failed"


def _end_open_runs() -> None:
    """At interpreter exit, end runs left open: failed if an exception is ending the process."""
    error = getattr(sys, "last_value", None)
    for run in reversed(list(_stack)):
        try:
            run.end(_ending_status(error), error)
        except Exception:  # noqa: S112 - nothing useful can be done at exit
            continue
