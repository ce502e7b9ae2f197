"""The monitoring part of ``loopml demo``: a monitor on the served endpoint, a drift alert.

A monitor of the demo endpoint compares the served inputs with the data the
champion was trained on. It judges the labelled traffic first (nothing moved), then
the traffic whose inputs drifted: the drifting columns alert, and the run's HTML
report is written next to the model card. The endpoint logs class probabilities, so
the monitor also estimates the accuracy of the drifted traffic before any label
arrives (CBPE, calibrated on the labelled traffic). (Acting on the alert --
retraining, gating, promoting -- is the automation that comes next.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loopml.cli._format import fmt_value

__all__ = ["ESTIMATING", "MONITOR", "monitor_demo"]

MONITOR = "breast-cancer-live"
ESTIMATING = "breast-cancer-estimated"


def monitor_demo(
    console: Console,
    *,
    project: str,
    endpoint: str,
    normal: tuple[int, int],
    drifted: tuple[int, int],
) -> Path:
    """Create the demo monitor, run it over both windows, write the drifted run's report.

    Returns:
        The HTML report of the run over the drifted traffic.
    """
    from loopml import settings
    from loopml.monitoring import MonitorSpec, create_monitor, monitor_store
    from loopml.monitoring._api import readers
    from loopml.monitoring._delivery import deliver
    from loopml.monitoring._report import write_report
    from loopml.monitoring._run import run_monitor

    spec = MonitorSpec(
        name=MONITOR,
        endpoint=endpoint,
        window="1d",
        checks={"drift": {}, "data_quality": {}, "performance": {"min_labels": 100}},
        sinks=(),
        description="loopml demo: the served inputs against the champion's training data",
    )
    labelled = "/".join(datetime.fromtimestamp(t / 1000, tz=UTC).isoformat() for t in normal)
    estimating = MonitorSpec(
        name=ESTIMATING,
        endpoint=endpoint,
        reference=f"window:{labelled}",
        checks={"estimated_performance": {"metrics": ["accuracy"]}},
        sinks=(),
        description="loopml demo: accuracy estimated from calibrated probabilities (CBPE)",
    )
    create_monitor(estimating, project=project, replace=True)
    create_monitor(spec, project=project, replace=True)
    console.print(
        f"Monitoring: monitor [bold]{MONITOR}[/] compares what {endpoint} is sent with the "
        "champion's training data (drift, data quality, performance on the labels)",
        highlight=False,
        soft_wrap=True,
    )
    store, sources = monitor_store(), readers()
    calm = run_monitor(store, sources, MONITOR, project=project, window=normal, deliver=deliver)
    console.print(
        f"  [green]✓[/] labelled traffic ({calm.current_rows} rows): {calm.status}, "
        f"{len(calm.alerts)} alert(s)",
        highlight=False,
    )
    moved = run_monitor(store, sources, MONITOR, project=project, window=drifted, deliver=deliver)
    drifting = [c for c in moved.alerts if c.check == "drift"]
    console.print(
        f"  [red]![/] drifted traffic ({moved.current_rows} rows): {moved.status}, "
        f"{len(drifting)} drifting column(s)",
        highlight=False,
    )
    table = Table("column", "method", "effect", "tolerance", "adjusted p")
    for check in sorted(drifting, key=lambda c: -(c.statistic or 0.0)):
        table.add_row(
            check.column,
            check.method,
            fmt_value(check.statistic),
            fmt_value(check.threshold),
            "-" if check.p_value is None else f"{check.p_value:.2g}",
        )
    console.print(table)
    estimate = run_monitor(store, sources, ESTIMATING, project=project, window=drifted)
    for check in estimate.checks:
        low, high = check.interval or (None, None)
        console.print(
            f"  [green]✓[/] {check.segment}: accuracy estimated before any label arrived "
            f"{fmt_value(check.statistic)} [{fmt_value(low)}, {fmt_value(high)}] "
            f"({check.status}; CBPE calibrated on the labelled traffic)",
            highlight=False,
            soft_wrap=True,
        )
    path = (settings.home() / "reports" / f"monitor-{MONITOR}-{moved.id}.html").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(moved, path, history=[calm])
    console.print(f"  Report: {path}", highlight=False, soft_wrap=True)
    return path
