"""One run of a stored monitor: read, judge, store, alert.

:func:`run_monitor` reads the current data and the reference (:mod:`._sources`), runs
every check the monitor names, stores the result with its time series and alert
transitions in one transaction (:class:`~._monitors.MonitorStore`), then tells the
monitor's sinks about the alerts that opened or resolved. A sink that fails is logged
and named in the returned result's ``lineage["undelivered"]``; the result itself is
already stored, so nothing is lost.

Too little current data (fewer than ``min_rows`` rows) gives a result whose status
is ``no_data`` -- never a silent pass. A check that cannot run on this data (no
labels yet, no schema) gives ``no_data`` results for that check with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopml.errors import InsufficientData, InvalidParameter, LoopmlError
from loopml.monitoring._checks import MONITOR_CHECKS
from loopml.monitoring._context import CheckContext
from loopml.monitoring._monitors import MonitorRecord, MonitorStore
from loopml.monitoring._results import CheckResult, MonitorResult, worst_status
from loopml.monitoring._sources import (
    Data,
    Readers,
    input_columns,
    load_current,
    load_reference,
    model_version_of,
)
from loopml.store import now_ms

if TYPE_CHECKING:
    from loopml.registry import ModelVersion

__all__ = ["run_monitor"]

_log = logging.getLogger(__name__)


def run_monitor(
    monitors: MonitorStore,
    readers: Readers,
    name: str,
    *,
    project: str,
    trust: bool = False,
    deliver: Callable[..., list[str]] | None = None,
    at_ms: int | None = None,
    window: tuple[int, int] | None = None,
) -> MonitorResult:
    """Run monitor ``name`` once and store its result.

    Args:
        monitors: Where monitors and results are stored.
        readers: The service clients to read data through.
        name: The monitor.
        project: Its project.
        trust: Allow what whoever saved the monitor or the model chose to run or read
            on this machine: a model that needs code (attribution), command sinks, a
            ``file:`` reference.
        deliver: Tells the sinks (``deliver(spec, alerts, result, trust=...)``); returns
            the deliveries that failed.
        at_ms: Judge the window ending at this time (default: now).
        window: Judge the predictions of ``[since, until)`` (ms) instead of the
            monitor's window (an endpoint monitor only).

    Returns:
        The stored result (with its id).

    Raises:
        MonitorNotFound: no such monitor.
        InvalidParameter, UnknownColumnError, DatasetNotFound, DeploymentNotFound: the
            monitor's data cannot be read as configured; nothing is stored.
    """
    record = monitors.get(name, project=project)
    spec = record.spec
    started = now_ms() if at_ms is None else at_ms
    if window is not None and (spec.endpoint is None or not 0 <= window[0] < window[1]):
        raise InvalidParameter(
            "An explicit window needs an endpoint monitor and a start before its end. "
            f"Got {window!r} for monitor {spec.name!r}."
        )
    current = load_current(spec, readers, project=project, now_ms=started, window=window)
    model = model_version_of(spec, current, readers, project=project)
    if current.rows < spec.min_rows:
        result = _no_data(record, started, current, model)
    else:
        reference = load_reference(
            spec, readers, project=project, now_ms=started, model=model, trust=trust
        )
        columns = input_columns(spec, reference, current, model)
        context = CheckContext(spec, project, current, reference, columns, model, readers, trust)
        checks: list[CheckResult] = []
        for kind, options in spec.checks.items():
            checks += _run_check(kind, context, dict(options))
        lineage = {**reference.lineage, **current.lineage, **_model_lineage(model)}
        result = MonitorResult(
            monitor=spec.name,
            status=worst_status([c.status for c in checks]),
            started_at=started,
            reference=reference.description,
            current=current.description,
            reference_rows=reference.rows,
            current_rows=current.rows,
            checks=tuple(checks),
            lineage=lineage,
        )
    stored, changed = monitors.record(record, result, alert_on_no_data=spec.alert_on_no_data)
    if deliver is not None and changed:
        failed = deliver(spec, changed, stored, trust=trust)
        if failed:
            _log.error("Monitor %r: alert sinks failed: %s", spec.name, "; ".join(failed))
    return stored


def _run_check(kind: str, context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    try:
        return MONITOR_CHECKS[kind](context, options)
    except InsufficientData as exc:
        return [CheckResult(kind, "", "", None, None, "no_data", message=str(exc))]
    except LoopmlError:
        raise
    except (ValueError, TypeError, KeyError) as exc:  # a check's data it cannot judge
        _log.warning("Monitor %r: check %s could not run: %s", context.spec.name, kind, exc)
        return [CheckResult(kind, "", "", None, None, "no_data", message=f"could not run: {exc}")]


def _no_data(
    record: MonitorRecord, started: int, current: Data, model: ModelVersion | None
) -> MonitorResult:
    spec = record.spec
    message = f"only {current.rows} rows in the window; the monitor needs {spec.min_rows}"
    checks = tuple(
        CheckResult(kind, "", "", None, None, "no_data", message=message) for kind in spec.checks
    )
    return MonitorResult(
        monitor=spec.name,
        status="no_data",
        started_at=started,
        reference=spec.reference,
        current=current.description,
        reference_rows=0,
        current_rows=current.rows,
        checks=checks,
        lineage={**current.lineage, **_model_lineage(model)},
    )


def _model_lineage(model: ModelVersion | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {"model_version": model.ref, "model_version_id": model.id}
