"""Monitoring: drift, data quality, performance, fairness and attribution checks of a live model.

Every check returns :class:`CheckResult` objects; a monitor run returns a
:class:`MonitorResult`. Alert events go to sinks (:class:`LogSink`,
:class:`WebhookSink`, :class:`CommandSink`); :func:`render_html` draws a result as
one self-contained page. See ``docs/architecture.md`` (Monitoring) for the decision rules.
"""

from __future__ import annotations

from loopml.monitoring._events import AlertEvent, AlertState, Sink
from loopml.monitoring._report import render_html, write_report
from loopml.monitoring._results import (
    CHECK_KINDS,
    CheckResult,
    MonitorResult,
    Status,
    worst_status,
)
from loopml.monitoring._sinks import CommandSink, LogSink, sink_from_spec
from loopml.monitoring._webhook import WebhookSink

__all__ = [
    "CHECK_KINDS",
    "AlertEvent",
    "AlertState",
    "CheckResult",
    "CommandSink",
    "LogSink",
    "MonitorResult",
    "Sink",
    "Status",
    "WebhookSink",
    "render_html",
    "sink_from_spec",
    "worst_status",
    "write_report",
]
