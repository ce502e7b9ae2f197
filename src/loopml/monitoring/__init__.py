"""Monitoring: drift, data quality, performance, fairness and attribution checks of a live model.

Every check returns :class:`CheckResult` objects; a monitor run returns a
:class:`MonitorResult`. See ``docs/architecture.md`` (Monitoring) for the decision rules.
"""

from __future__ import annotations

from loopml.monitoring._estimated import compare_estimate, estimate_performance
from loopml.monitoring._performance import performance
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
    "compare_estimate",
    "estimate_performance",
    "performance",
    "worst_status",
]
