"""The monitoring functions a user calls, over the default stores (``LOOPML_*`` settings).

Example:
    >>> import loopml.monitoring as mon
    >>> mon.create_monitor("credit-drift", endpoint="credit", window="1d")  # doctest: +SKIP
    >>> result = mon.run_monitor("credit-drift")                            # doctest: +SKIP
    >>> [c.column for c in result.alerts]                                   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml import settings
from loopml._identity import current_identity
from loopml.errors import InvalidParameter
from loopml.monitoring._alert_state import Alert, ack_alert, list_alerts
from loopml.monitoring._monitors import HistoryPoint, MonitorRecord, MonitorStore
from loopml.monitoring._results import MonitorResult
from loopml.monitoring._run import run_monitor as _run
from loopml.monitoring._sources import PredictionWindow, Readers
from loopml.monitoring._spec import MonitorSpec, spec_from_yaml
from loopml.store import now_ms, read_only

if TYPE_CHECKING:
    from loopml.serving._reading import TimeBound

__all__ = [
    "ack",
    "alerts",
    "create_monitor",
    "delete_monitor",
    "get_monitor",
    "history",
    "list_monitors",
    "monitor_store",
    "readers",
    "results",
    "run_monitor",
]


def monitor_store() -> MonitorStore:
    """A :class:`MonitorStore` over the default tracking client's stores."""
    from loopml.tracking import get_client

    tracking = get_client()
    return MonitorStore(tracking.store, tracking.artifacts)


def readers() -> Readers:
    """The service clients a monitor reads through, over the default stores."""
    from loopml.data._client import DataClient
    from loopml.registry._client import RegistryClient
    from loopml.tracking import get_client

    tracking = get_client()

    def prediction_rows(
        endpoint: str, since: int, until: int, route: str | None, version: str | None
    ) -> PredictionWindow:
        from loopml.monitoring._predictions import read_window

        return read_window(
            tracking.store, tracking.artifacts, endpoint, since, until, route, version
        )

    return Readers(
        tracking.store,
        tracking.artifacts,
        DataClient(tracking.store, tracking.artifacts),
        RegistryClient(tracking.store, tracking.artifacts),
        prediction_rows,
    )


def create_monitor(
    spec: MonitorSpec | str | Path | None = None,
    *,
    project: str | None = None,
    replace: bool = False,
    **settings_: Any,
) -> MonitorRecord:
    """Store a monitor, from a :class:`MonitorSpec`, a YAML file or text, or keywords.

    Args:
        spec: The monitor; ``None`` builds it from the keywords (``name=``,
            ``endpoint=`` ...; see :class:`MonitorSpec`).
        project: The project (default: ``LOOPML_PROJECT``).
        replace: Replace the configuration of an existing monitor of that name.
        **settings_: The monitor's settings when ``spec`` is ``None``.

    Returns:
        The stored monitor.

    Raises:
        InvalidParameter: a bad setting, or the monitor exists and ``replace`` is false.
    """
    if spec is None:
        spec = MonitorSpec.from_dict(settings_)
    elif settings_:
        raise InvalidParameter("Give a monitor either as 'spec' or as keywords, not both.")
    elif isinstance(spec, Path):
        spec = spec_from_yaml(spec)
    elif isinstance(spec, str):
        spec = spec_from_yaml(Path(spec)) if Path(spec).is_file() else spec_from_yaml(spec)
    if not isinstance(spec, MonitorSpec):
        raise InvalidParameter(
            f"The 'spec' parameter must be a MonitorSpec, a YAML path or text. Got {spec!r}."
        )
    return monitor_store().create(spec, project=settings.project(project), replace=replace)


@read_only()
def get_monitor(name: str, *, project: str | None = None) -> MonitorRecord:
    """The stored monitor ``name``."""
    return monitor_store().get(name, project=settings.project(project))


@read_only()
def list_monitors(*, project: str | None = None) -> list[MonitorRecord]:
    """Every monitor of the project."""
    return monitor_store().list(project=settings.project(project))


def delete_monitor(name: str, *, project: str | None = None) -> int:
    """Delete a monitor with its results and alerts; returns how many results went."""
    return monitor_store().delete(name, project=settings.project(project))


def run_monitor(
    name: str,
    *,
    project: str | None = None,
    trust: bool = False,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
) -> MonitorResult:
    """Run a stored monitor once: judge, store the result, open/resolve alerts, notify sinks.

    Args:
        name: The monitor.
        project: Its project (default: ``LOOPML_PROJECT``).
        trust: Allow loading a model that runs code (only the attribution check loads it).
        since: Judge the predictions from this moment (a datetime, ``"2h"`` back from
            now, an ISO time) instead of the monitor's window.
        until: ... up to this moment (default: now).

    Returns:
        The stored result.
    """
    from loopml.monitoring._delivery import deliver
    from loopml.serving._reading import time_bound_ms

    window = None
    if since is not None or until is not None:
        end = now_ms() if until is None else time_bound_ms(until, "until")
        if since is None:
            raise InvalidParameter("Give 'since' with 'until': the window's start.")
        window = (time_bound_ms(since, "since"), end)
    return _run(
        monitor_store(),
        readers(),
        name,
        project=settings.project(project),
        trust=trust,
        deliver=deliver,
        window=window,
    )


@read_only()
def results(name: str, *, project: str | None = None, limit: int = 20) -> list[MonitorResult]:
    """The latest results of a monitor, newest first."""
    return monitor_store().results(name, project=settings.project(project), limit=limit)


@read_only()
def history(
    name: str,
    *,
    project: str | None = None,
    check: str | None = None,
    column: str | None = None,
    limit: int = 1000,
) -> list[HistoryPoint]:
    """The time series of a monitor's checks, oldest first."""
    return monitor_store().history(
        name, project=settings.project(project), check=check, column=column, limit=limit
    )


@read_only()
def alerts(
    *,
    project: str | None = None,
    monitor: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts of the project's monitors, newest first (``state``: firing / resolved)."""
    from loopml.tracking import get_client

    return list_alerts(
        get_client().store,
        project=settings.project(project),
        monitor=monitor,
        state=state,
        limit=limit,
    )


def ack(alert_id: int, *, project: str | None = None, note: str | None = None) -> Alert:
    """Acknowledge an alert (it keeps its state; the ack says someone has seen it)."""
    from loopml.tracking import get_client

    return ack_alert(
        get_client().store,
        alert_id,
        project=settings.project(project),
        by=current_identity(),
        note=note,
    )
