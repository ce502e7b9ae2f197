"""The typed results every monitoring check returns, and a monitor run's result.

One check is one function that returns :class:`CheckResult` objects: the statistic,
the threshold it was judged against, the decision, the evidence (a p-value for "the
effect exceeds the threshold", an interval) and a JSON-able ``detail`` holding enough
to draw the check (histograms, per-group values, a time series). Reports, the CLI,
alerts and the metadata store's time series only read these objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson

__all__ = ["CHECK_KINDS", "CheckResult", "MonitorResult", "Status", "worst_status"]

Status = Literal["ok", "alert", "no_data"]
"""``ok``: judged and within tolerance; ``alert``: judged and out of tolerance;
``no_data``: not judged, because the data was missing or too small (never a silent pass)."""

CHECK_KINDS: tuple[str, ...] = (
    "drift",
    "missing_rate",
    "unseen_category",
    "dataset_drift",
    "multivariate_drift",
    "data_quality",
    "performance",
    "estimated_performance",
    "fairness",
    "attribution_drift",
)
"""The stable names of the checks, as stored and as used on the command line."""

_ORDER: dict[str, int] = {"ok": 0, "no_data": 1, "alert": 2}


def worst_status(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """``alert`` if any is, else ``no_data`` if any is, else ``ok`` (also for none)."""
    return max(statuses, key=_ORDER.__getitem__, default="ok")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one column (or on the whole table).

    Attributes:
        check: The check's stable kind, one of :data:`CHECK_KINDS`.
        column: The column judged (the sensitive column for fairness, the metric's
            target for performance); ``""`` for a check of the whole table.
        method: The statistic: ``ks``, ``chi2``, ``jensen_shannon``, ``wasserstein``,
            ``psi``, ``hellinger``, ``missing_rate``, ``unseen_share``, ``share_drifted``,
            ``domain_auc``, ``accuracy``, ``demographic_parity_difference``, ``ndcg`` ...
        statistic: The measured value (an effect size, a metric); ``None`` when the
            status is ``no_data``.
        threshold: The tolerance or bound the statistic was judged against.
        status: The decision (see :data:`Status`).
        p_value: Evidence for the decision where the check is a test: the p-value of
            "the effect is within the threshold", after correction across columns
            when ``adjusted`` says so.
        interval: A confidence interval of the statistic (95 % unless ``detail``
            says otherwise).
        segment: What part of the data this is about when a check is split (a route,
            a model version, a group, a window), ``""`` otherwise.
        message: One line a person reads: what moved, by how much, why it matters.
        detail: JSON-able data to draw the check (bins and counts of both sides,
            per-group values, a series over time ...). Keys are check-specific.
    """

    check: str
    column: str
    method: str
    statistic: float | None
    threshold: float | None
    status: Status
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    segment: str = ""
    message: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies this check within a monitor: (check, column, method, segment)."""
        return (self.check, self.column, self.method, self.segment)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite floats become ``None``)."""
        return {
            "check": self.check,
            "column": self.column,
            "method": self.method,
            "statistic": _finite(self.statistic),
            "threshold": _finite(self.threshold),
            "status": self.status,
            "p_value": _finite(self.p_value),
            "interval": None
            if self.interval is None
            else [_finite(self.interval[0]), _finite(self.interval[1])],
            "segment": self.segment,
            "message": self.message,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        """Rebuild a result written by :meth:`to_dict`."""
        interval = d.get("interval")
        return cls(
            check=str(d["check"]),
            column=str(d.get("column") or ""),
            method=str(d["method"]),
            statistic=_float_or_none(d.get("statistic")),
            threshold=_float_or_none(d.get("threshold")),
            status=_status(d["status"]),
            p_value=_float_or_none(d.get("p_value")),
            interval=None
            if interval is None
            else (_float_or_nan(interval[0]), _float_or_nan(interval[1])),
            segment=str(d.get("segment") or ""),
            message=str(d.get("message") or ""),
            detail=dict(d.get("detail") or {}),
        )


@dataclass(frozen=True)
class MonitorResult:
    """One run of a monitor: every check's result, with what was compared.

    Attributes:
        monitor: The monitor's name (``""`` for an ad-hoc run).
        status: The worst of the checks' statuses (see :func:`worst_status`), or
            ``no_data`` when the current data was missing or too small.
        started_at: When the run started, ms since the epoch.
        reference: What the reference was (``dataset:credit:3``, ``window:7d@-14d``,
            ``file:/path``, ``frame``).
        current: What the current data was (``endpoint:credit[1733000000000,1733086400000)``,
            a dataset version, a file, ``frame``).
        reference_rows: Rows in the reference.
        current_rows: Rows in the current data.
        checks: Every check's result.
        lineage: JSON-able references to what was read: ``model_version``,
            ``reference_dataset`` (``name:N``), ``segments`` (digests) ...
        id: The stored result's id, once stored.
    """

    monitor: str
    status: Status
    started_at: int
    reference: str
    current: str
    reference_rows: int
    current_rows: int
    checks: tuple[CheckResult, ...]
    lineage: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def alerts(self) -> tuple[CheckResult, ...]:
        """The checks whose status is ``alert``."""
        return tuple(c for c in self.checks if c.status == "alert")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "id": self.id,
            "monitor": self.monitor,
            "status": self.status,
            "started_at": self.started_at,
            "reference": self.reference,
            "current": self.current,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "checks": [c.to_dict() for c in self.checks],
            "lineage": dict(self.lineage),
        }

    def to_json(self) -> str:
        """The result as JSON text."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MonitorResult:
        """Rebuild a result written by :meth:`to_dict`."""
        return cls(
            monitor=str(d["monitor"]),
            status=_status(d["status"]),
            started_at=int(d["started_at"]),
            reference=str(d["reference"]),
            current=str(d["current"]),
            reference_rows=int(d["reference_rows"]),
            current_rows=int(d["current_rows"]),
            checks=tuple(CheckResult.from_dict(c) for c in d["checks"]),
            lineage=dict(d.get("lineage") or {}),
            id=None if d.get("id") is None else int(d["id"]),
        )


def _status(value: object) -> Status:
    if value not in _ORDER:
        raise ValueError(f"unknown status {value!r}")
    return cast(Status, value)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _float_or_none(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


def _float_or_nan(value: object) -> float:
    return math.nan if value is None else float(cast(float, value))
