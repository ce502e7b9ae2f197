"""What an alert sink receives: one :class:`AlertEvent`, and the :class:`Sink` protocol.

An event is a change of an alert's state (``firing`` or ``resolved``) for one check of
one monitor, identified by the check's key (check, column, method, segment). The
monitor's alert state (de-duplication, acknowledgement) decides when an event is sent;
sinks only deliver it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import orjson

from loopml._html import when as _when
from loopml.errors import InvalidParameter
from loopml.monitoring._results import CheckResult, MonitorResult

__all__ = ["AlertEvent", "AlertState", "Sink"]

AlertState = Literal["firing", "resolved"]
"""``firing``: the check went out of tolerance; ``resolved``: it came back within."""

_STATES = ("firing", "resolved")


@dataclass(frozen=True)
class AlertEvent:
    """One change of an alert's state, as sent to every sink.

    Attributes:
        monitor: The monitor's name.
        check: The check's kind (``drift``, ``performance`` ...).
        column: The column judged (``""`` for the whole table).
        method: The statistic (``psi``, ``accuracy`` ...).
        segment: The part of the data (a route, a group), ``""`` for all of it.
        state: ``firing`` or ``resolved``.
        statistic: The measured value, if any.
        threshold: The tolerance it was judged against, if any.
        message: The check's one-line explanation.
        started_at: When the monitor run that changed the state started, ms since the epoch.
        result_id: The stored monitor result's id, once stored.
        report: A path or URL of the run's HTML report, if one was written.

    Example:
        >>> event = AlertEvent("credit", "drift", "age", "psi", "", "firing", 0.31, 0.2,
        ...                    "age moved", 1733000000000)
        >>> event.title
        'FIRING credit: drift of age (psi = 0.31, threshold 0.2)'
    """

    monitor: str
    check: str
    column: str
    method: str
    segment: str
    state: AlertState
    statistic: float | None
    threshold: float | None
    message: str
    started_at: int
    result_id: int | None = None
    report: str | None = None

    def __post_init__(self) -> None:
        if self.state not in _STATES:
            raise InvalidParameter(
                f"The 'state' parameter of AlertEvent must be one of {list(_STATES)}. "
                f"Got {self.state!r} instead."
            )

    @classmethod
    def from_check(
        cls,
        result: MonitorResult,
        check: CheckResult,
        state: AlertState,
        *,
        report: str | None = None,
    ) -> AlertEvent:
        """The event for ``check`` of the monitor run ``result``.

        Args:
            result: The monitor run.
            check: One of its checks.
            state: ``firing`` or ``resolved``.
            report: A path or URL of the run's HTML report.

        Returns:
            The event.
        """
        return cls(
            monitor=result.monitor,
            check=check.check,
            column=check.column,
            method=check.method,
            segment=check.segment,
            state=state,
            statistic=check.statistic,
            threshold=check.threshold,
            message=check.message,
            started_at=result.started_at,
            result_id=result.id,
            report=report,
        )

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The check's key within its monitor: (check, column, method, segment)."""
        return (self.check, self.column, self.method, self.segment)

    @property
    def title(self) -> str:
        """One line naming the state, the monitor, the check and its numbers."""
        what = f"{self.check} of {self.column}" if self.column else self.check
        if self.segment:
            what += f" [{self.segment}]"
        numbers = []
        if self.statistic is not None:
            numbers.append(f"{self.method} = {_short(self.statistic)}")
        if self.threshold is not None:
            numbers.append(f"threshold {_short(self.threshold)}")
        tail = f" ({', '.join(numbers)})" if numbers else ""
        return f"{self.state.upper()} {self.monitor}: {what}{tail}"

    @property
    def when(self) -> str:
        """``started_at`` as ``YYYY-MM-DD HH:MM:SS UTC``."""
        return _when(self.started_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (non-finite numbers become ``None``)."""
        return {
            "monitor": self.monitor,
            "check": self.check,
            "column": self.column,
            "method": self.method,
            "segment": self.segment,
            "state": self.state,
            "statistic": _finite(self.statistic),
            "threshold": _finite(self.threshold),
            "message": self.message,
            "started_at": self.started_at,
            "result_id": self.result_id,
            "report": self.report,
        }

    def to_json(self) -> bytes:
        """The event as UTF-8 JSON."""
        return orjson.dumps(self.to_dict())


@runtime_checkable
class Sink(Protocol):
    """Where alert events go: the log, a webhook, a local command.

    ``deliver`` either delivers the event or raises a
    :class:`~loopml.errors.MonitoringError` (``AlertDeliveryFailed``,
    ``ForbiddenAddress``); it never fails silently.
    """

    def deliver(self, event: AlertEvent) -> None:
        """Deliver one event."""


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _short(value: float) -> str:
    return f"{value:.4g}"
