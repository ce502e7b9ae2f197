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

    Raises:
        DeploymentNotFound: the endpoint has neither a deployment nor logged predictions.
    """
    from loopml.serving._predrows import read_prediction_rows

    rows = read_prediction_rows(
        store,
        artifacts,
        endpoint,
        since_ms=since_ms,
        until_ms=until_ms,
        route=route,
        model_version=model_version,
    )
    return PredictionWindow(rows.table, tuple(rows.segments))
