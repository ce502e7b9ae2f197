"""Monitoring: drift, data quality, performance, fairness and attribution checks of a live model.

A monitor (:class:`MonitorSpec`, stored with :func:`create_monitor`) watches an
endpoint's prediction log or a dataset against a reference; :func:`run_monitor`
judges it once, stores the :class:`MonitorResult` as a time series, opens and
resolves alerts and tells the monitor's sinks. Every check returns
:class:`CheckResult` objects. ``docs/architecture.md`` (Monitoring) gives the
decision rules and their defaults.

Example:
    >>> import loopml.monitoring as mon
    >>> mon.create_monitor(name="credit-live", endpoint="credit", window="1d")  # doctest: +SKIP
    >>> mon.run_monitor("credit-live").status                                   # doctest: +SKIP
    'alert'
"""

from __future__ import annotations

from loopml.monitoring._alert_state import Alert
from loopml.monitoring._api import (
    ack,
    alerts,
    create_monitor,
    delete_monitor,
    get_monitor,
    history,
    list_monitors,
    monitor_store,
    results,
    run_monitor,
)
from loopml.monitoring._monitors import HistoryPoint, MonitorRecord, MonitorStore
from loopml.monitoring._results import (
    CHECK_KINDS,
    CheckResult,
    MonitorResult,
    Status,
    worst_status,
)
from loopml.monitoring._spec import MonitorSpec, spec_from_yaml

__all__ = [
    "CHECK_KINDS",
    "Alert",
    "CheckResult",
    "HistoryPoint",
    "MonitorRecord",
    "MonitorResult",
    "MonitorSpec",
    "MonitorStore",
    "Status",
    "ack",
    "alerts",
    "create_monitor",
    "delete_monitor",
    "get_monitor",
    "history",
    "list_monitors",
    "monitor_store",
    "results",
    "run_monitor",
    "spec_from_yaml",
    "worst_status",
]
