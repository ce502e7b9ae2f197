"""The tracking workload on MLflow's SQLite store; runs in the peers' virtualenv.

Usage (``bench/tracking.py --vs mlflow`` does this once per round)::

    .venv-peers/bin/python bench/workers/mlflow_worker.py round --workdir /tmp/x

Each round gets a fresh ``mlflow.db`` and artifact folder in its work folder.
MLflow is used as documented for a local SQLite tracking store: the fluent API
(``mlflow.start_run``, ``mlflow.log_metric``, ``mlflow.search_runs``) and, for
batches, ``MlflowClient.log_batch`` (the fluent API has no multi-step batch).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import workload

# Keep MLflow offline and quiet: no telemetry, no git-binary warning.
OFFLINE_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}


def configure(workdir: Path) -> None:
    """Point MLflow at a fresh SQLite store in ``workdir``; readers inherit this."""
    for name in [n for n in os.environ if n.startswith("MLFLOW_")]:
        del os.environ[name]
    os.environ.update(OFFLINE_ENV)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["BENCH_MLFLOW_ARTIFACTS"] = str(workdir / "artifacts")


class MlflowTool:
    """Adapts MLflow's public API to :class:`workload.Tool`."""

    def __init__(self) -> None:
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        self._mlflow = mlflow
        self._metric = Metric
        self._client = MlflowClient()
        self._experiments: dict[str, str] = {}
        self._run_id: str | None = None

    def describe(self) -> dict[str, Any]:
        """Name, version and the environment that shapes MLflow's behaviour."""
        return {
            "name": "mlflow",
            "version": self._mlflow.__version__,
            "store": "SQLite via SQLAlchemy (sqlite:///…/mlflow.db), MLflow's defaults",
            "env": {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
            | {k: os.environ[k] for k in OFFLINE_ENV},
        }

    def db_path(self) -> Path:
        """The SQLite file behind the tracking URI."""
        return Path(self._mlflow.get_tracking_uri().removeprefix("sqlite:///"))

    def _experiment_id(self, project: str) -> str:
        if project not in self._experiments:
            found = self._client.get_experiment_by_name(project)
            if found is None:
                raise KeyError(f"experiment {project!r} does not exist")
            self._experiments[project] = found.experiment_id
        return self._experiments[project]

    def prepare_project(self, project: str) -> None:
        """Create the experiment, with its artifacts in the round's work folder."""
        artifacts = Path(os.environ["BENCH_MLFLOW_ARTIFACTS"]) / project
        self._experiments[project] = self._client.create_experiment(
            project, artifact_location=artifacts.as_uri()
        )

    def create_runs(
        self, project: str, params: Sequence[dict[str, Any]], aucs: Sequence[float]
    ) -> None:
        """One ``with mlflow.start_run()`` per run: log_params, then log_metric."""
        mlflow = self._mlflow
        experiment_id = self._experiment_id(project)
        for run_params, auc in zip(params, aucs, strict=True):
            with mlflow.start_run(experiment_id=experiment_id):
                if run_params:
                    mlflow.log_params(run_params)
                mlflow.log_metric(workload.AUC_KEY, auc)

    def start_run(self, project: str, name: str) -> str:
        """``mlflow.start_run`` without a ``with``; :meth:`end_run` ends it."""
        run = self._mlflow.start_run(experiment_id=self._experiment_id(project), run_name=name)
        self._run_id = run.info.run_id
        return self._run_id

    def end_run(self) -> None:
        """``mlflow.end_run()``."""
        self._mlflow.end_run()
        self._run_id = None

    def log_one_at_a_time(self, key: str, values: Sequence[float]) -> None:
        """``mlflow.log_metric(key, value, step=i)`` per point."""
        log_metric = self._mlflow.log_metric
        for step, value in enumerate(values):
            log_metric(key, value, step=step)

    def log_in_batches(self, key: str, values: Sequence[float], batch_size: int) -> None:
        """``MlflowClient.log_batch`` with ``batch_size`` Metric entities a call."""
        if self._run_id is None:
            raise RuntimeError("no active run")
        metric, log_batch, run_id = self._metric, self._client.log_batch, self._run_id
        for start in range(0, len(values), batch_size):
            timestamp = int(time.time() * 1000)
            stop = min(start + batch_size, len(values))
            batch = [metric(key, values[i], timestamp, i) for i in range(start, stop)]
            log_batch(run_id, metrics=batch)

    def search(self, project: str, filter_string: str) -> int:
        """``mlflow.search_runs(..., output_format="list")``; return the hit count."""
        runs = self._mlflow.search_runs(
            experiment_ids=[self._experiment_id(project)],
            filter_string=filter_string,
            max_results=2000,
            output_format="list",
        )
        return len(runs)

    def read_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """``MlflowClient.get_metric_history`` (it pages through everything)."""
        return [(m.step, m.value) for m in self._client.get_metric_history(run_id, key)]

    def read_runs(self, project: str) -> list[tuple[int, float | None]]:
        """Every run of the experiment, with its params and latest metrics."""
        runs = self._mlflow.search_runs(
            experiment_ids=[self._experiment_id(project)],
            max_results=50_000,
            output_format="list",
        )
        return [(len(r.data.params), r.data.metrics.get(workload.AUC_KEY)) for r in runs]


def make_tool(workdir: Path | None) -> MlflowTool:
    """Configure a fresh store (round) or inherit the round's (reader), then import MLflow."""
    if workdir is not None:
        configure(workdir)
    return MlflowTool()


if __name__ == "__main__":
    workload.main(make_tool, __file__)
