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

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

if TYPE_CHECKING:
    from loopml.monitoring._alert_state import Alert as Alert
    from loopml.monitoring._api import ack as ack
    from loopml.monitoring._api import alerts as alerts
    from loopml.monitoring._api import create_monitor as create_monitor
    from loopml.monitoring._api import delete_monitor as delete_monitor
    from loopml.monitoring._api import get_monitor as get_monitor
    from loopml.monitoring._api import history as history
    from loopml.monitoring._api import list_monitors as list_monitors
    from loopml.monitoring._api import monitor_store as monitor_store
    from loopml.monitoring._api import results as results
    from loopml.monitoring._api import run_monitor as run_monitor
    from loopml.monitoring._attribution import attribution_drift as attribution_drift
    from loopml.monitoring._drift import DriftReport as DriftReport
    from loopml.monitoring._drift import benjamini_hochberg as benjamini_hochberg
    from loopml.monitoring._drift import detect_drift as detect_drift
    from loopml.monitoring._drift_stats import DEFAULT_TOLERANCES as DEFAULT_TOLERANCES
    from loopml.monitoring._drift_stats import DRIFT_METHODS as DRIFT_METHODS
    from loopml.monitoring._estimated import compare_estimate as compare_estimate
    from loopml.monitoring._estimated import estimate_performance as estimate_performance
    from loopml.monitoring._events import AlertEvent as AlertEvent
    from loopml.monitoring._events import AlertState as AlertState
    from loopml.monitoring._events import Sink as Sink
    from loopml.monitoring._fairness import fairness as fairness
    from loopml.monitoring._monitors import HistoryPoint as HistoryPoint
    from loopml.monitoring._monitors import MonitorRecord as MonitorRecord
    from loopml.monitoring._monitors import MonitorStore as MonitorStore
    from loopml.monitoring._multivariate import domain_classifier_drift as domain_classifier_drift
    from loopml.monitoring._performance import performance as performance
    from loopml.monitoring._report import render_html as render_html
    from loopml.monitoring._report import write_report as write_report
    from loopml.monitoring._results import CHECK_KINDS as CHECK_KINDS
    from loopml.monitoring._results import CheckResult as CheckResult
    from loopml.monitoring._results import MonitorResult as MonitorResult
    from loopml.monitoring._results import Status as Status
    from loopml.monitoring._results import worst_status as worst_status
    from loopml.monitoring._sinks import CommandSink as CommandSink
    from loopml.monitoring._sinks import LogSink as LogSink
    from loopml.monitoring._sinks import sink_from_spec as sink_from_spec
    from loopml.monitoring._sketch import ColumnSketch as ColumnSketch
    from loopml.monitoring._sketch import SketchLayout as SketchLayout
    from loopml.monitoring._sketch import TableSketch as TableSketch
    from loopml.monitoring._sketch import infer_layout as infer_layout
    from loopml.monitoring._sketch import layout_from_profile as layout_from_profile
    from loopml.monitoring._sketch import sketch as sketch
    from loopml.monitoring._spec import MonitorSpec as MonitorSpec
    from loopml.monitoring._spec import spec_from_yaml as spec_from_yaml
    from loopml.monitoring._synthetic import MEANINGFUL_SHIFTS as MEANINGFUL_SHIFTS
    from loopml.monitoring._synthetic import SHIFTS as SHIFTS
    from loopml.monitoring._synthetic import make_frame as make_frame
    from loopml.monitoring._webhook import WebhookSink as WebhookSink

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

# Each name is imported from its module on first use: a drift check on two files
# (``sketch``, ``detect_drift``, ``render_html``) then loads neither SQLAlchemy, nor the
# artifact back-ends, nor YAML, nor pandas' data-frame checks (bench/README.md, memory).
_ORIGINS = {
    "_alert_state": ("Alert",),
    "_api": (
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
    ),
    "_attribution": ("attribution_drift",),
    "_drift": (
        "DriftReport",
        "benjamini_hochberg",
        "detect_drift",
    ),
    "_drift_stats": (
        "DEFAULT_TOLERANCES",
        "DRIFT_METHODS",
    ),
    "_estimated": (
        "compare_estimate",
        "estimate_performance",
    ),
    "_events": (
        "AlertEvent",
        "AlertState",
        "Sink",
    ),
    "_fairness": ("fairness",),
    "_monitors": (
        "HistoryPoint",
        "MonitorRecord",
        "MonitorStore",
    ),
    "_multivariate": ("domain_classifier_drift",),
    "_performance": ("performance",),
    "_report": (
        "render_html",
        "write_report",
    ),
    "_results": (
        "CHECK_KINDS",
        "CheckResult",
        "MonitorResult",
        "Status",
        "worst_status",
    ),
    "_sinks": (
        "CommandSink",
        "LogSink",
        "sink_from_spec",
    ),
    "_sketch": (
        "ColumnSketch",
        "SketchLayout",
        "TableSketch",
        "infer_layout",
        "layout_from_profile",
        "sketch",
    ),
    "_spec": (
        "MonitorSpec",
        "spec_from_yaml",
    ),
    "_synthetic": (
        "MEANINGFUL_SHIFTS",
        "SHIFTS",
        "make_frame",
    ),
    "_webhook": ("WebhookSink",),
}
__getattr__, __dir__ = lazy_exports(__name__, _ORIGINS)
