"""Tell a monitor's sinks about the alerts one run opened or resolved."""

from __future__ import annotations

import logging

from loopml.errors import LoopmlError
from loopml.monitoring._alert_state import Alert
from loopml.monitoring._events import AlertEvent
from loopml.monitoring._results import MonitorResult
from loopml.monitoring._sinks import sink_from_spec
from loopml.monitoring._spec import MonitorSpec

__all__ = ["deliver", "event_of"]

_log = logging.getLogger(__name__)


def event_of(alert: Alert, result: MonitorResult, report: str | None = None) -> AlertEvent:
    """The sink event for an alert that changed state in ``result``."""
    return AlertEvent(
        monitor=alert.monitor,
        check=alert.check,
        column=alert.column,
        method=alert.method,
        segment=alert.segment,
        state="firing" if alert.state == "firing" else "resolved",
        statistic=alert.statistic,
        threshold=alert.threshold,
        message=alert.message,
        started_at=result.started_at,
        result_id=result.id,
        report=report,
    )


def deliver(
    spec: MonitorSpec, alerts: list[Alert], result: MonitorResult, *, trust: bool = False
) -> list[str]:
    """Send every alert to every sink of ``spec``; a failing sink does not stop the others.

    A ``command`` sink runs a program named by the stored monitor -- code chosen by
    whoever saved it -- so it runs only with ``trust`` (``loopml monitor run --trust``);
    without, it is reported as failed and skipped.

    Returns:
        One line per sink and alert that failed (empty when all were delivered).
    """
    failed: list[str] = []
    for sink_spec in spec.sinks:
        if isinstance(sink_spec, dict) and "command" in sink_spec and not trust:
            failed.append(
                f"sink {sink_spec!r} runs a local command, which a stored monitor may do only "
                "when its run is trusted (run_monitor(trust=True), `loopml monitor run --trust`)"
            )
            continue
        try:
            sink = sink_from_spec(sink_spec)
        except LoopmlError as exc:
            failed.append(f"sink {sink_spec!r}: {exc}")
            continue
        for alert in alerts:
            try:
                sink.deliver(event_of(alert, result))
            except (LoopmlError, OSError) as exc:
                failed.append(f"{sink!r}, alert {alert.id}: {exc}")
    return failed
