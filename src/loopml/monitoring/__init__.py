"""Monitoring: drift, data quality, performance, fairness and attribution checks of a live model.

A monitor (:class:`MonitorSpec`, stored with :func:`create_monitor`) watches an
endpoint's prediction log or a dataset against a reference; :func:`run_monitor`
judges it once, stores the :class:`MonitorResult` as a time series, opens and
resolves alerts and tells the monitor's sinks. Every check returns
:class:`CheckResult` objects; :func:`detect_drift` judges two tables (or sketches)
directly. ``docs/architecture.md`` (Monitoring) gives the decision rules and defaults.

Example:
    >>> import loopml.monitoring as mon
    >>> reference = mon.make_frame(2_000, seed=1)
    >>> current = mon.make_frame(2_000, seed=2, shifts=["mean"])
    >>> mon.detect_drift(reference, current).drifted_columns
    ('num_00',)
"""

from __future__ import annotations

from loopml.monitoring._alert_state import (
    Alert,
)
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
from loopml.monitoring._attribution import (
    attribution_drift,
)
from loopml.monitoring._drift import (
    DriftReport,
    benjamini_hochberg,
    detect_drift,
)
from loopml.monitoring._drift_stats import (
    DEFAULT_TOLERANCES,
    DRIFT_METHODS,
)
from loopml.monitoring._estimated import (
    compare_estimate,
    estimate_performance,
)
from loopml.monitoring._events import (
    AlertEvent,
    AlertState,
    Sink,
)
from loopml.monitoring._fairness import (
    fairness,
)
from loopml.monitoring._monitors import (
    HistoryPoint,
    MonitorRecord,
    MonitorStore,
)
from loopml.monitoring._multivariate import (
    domain_classifier_drift,
)
from loopml.monitoring._performance import (
    performance,
)
from loopml.monitoring._report import (
    render_html,
    write_report,
)
from loopml.monitoring._results import (
    CHECK_KINDS,
    CheckResult,
    MonitorResult,
    Status,
    worst_status,
)
from loopml.monitoring._sinks import (
    CommandSink,
    LogSink,
    sink_from_spec,
)
from loopml.monitoring._sketch import (
    ColumnSketch,
    SketchLayout,
    TableSketch,
    infer_layout,
    layout_from_profile,
    sketch,
)
from loopml.monitoring._spec import (
    MonitorSpec,
    spec_from_yaml,
)
from loopml.monitoring._synthetic import (
    MEANINGFUL_SHIFTS,
    SHIFTS,
    make_frame,
)
from loopml.monitoring._webhook import (
    WebhookSink,
)

__all__ = [
    "CHECK_KINDS",
    "DEFAULT_TOLERANCES",
    "DRIFT_METHODS",
    "MEANINGFUL_SHIFTS",
    "SHIFTS",
    "Alert",
    "AlertEvent",
    "AlertState",
    "CheckResult",
    "ColumnSketch",
    "CommandSink",
    "DriftReport",
    "HistoryPoint",
    "LogSink",
    "MonitorRecord",
    "MonitorResult",
    "MonitorSpec",
    "MonitorStore",
    "Sink",
    "SketchLayout",
    "Status",
    "TableSketch",
    "WebhookSink",
    "ack",
    "alerts",
    "attribution_drift",
    "benjamini_hochberg",
    "compare_estimate",
    "create_monitor",
    "delete_monitor",
    "detect_drift",
    "domain_classifier_drift",
    "estimate_performance",
    "fairness",
    "get_monitor",
    "history",
    "infer_layout",
    "layout_from_profile",
    "list_monitors",
    "make_frame",
    "monitor_store",
    "performance",
    "render_html",
    "results",
    "run_monitor",
    "sink_from_spec",
    "sketch",
    "spec_from_yaml",
    "worst_status",
    "write_report",
]
