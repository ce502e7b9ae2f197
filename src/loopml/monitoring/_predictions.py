"""Read a window of an endpoint's prediction log as rows a monitor judges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.monitoring._sources import PredictionWindow

if TYPE_CHECKING:
    from loopml.artifacts import ArtifactStore
    from loopml.store import Store

__all__ = ["read_window"]


def read_window(
    store: Store,
    artifacts: ArtifactStore,
    endpoint: str,
    since_ms: int,
    until_ms: int,
    route: str | None,
    model_version: str | None,
) -> PredictionWindow:
    """One row per predicted row of ``endpoint`` in ``[since_ms, until_ms)``, with labels.

    Predictions a running server has not flushed yet (its local log folders under
    ``LOOPML_HOME``) are read too.

    Raises:
        DeploymentNotFound: the endpoint has neither a deployment nor logged predictions.
    """
    from loopml.serving._claim import local_log_folders
    from loopml.serving._prediction_rows import read_prediction_rows

    rows = read_prediction_rows(
        store,
        artifacts,
        endpoint,
        since=since_ms,
        until=until_ms,
        route=route,
        model_version=model_version,
        wal_folders=local_log_folders(),
    )
    return PredictionWindow(rows.table, tuple(rows.segments))
