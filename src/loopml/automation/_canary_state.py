"""The stored state of a canary analysis: per-arm counts, updated incrementally.

The scheduler keeps one :class:`CanaryState` per canary in the metadata store and feeds
it what it read since the last look (request and error counts from the server, the
share of requests slower than the latency threshold, labelled feedback). Only
sufficient statistics are kept, never rows: for a share, the number of rows and of
events; for a continuous loss, the count, mean and sum of squared deviations (merged
with Chan's parallel formula, which stays accurate where a sum of squares would cancel).
So a state is a few numbers per metric, JSON-able with :meth:`CanaryState.to_dict`, and
a restarted scheduler resumes from :meth:`CanaryState.from_dict` exactly where it was.

States are immutable: every update returns a new state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from loopml.data._sketches import Moments as RunningMoments
from loopml.data._sketches import merge_moments
from loopml.errors import InvalidParameter

__all__ = [
    "Arm",
    "CanaryState",
    "MetricKind",
    "MetricState",
    "Moments",
    "Proportion",
    "correctness",
    "error_rate",
    "latency_exceedance",
    "loss",
]

#: Version of the dictionary layout written by :meth:`CanaryState.to_dict`.
STATE_FORMAT = 1


class Arm(StrEnum):
    """The two arms of a canary."""

    CHAMPION = "champion"
    CANDIDATE = "candidate"


class MetricKind(StrEnum):
    """How a metric's rows are summarised: a share of events, or a mean of values."""

    PROPORTION = "proportion"
    MEAN = "mean"


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidParameter(f"The {name!r} value must be a count (int >= 0). Got {value!r}.")
    return int(value)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InvalidParameter(f"The {name!r} value must be a finite number. Got {value!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameter(f"The {name!r} value must be a finite number. Got {value!r}.")
    return number


@dataclass(frozen=True)
class Proportion:
    """One arm's share of events: ``events`` of ``n`` rows (errors, slow requests, hits)."""

    n: int = 0
    events: int = 0

    def __post_init__(self) -> None:
        _count(self.n, "n")
        _count(self.events, "events")
        if self.events > self.n:
            raise InvalidParameter(
                f"The 'events' value must be at most 'n' ({self.n}). Got {self.events}."
            )

    def add(self, n: int, events: int) -> Proportion:
        """Return the arm with ``n`` more rows, ``events`` of them events."""
        n, events = _count(n, "n"), _count(events, "events")
        if events > n:
            raise InvalidParameter(f"The 'events' value must be at most 'n' ({n}). Got {events}.")
        return Proportion(self.n + n, self.events + events)

    @property
    def value(self) -> float:
        """The share of events (NaN with no rows)."""
        return self.events / self.n if self.n else math.nan


@dataclass(frozen=True)
class Moments:
    """One arm's running count, mean and sum of squared deviations (``m2``) of a value."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def __post_init__(self) -> None:
        _count(self.n, "n")
        _finite(self.mean, "mean")
        if _finite(self.m2, "m2") < 0:
            raise InvalidParameter(f"The 'm2' value must be >= 0. Got {self.m2!r}.")

    def add(self, values: Sequence[float] | np.ndarray[Any, Any]) -> Moments:
        """Return the arm with ``values`` (finite numbers, e.g. a loss per row) added."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(array).all():
            raise InvalidParameter("The 'values' must be finite numbers. Got NaN or infinity.")
        if array.size == 0:
            return self
        batch_mean = float(array.mean())
        batch = Moments(int(array.size), batch_mean, float(((array - batch_mean) ** 2).sum()))
        return self.merge(batch)

    def merge(self, other: Moments) -> Moments:
        """Combine two summaries as if their rows had been summarised together (Chan et al.)."""
        merged = merge_moments(
            RunningMoments(self.n, self.mean, self.m2),
            RunningMoments(other.n, other.mean, other.m2),
        )
        return Moments(merged.n, merged.mean, merged.m2)

    @property
    def value(self) -> float:
        """The mean (NaN with no rows)."""
        return self.mean if self.n else math.nan


@dataclass(frozen=True)
class MetricState:
    """Both arms of one compared metric, with the direction that counts as better.

    Build one with :func:`error_rate`, :func:`latency_exceedance`, :func:`correctness`
    or :func:`loss`. ``threshold_ms`` is the latency threshold the slow-request share is
    counted against (fixed when the canary starts, so that it does not depend on the
    data being tested).
    """

    name: str
    kind: MetricKind
    higher_is_better: bool
    champion: Proportion | Moments
    candidate: Proportion | Moments
    threshold_ms: float | None = None

    def arm(self, arm: Arm | str) -> Proportion | Moments:
        """The summary of one arm."""
        return self.champion if Arm(arm) is Arm.CHAMPION else self.candidate

    def with_arm(self, arm: Arm | str, summary: Proportion | Moments) -> MetricState:
        """Return the metric with one arm's summary replaced."""
        if Arm(arm) is Arm.CHAMPION:
            return replace(self, champion=summary)
        return replace(self, candidate=summary)


def _empty(name: str, kind: MetricKind, higher: bool, threshold: float | None) -> MetricState:
    arm: Proportion | Moments = Proportion() if kind is MetricKind.PROPORTION else Moments()
    return MetricState(name, kind, higher, arm, arm, threshold)


def error_rate(name: str = "error_rate") -> MetricState:
    """The share of requests that failed (lower is better)."""
    return _empty(name, MetricKind.PROPORTION, False, None)


def latency_exceedance(threshold_ms: float, name: str = "latency") -> MetricState:
    """The share of requests slower than ``threshold_ms`` (lower is better).

    Pass a threshold fixed before the canary starts, e.g. the champion's p95 over the
    hour before: a candidate whose p95 is above it has more than 5 % of requests
    above it, so the share compares the tail the way a p95 would.
    """
    threshold = _finite(threshold_ms, "threshold_ms")
    if threshold <= 0:
        raise InvalidParameter(f"The 'threshold_ms' value must be > 0. Got {threshold_ms!r}.")
    return _empty(name, MetricKind.PROPORTION, False, threshold)


def correctness(name: str = "accuracy") -> MetricState:
    """The share of labelled predictions that were right (higher is better)."""
    return _empty(name, MetricKind.PROPORTION, True, None)


def loss(name: str = "loss") -> MetricState:
    """The mean of a per-row loss from feedback, e.g. squared or log loss (lower is better)."""
    return _empty(name, MetricKind.MEAN, False, None)


@dataclass(frozen=True)
class CanaryState:
    """Every compared metric of one canary, and when it started and was last updated.

    Times are seconds since the epoch, given by the caller, so that
    :func:`~loopml.automation._sequential.decide` stays a pure function of the state.
    """

    started_at: float
    updated_at: float
    metrics: tuple[MetricState, ...]

    @classmethod
    def start(cls, metrics: Sequence[MetricState], at: float) -> CanaryState:
        """A state with empty arms for ``metrics`` (distinct names, at least one)."""
        names = [metric.name for metric in metrics]
        if not names or len(set(names)) != len(names):
            raise InvalidParameter(
                f"The 'metrics' parameter must name at least one metric, each once. Got {names}."
            )
        at = _finite(at, "at")
        return cls(at, at, tuple(metrics))

    def metric(self, name: str) -> MetricState:
        """The metric called ``name``."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        known = ", ".join(metric.name for metric in self.metrics)
        raise InvalidParameter(f"The 'metric' parameter must be one of {known}. Got {name!r}.")

    def add_counts(
        self, metric: str, arm: Arm | str, *, n: int, events: int, at: float
    ) -> CanaryState:
        """Return the state with ``n`` more rows, ``events`` of them events, on one arm."""
        current = self.metric(metric)
        summary = current.arm(_arm(arm))
        if not isinstance(summary, Proportion):
            raise InvalidParameter(f"The metric {metric!r} is a mean: use add_values.")
        return self._with(current.with_arm(arm, summary.add(n, events)), at)

    def add_values(
        self, metric: str, arm: Arm | str, values: Sequence[float], *, at: float
    ) -> CanaryState:
        """Return the state with per-row ``values`` (e.g. losses) added to one arm."""
        current = self.metric(metric)
        summary = current.arm(_arm(arm))
        if not isinstance(summary, Moments):
            raise InvalidParameter(f"The metric {metric!r} is a share: use add_counts.")
        return self._with(current.with_arm(arm, summary.add(values)), at)

    def _with(self, updated: MetricState, at: float) -> CanaryState:
        at = _finite(at, "at")
        if at < self.updated_at:
            raise InvalidParameter(
                f"The 'at' parameter must not go back in time (last update {self.updated_at}). "
                f"Got {at}."
            )
        metrics = tuple(updated if m.name == updated.name else m for m in self.metrics)
        return replace(self, updated_at=at, metrics=metrics)

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON types (read back with :meth:`from_dict`)."""
        return {
            "format": STATE_FORMAT,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "metrics": [
                {
                    "name": m.name,
                    "kind": m.kind.value,
                    "higher_is_better": m.higher_is_better,
                    "threshold_ms": m.threshold_ms,
                    "champion": _summary_dict(m.champion),
                    "candidate": _summary_dict(m.candidate),
                }
                for m in self.metrics
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryState:
        """Rebuild a state written by :meth:`to_dict`; a damaged one raises InvalidParameter."""
        try:
            if data["format"] != STATE_FORMAT:
                raise InvalidParameter(
                    f"The canary state's 'format' must be {STATE_FORMAT}. Got {data['format']!r}."
                )
            metrics = [_metric_from(item) for item in data["metrics"]]
            state = cls.start(metrics, data["started_at"])
            updated = _finite(data["updated_at"], "updated_at")
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, InvalidParameter):
                raise
            raise InvalidParameter(f"The canary state is damaged: {error!r}.") from error
        if updated < state.started_at:
            raise InvalidParameter("The canary state's 'updated_at' is before its 'started_at'.")
        return replace(state, updated_at=updated)


def _arm(arm: Arm | str) -> Arm:
    try:
        return Arm(arm)
    except ValueError:
        raise InvalidParameter(
            f"The 'arm' parameter must be 'champion' or 'candidate'. Got {arm!r}."
        ) from None


def _summary_dict(summary: Proportion | Moments) -> dict[str, Any]:
    if isinstance(summary, Proportion):
        return {"n": summary.n, "events": summary.events}
    return {"n": summary.n, "mean": summary.mean, "m2": summary.m2}


def _metric_from(item: Mapping[str, Any]) -> MetricState:
    kind = MetricKind(item["kind"])
    if not isinstance(item["name"], str) or not isinstance(item["higher_is_better"], bool):
        raise InvalidParameter(f"The canary state's metric {item!r} is damaged.")
    threshold = item["threshold_ms"]
    arms: list[Proportion | Moments] = []
    for arm in (Arm.CHAMPION, Arm.CANDIDATE):
        values = item[arm.value]
        if kind is MetricKind.PROPORTION:
            arms.append(Proportion(values["n"], values["events"]))
        else:
            arms.append(Moments(values["n"], values["mean"], values["m2"]))
    return MetricState(
        item["name"],
        kind,
        item["higher_is_better"],
        arms[0],
        arms[1],
        None if threshold is None else _finite(threshold, "threshold_ms"),
    )
