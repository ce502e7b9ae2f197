"""The public read API of the prediction log: ``loopml.serving.predictions("credit")``.

:func:`predictions` opens the default stores (``LOOPML_*`` settings), so a user, a
notebook or a monitor needs no store objects to read what an endpoint answered;
the store-level reader it wraps is :func:`loopml.serving._predlog.read_predictions`.
Every row comes joined with its feedback (``label``, ``feedback_at``), so the frame
is also what :func:`~loopml.serving.compare_predictions` takes.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from loopml.errors import DeploymentNotFound, InvalidParameter, ProjectNotFound
from loopml.store import tables

if TYPE_CHECKING:
    import pandas as pd

    from loopml.store import Store

__all__ = ["TimeBound", "predictions", "time_bound_ms"]

TimeBound = datetime | timedelta | str
"""A moment: a datetime (naive means local time), a timedelta back from now, a duration back
from now (``"30m"``, ``"2h"``, ``"7d"``, ``"1w"``) or an ISO 8601 time."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def predictions(
    endpoint: str,
    *,
    project: str | None = None,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
    route: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Return what ``endpoint`` answered, joined with the feedback it got, oldest first.

    Predictions still in a running server's local write-ahead log (at most a few
    seconds old) are not included.

    Args:
        endpoint: the endpoint: a deployment's name, or the model name that
            ``loopml serve -m MODEL`` served under.
        project: the project (default: ``LOOPML_PROJECT``). The log is kept by
            endpoint name: two projects' endpoints of the same name share it.
        since: only predictions answered at or after this moment (see
            :data:`TimeBound`).
        until: only predictions answered before this moment.
        route: only this route's, as logged (``primary:credit@champion``) or by its
            model reference (``credit@champion``).
        limit: at most this many rows, the most recent ones.

    Returns:
        One row per request id: ``request_id``, ``ts`` (ms since the epoch),
        ``endpoint``, ``route``, ``model_version``, ``latency_ms``, ``inputs`` and
        ``output`` (JSON text), ``label`` (None until feedback arrives) and
        ``feedback_at`` (ms since the epoch, or ``<NA>``). A shadow's row gets the
        label of the request it copied.

    Raises:
        ProjectNotFound: ``project`` does not exist.
        DeploymentNotFound: ``endpoint`` is neither deployed in ``project`` nor in the log.
        InvalidParameter: a bad ``since``, ``until``, ``route`` or ``limit``.

    Example:
        >>> import loopml.serving
        >>> frame = loopml.serving.predictions("credit", since="1d")  # doctest: +SKIP
        >>> frame[["request_id", "model_version", "output", "label"]]  # doctest: +SKIP
    """
    from loopml import settings
    from loopml.serving._claim import local_log_folders
    from loopml.serving._predlog_reading import read_predictions
    from loopml.tracking import get_client

    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidParameter(
            f"The 'endpoint' parameter of predictions must be a non-empty str. Got {endpoint!r}."
        )
    if route is not None and (not isinstance(route, str) or not route):
        raise InvalidParameter(
            f"The 'route' parameter of predictions must be a non-empty str. Got {route!r}."
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidParameter(
            f"The 'limit' parameter of predictions must be an int >= 1. Got {limit!r} instead."
        )
    since_ms = None if since is None else time_bound_ms(since, "since")
    until_ms = None if until is None else time_bound_ms(until, "until")
    name = settings.project(project)
    tracking = get_client()
    known = _endpoint_known(tracking.store, endpoint, name)
    frame = read_predictions(
        tracking.store,
        tracking.artifacts,
        endpoint,
        since_ms=since_ms,
        until_ms=until_ms,
        with_feedback=True,
        wal_folders=local_log_folders(),
    )
    if not known and frame.empty:
        raise DeploymentNotFound(
            f"No endpoint named {endpoint!r}: it is not deployed in project {name!r} and "
            "has no logged predictions (see `loopml deployments list`)."
        )
    if route is not None:
        routes = [str(r) for r in frame["route"]]
        frame = frame[[r == route or r.split(":", 1)[-1] == route for r in routes]]
    if limit is not None:
        frame = frame.tail(limit)
    return frame.reset_index(drop=True)


def time_bound_ms(value: TimeBound, name: str) -> int:
    """``value`` (see :data:`TimeBound`) in milliseconds since the epoch.

    Raises:
        InvalidParameter: ``value`` is none of the accepted forms.
    """
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)  # naive: local time, as Python has it
    if isinstance(value, timedelta):
        return int((time.time() - value.total_seconds()) * 1000)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            return int((time.time() - seconds) * 1000)
        try:
            return time_bound_ms(datetime.fromisoformat(value.strip()), name)
        except ValueError:
            pass
    raise InvalidParameter(
        f"The {name!r} parameter must be a datetime, a timedelta, a duration back from now "
        f"('30m', '2h', '7d', '1w') or an ISO 8601 time ('2024-05-01T12:00'). "
        f"Got {value!r} instead."
    )


def _endpoint_known(store: Store, endpoint: str, project: str) -> bool:
    """Whether ``endpoint`` is deployed in ``project`` or has flushed predictions.

    Raises:
        ProjectNotFound: there is no project named ``project``.
    """
    project_table, deployment = tables.PROJECT, tables.DEPLOYMENT
    segment = tables.PREDICTION_SEGMENT
    with store.read() as connection:
        project_id = connection.execute(
            select(project_table.c.id).where(project_table.c.name == project)
        ).scalar()
        if project_id is None:
            raise ProjectNotFound(f"No project named {project!r}.")
        deployed = connection.execute(
            select(deployment.c.id).where(
                deployment.c.project_id == project_id, deployment.c.endpoint == endpoint
            )
        ).first()
        logged = connection.execute(
            select(segment.c.id).where(segment.c.endpoint == endpoint).limit(1)
        ).first()
    return deployed is not None or logged is not None
