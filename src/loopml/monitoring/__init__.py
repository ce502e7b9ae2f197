"""Monitoring: drift, data quality, performance, fairness and attribution checks of a live model.

Every check returns :class:`CheckResult` objects; a monitor run returns a
:class:`MonitorResult`. See ``docs/architecture.md`` (Monitoring) for the decision rules.
"""

from __future__ import annotations

from loopml.monitoring._drift import DriftReport, benjamini_hochberg, detect_drift
from loopml.monitoring._drift_stats import DEFAULT_TOLERANCES, DRIFT_METHODS
from loopml.monitoring._results import (
    CHECK_KINDS,
    CheckResult,
    MonitorResult,
    Status,
    worst_status,
)
from loopml.monitoring._sketch import (
    ColumnSketch,
    SketchLayout,
    TableSketch,
    infer_layout,
    layout_from_profile,
    sketch,
)
from loopml.monitoring._synthetic import MEANINGFUL_SHIFTS, SHIFTS, make_frame

__all__ = [
    "CHECK_KINDS",
    "DEFAULT_TOLERANCES",
    "DRIFT_METHODS",
    "MEANINGFUL_SHIFTS",
    "SHIFTS",
    "CheckResult",
    "ColumnSketch",
    "DriftReport",
    "MonitorResult",
    "SketchLayout",
    "Status",
    "TableSketch",
    "benjamini_hochberg",
    "detect_drift",
    "infer_layout",
    "layout_from_profile",
    "make_frame",
    "sketch",
    "worst_status",
]
