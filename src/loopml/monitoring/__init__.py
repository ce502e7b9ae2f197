"""Monitoring: drift, data quality, performance, fairness and attribution checks of a live model.

Every check returns :class:`CheckResult` objects; a monitor run returns a
:class:`MonitorResult`. See ``docs/architecture.md`` (Monitoring) for the decision rules.
"""

from __future__ import annotations

from loopml.monitoring._attribution import attribution_drift
from loopml.monitoring._fairness import fairness
from loopml.monitoring._results import (
    CHECK_KINDS,
    CheckResult,
    MonitorResult,
    Status,
    worst_status,
)

__all__ = [
    "CHECK_KINDS",
    "CheckResult",
    "MonitorResult",
    "Status",
    "attribution_drift",
    "fairness",
    "worst_status",
]
