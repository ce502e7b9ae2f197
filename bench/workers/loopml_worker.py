"""The tracking workload on loopml's embedded SQLite store; runs in loopml's virtualenv.

Usage (``bench/tracking.py`` does this once per round)::

    .venv/bin/python bench/workers/loopml_worker.py round --workdir /tmp/x

Each round gets a fresh ``LOOPML_HOME`` in its work folder. Only loopml's
public fluent API is used, with its default settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import workload

# Settings that shape write speed; recorded with the results, never changed.
REPORTED_SETTINGS = (
    "LOOPML_FLUSH_INTERVAL",
    "LOOPML_FLUSH_MAX_POINTS",
    "LOOPML_HEARTBEAT_INTERVAL",
    "LOOPML_CAPTURE_PACKAGES",
)


def configure(workdir: Path) -> None:
    """Point loopml at a fresh home in ``workdir``, defaults only; readers inherit this."""
    for name in [n for n in os.environ if n.startswith("LOOPML_")]:
        del os.environ[name]
    os.environ["LOOPML_HOME"] = str(workdir / "loopml-home")


class LoopmlTool:
    """Adapts loopml's public API to :class:`workload.Tool`."""

    def __init__(self) -> None:
        import loopml
        from loopml import settings

        self._loopml = loopml
        self._settings = settings
        self._active: Any = None

    def describe(self) -> dict[str, Any]:
        """Name, version and the settings in force."""
        return {
            "name": "loopml",
            "version": self._loopml.__version__,
            "store": "SQLite via SQLAlchemy (LOOPML_HOME/loopml.db), loopml's defaults",
            "settings": {name: self._settings.get(name) for name in REPORTED_SETTINGS},
        }

    def db_path(self) -> Path:
        """The SQLite file in ``LOOPML_HOME``."""
        return Path(self._settings.store_uri().removeprefix("sqlite:///"))

    def prepare_project(self, project: str) -> None:
        """Nothing to do: a project exists once a run names it."""

    def create_runs(
        self, project: str, params: Sequence[dict[str, Any]], aucs: Sequence[float]
    ) -> None:
        """One ``with loopml.start_run(project=…, params=…)`` per run, then log_metric."""
        loopml = self._loopml
        for run_params, auc in zip(params, aucs, strict=True):
            with loopml.start_run(project=project, params=run_params or None):
                loopml.log_metric(workload.AUC_KEY, auc)

    def start_run(self, project: str, name: str) -> str:
        """``loopml.start_run`` without a ``with``; :meth:`end_run` ends it."""
        self._active = self._loopml.start_run(name=name, project=project)
        return str(self._active.id)

    def end_run(self) -> None:
        """``loopml.end_run()``: flushes buffered points and marks the run finished."""
        self._loopml.end_run()
        self._active = None

    def log_one_at_a_time(self, key: str, values: Sequence[float]) -> None:
        """``loopml.log_metric(key, value, step=i)`` per point."""
        log_metric = self._loopml.log_metric
        for step, value in enumerate(values):
            log_metric(key, value, step=step)

    def log_in_batches(self, key: str, values: Sequence[float], batch_size: int) -> None:
        """``loopml.log_batch(metrics=[loopml.Metric(…)])`` with ``batch_size`` points a call."""
        metric, log_batch = self._loopml.Metric, self._loopml.log_batch
        for start in range(0, len(values), batch_size):
            stop = min(start + batch_size, len(values))
            log_batch(metrics=[metric(key, values[i], step=i) for i in range(start, stop)])

    def search(self, project: str, filter_string: str) -> int:
        """``loopml.search_runs(project, filter=…, max_results=2000)``; return the hit count."""
        return len(self._loopml.search_runs(project, filter=filter_string, max_results=2000))

    def read_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """``loopml.get_metric_history``."""
        return [(m.step, m.value) for m in self._loopml.get_metric_history(run_id, key)]

    def read_runs(self, project: str) -> list[tuple[int, float | None]]:
        """Every run of the project, with its params and latest metrics."""
        runs = self._loopml.search_runs(project, max_results=50_000)
        return [(len(r.params), r.metrics.get(workload.AUC_KEY)) for r in runs]


def make_tool(workdir: Path | None) -> LoopmlTool:
    """Configure a fresh home (round) or inherit the round's (reader), then import loopml."""
    if workdir is not None:
        configure(workdir)
    return LoopmlTool()


if __name__ == "__main__":
    workload.main(make_tool, __file__)
