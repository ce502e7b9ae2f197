"""Promotion policies: a list of checks evaluated against one model version.

Each check kind is saved under a stable alias (``metric_threshold``,
``beats_champion``, ``data_quality``, ``fairness``, ``latency``, ``approvals``),
never its import path, so stored policies and their results survive refactors.
Every check returns a :class:`CheckOutcome` with a readable ``reason``; the
registry stores one outcome per check as the version's ``policy_result``.

A policy in YAML is a list of entries, each ``{kind: ..., <fields>}``; a bare
string entry is a metric threshold::

    - auc >= 0.85
    - {kind: beats_champion, metric: auc, margin: 0.01}
    - {kind: approvals, count: 1, separation_of_duties: true}

Example:
    >>> import numpy as np
    >>> policy = Policy(
    ...     [
    ...         MetricThreshold.parse("accuracy >= 0.5"),
    ...         BeatsChampion("accuracy", margin=0.01),
    ...         Approvals(count=1, separation_of_duties=True),
    ...     ]
    ... )
    >>> data = EvaluationData(
    ...     y_true=np.array([0, 1, 1, 0]),
    ...     candidate_pred=np.array([0, 1, 1, 1]),
    ...     approvals=[("bob", "reviewer")],
    ...     registered_by="alice",
    ... )
    >>> [o.passed for o in policy.evaluate(data)]
    [True, True, True]
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import yaml

from loopml.errors import InvalidParameter, ModelError
from loopml.registry._stats import (
    demographic_parity_difference,
    get_metric,
    mcnemar,
    paired_bootstrap,
)

__all__ = [
    "CHECK_KINDS",
    "Approvals",
    "BeatsChampion",
    "Check",
    "CheckOutcome",
    "DataQuality",
    "EvaluationData",
    "Fairness",
    "Latency",
    "MetricThreshold",
    "Policy",
    "PolicyCheck",
    "parse_threshold",
]

AnyArray = npt.NDArray[Any]


def _fail(parameter: str, expected: str, got: object) -> InvalidParameter:
    return InvalidParameter(f"The '{parameter}' parameter must be {expected}. Got {got!r} instead.")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _num(value: float) -> str:
    """Exact but short: ``0.85`` rather than ``0.8500000000000001`` or ``8.5e-01``."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True, kw_only=True)
class EvaluationData:
    """Everything a policy looks at for one candidate version.

    Arrays are converted with :func:`numpy.asarray`; per-row arrays must match
    ``y_true`` in length.

    Attributes:
        y_true: The true targets of the evaluation set.
        candidate_pred: The candidate's predicted labels (or values, for regression).
        candidate_proba: The candidate's scores/probabilities, if it has them.
        champion_pred: The current champion's predictions on the same rows; ``None``
            with ``champion_proba`` and ``champion_metrics`` means "no champion yet".
        champion_proba: The champion's scores/probabilities on the same rows.
        groups: Sensitive columns of the evaluation set, by name.
        metrics: The candidate's metrics on this data, by name.
        champion_metrics: The champion's metrics on this data, if there is one.
        training_data_passed: Whether the training data's quality report passed;
            ``None`` when there is no report.
        latency_p95_ms: Measured p95 single-row predict time, in milliseconds.
        approvals: ``(identity, role)`` pairs of the human approvals given so far.
        registered_by: The identity that registered the version.
    """

    y_true: npt.ArrayLike
    candidate_pred: npt.ArrayLike
    candidate_proba: npt.ArrayLike | None = None
    champion_pred: npt.ArrayLike | None = None
    champion_proba: npt.ArrayLike | None = None
    groups: Mapping[str, npt.ArrayLike] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    champion_metrics: Mapping[str, float] | None = None
    training_data_passed: bool | None = None
    latency_p95_ms: float | None = None
    approvals: Sequence[tuple[str, str | None]] = ()
    registered_by: str | None = None

    def __post_init__(self) -> None:
        y = np.asarray(self.y_true)
        if y.ndim != 1:
            raise _fail("y_true", "a one-dimensional array", f"shape {y.shape}")
        object.__setattr__(self, "y_true", y)
        for name in ("candidate_pred", "candidate_proba", "champion_pred", "champion_proba"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, self._rows(name, value))
        groups = {str(k): self._rows(f"groups[{k!r}]", v) for k, v in self.groups.items()}
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "approvals", tuple((str(i), r) for i, r in self.approvals))

    def _rows(self, name: str, value: npt.ArrayLike) -> AnyArray:
        array = np.asarray(value)
        n = len(np.asarray(self.y_true))
        if array.ndim == 0 or len(array) != n:
            raise _fail(name, f"an array with one entry per row of y_true ({n})", array.shape)
        return array

    @classmethod
    def for_approvals(
        cls, approvals: Sequence[tuple[str, str | None]], registered_by: str | None = None
    ) -> EvaluationData:
        """Return data without evaluation rows, for re-checking :class:`Approvals` alone.

        Args:
            approvals: ``(identity, role)`` pairs of the approvals given so far.
            registered_by: The identity that registered the version.
        """
        empty = np.empty(0)
        return cls(
            y_true=empty, candidate_pred=empty, approvals=approvals, registered_by=registered_by
        )

    @property
    def has_champion(self) -> bool:
        """Whether a champion exists to compare against."""
        return not (
            self.champion_pred is None
            and self.champion_proba is None
            and self.champion_metrics is None
        )

    def array(self, name: str) -> AnyArray | None:
        """Return the named per-row array (``y_true``, ``candidate_pred``, …) or ``None``."""
        value = getattr(self, name)
        return None if value is None else np.asarray(value)


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check on one version (stored as its ``policy_result``).

    Attributes:
        name: The check's name, unique within its policy.
        kind: The check's stable alias.
        passed: Whether the check passed.
        reason: A sentence saying why.
        details: The numbers behind the decision (JSON-compatible).
    """

    name: str
    kind: str
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as plain data."""
        return dataclasses.asdict(self)


@runtime_checkable
class Check(Protocol):
    """What a policy needs of a check."""

    @property
    def kind(self) -> str:
        """The stable alias the check is saved under."""

    @property
    def name(self) -> str:
        """The check's name, unique within a policy."""

    def evaluate(self, data: EvaluationData) -> CheckOutcome:
        """Evaluate the check on one version's data."""

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"kind": ..., <fields>}``."""


@dataclass(frozen=True)
class PolicyCheck(ABC):
    """Base of the built-in check kinds.

    ``name`` defaults to a description of the check (e.g. ``"auc >= 0.85"``).
    Evaluation problems with the data itself (a metric undefined on it, mismatched
    shapes) make the check fail with the problem as its reason rather than raise.
    """

    kind: ClassVar[str]
    name: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.generic):  # numpy scalars do not survive YAML or JSON
                object.__setattr__(self, f.name, value.item())
        self._validate()
        if not isinstance(self.name, str):
            raise _fail("name", "a string", self.name)
        if not self.name:
            object.__setattr__(self, "name", self.default_name())

    def _validate(self) -> None:  # noqa: B027 - optional hook, most kinds override it
        """Raise :class:`InvalidParameter` for bad field values."""

    @abstractmethod
    def default_name(self) -> str:
        """The name used when none is given."""

    @abstractmethod
    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        """Return ``(passed, reason, details)``."""

    def evaluate(self, data: EvaluationData) -> CheckOutcome:
        """Evaluate the check on one version's data.

        Args:
            data: The version's evaluation data, approvals and reports.

        Returns:
            The outcome, with a readable reason.
        """
        try:
            passed, reason, details = self._evaluate(data)
        except InvalidParameter as exc:
            passed, reason, details = False, f"could not be evaluated: {exc}", {}
        return CheckOutcome(self.name, self.kind, bool(passed), reason, details)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"kind": ..., <every field>}``; ``name`` only when not the default."""
        entry: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if f.name != "name":
                entry[f.name] = getattr(self, f.name)
        if self.name != self.default_name():
            entry["name"] = self.name
        return entry


# --- metric thresholds -------------------------------------------------------------

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.\-/]*)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


def parse_threshold(text: str) -> MetricThreshold:
    """Parse ``"<metric> <op> <number>"``, e.g. ``"auc >= 0.85"``, into a check.

    Args:
        text: The threshold; ``op`` is one of ``>=``, ``>``, ``<=``, ``<``.

    Returns:
        The :class:`MetricThreshold`.

    Raises:
        InvalidParameter: When the text does not have that form.

    Example:
        >>> parse_threshold("rmse < 3.5")
        MetricThreshold(name='rmse < 3.5', metric='rmse', op='<', value=3.5)
    """
    match = _THRESHOLD.match(text) if isinstance(text, str) else None
    if match is None:
        raise _fail("threshold", "of the form '<metric> <op> <number>', e.g. 'auc >= 0.85'", text)
    return MetricThreshold(match["metric"], match["op"], float(match["value"]))


@dataclass(frozen=True)
class MetricThreshold(PolicyCheck):
    """The candidate's metric must satisfy ``metric op value``, e.g. ``auc >= 0.85``.

    The value is taken from ``EvaluationData.metrics``; when it is missing there and
    the metric is a named one, it is computed from the evaluation data.
    """

    kind: ClassVar[str] = "metric_threshold"
    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricThreshold:
        """Parse ``"auc >= 0.85"``; see :func:`parse_threshold`."""
        return parse_threshold(text)

    def _validate(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise _fail("metric", "a non-empty string", self.metric)
        if self.op not in _OPERATORS:
            raise _fail("op", f"one of {sorted(_OPERATORS)}", self.op)
        if not _is_number(self.value) or not math.isfinite(self.value):
            raise _fail("value", "a finite number", self.value)

    def default_name(self) -> str:
        return f"{self.metric} {self.op} {_num(self.value)}"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        measured = _candidate_metric(self.metric, data)
        details: dict[str, Any] = {"metric": self.metric, "op": self.op, "threshold": self.value}
        if measured is None:
            return False, f"{self.metric} was not measured for this version", details
        details["value"] = measured
        if math.isnan(measured):
            return False, f"{self.metric} is undefined (NaN) on the evaluation data", details
        if _OPERATORS[self.op](measured, self.value):
            return True, f"{self.metric} = {_fmt(measured)} {self.op} {self.value:g}", details
        return False, f"{self.metric} = {_fmt(measured)}, needs {self.op} {self.value:g}", details


def _candidate_metric(name: str, data: EvaluationData) -> float | None:
    if name in data.metrics:
        return float(data.metrics[name])
    try:
        metric = get_metric(name)
    except InvalidParameter:
        return None
    prediction = data.array("candidate_proba" if metric.needs_proba else "candidate_pred")
    if prediction is None:
        return None
    return metric(data.y_true, prediction)


# --- beating the champion ---------------------------------------------------------


@dataclass(frozen=True)
class BeatsChampion(PolicyCheck):
    """The candidate must beat the champion on a metric, significantly, on the same rows.

    With ``method="bootstrap"`` the lower bound of the paired-bootstrap interval of
    the candidate's *improvement* must be above ``margin``; for lower-is-better
    metrics (``rmse``, ``mae``, ``log_loss``) the improvement is
    ``champion - candidate``, so the candidate must be *lower* by more than the
    margin. With ``method="mcnemar"`` (``accuracy`` only) the exact McNemar test must
    reject equal error rates at ``1 - confidence`` with the candidate right more
    often, and the observed accuracy gain must be above ``margin``.

    Passes when there is no champion yet.
    """

    kind: ClassVar[str] = "beats_champion"
    metric: str
    margin: float = 0.0
    confidence: float = 0.95
    method: Literal["bootstrap", "mcnemar"] = "bootstrap"
    n_resamples: int = 2000
    seed: int = 0

    def _validate(self) -> None:
        get_metric(self.metric)
        if not _is_number(self.margin) or not 0.0 <= self.margin < math.inf:
            raise _fail("margin", "a finite number >= 0", self.margin)
        if not _is_number(self.confidence) or not 0.0 < self.confidence < 1.0:
            raise _fail("confidence", "a number strictly between 0 and 1", self.confidence)
        if self.method not in ("bootstrap", "mcnemar"):
            raise _fail("method", "'bootstrap' or 'mcnemar'", self.method)
        if self.method == "mcnemar" and self.metric != "accuracy":
            raise InvalidParameter(
                "The McNemar test compares error rates, so method='mcnemar' only works with "
                f"metric='accuracy'. Got metric={self.metric!r}; use method='bootstrap'."
            )
        if not isinstance(self.n_resamples, int) or isinstance(self.n_resamples, bool):
            raise _fail("n_resamples", "an int >= 100", self.n_resamples)
        if self.n_resamples < 100:
            raise _fail("n_resamples", "an int >= 100", self.n_resamples)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise _fail("seed", "an int >= 0", self.seed)

    def default_name(self) -> str:
        return f"beats champion on {self.metric}" + (f" by {self.margin:g}" if self.margin else "")

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        metric = get_metric(self.metric)
        details: dict[str, Any] = {
            "metric": self.metric,
            "method": self.method,
            "margin": self.margin,
            "confidence": self.confidence,
            "higher_is_better": metric.higher_is_better,
        }
        if not data.has_champion:
            return True, "there is no champion yet, so there is nothing to beat", details
        column = "proba" if metric.needs_proba else "pred"
        candidate = data.array(f"candidate_{column}")
        champion = data.array(f"champion_{column}")
        what = "probabilities" if metric.needs_proba else "predictions"
        if candidate is None:
            return False, f"the candidate has no {what} on the evaluation data", details
        if champion is None:
            return False, f"the champion has no {what} on the evaluation data", details
        if self.method == "mcnemar":
            return self._mcnemar(np.asarray(data.y_true), candidate, champion, details)
        interval = paired_bootstrap(
            metric,
            data.y_true,
            candidate,
            champion,
            n_resamples=self.n_resamples,
            confidence=self.confidence,
            seed=self.seed,
        )
        gain = interval.improvement(metric.higher_is_better)
        details.update(
            difference=interval.difference,
            low=interval.low,
            high=interval.high,
            improvement=gain.difference,
            improvement_low=gain.low,
            improvement_high=gain.high,
            n_resamples=interval.n_resamples,
        )
        direction = "" if metric.higher_is_better else " (lower is better)"
        verb = "improves on" if gain.difference >= 0 else "is worse than"
        summary = (
            f"{self.metric}{direction} {verb} the champion by {_fmt(abs(gain.difference))} "
            f"(improvement {self.confidence:.0%} CI {_fmt(gain.low)} to {_fmt(gain.high)})"
        )
        if gain.low > self.margin:
            return True, f"{summary}; the lower bound is above the margin {self.margin:g}", details
        return (
            False,
            f"{summary}; the lower bound is not above the margin {self.margin:g}, "
            "so the improvement is not significant",
            details,
        )

    def _mcnemar(
        self, y: AnyArray, candidate: AnyArray, champion: AnyArray, details: dict[str, Any]
    ) -> tuple[bool, str, dict[str, Any]]:
        result = mcnemar(candidate == y, champion == y)
        gain = (result.b - result.c) / len(y)
        alpha = 1.0 - self.confidence
        details.update(b=result.b, c=result.c, p_value=result.p_value, improvement=gain)
        summary = (
            f"the candidate is right where the champion is wrong on {result.b} rows and "
            f"the reverse on {result.c} (accuracy {gain:+.4g}, McNemar p = {result.p_value:.3g})"
        )
        if result.b <= result.c:
            return False, f"{summary}; the candidate is not more accurate", details
        if result.p_value >= alpha:
            return False, f"{summary}; not significant at p < {alpha:.3g}", details
        if gain <= self.margin:
            return False, f"{summary}; the gain is not above the margin {self.margin:g}", details
        return True, f"{summary}; significant at p < {alpha:.3g}", details


# --- data quality, fairness, latency, approvals -------------------------------------


@dataclass(frozen=True)
class DataQuality(PolicyCheck):
    """The training data's quality report must have passed.

    Fails when it failed, and also when there is no report at all
    (``training_data_passed is None``): an unchecked dataset is not a passed one.
    """

    kind: ClassVar[str] = "data_quality"

    def default_name(self) -> str:
        return "training data quality"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        state = data.training_data_passed
        details = {"training_data_passed": state}
        if state is None:
            return False, "no data-quality report for the training data", details
        if state:
            return True, "the training data passed its data-quality report", details
        return False, "the training data failed its data-quality report", details


_FAIRNESS_METRICS = ("demographic_parity_difference",)


@dataclass(frozen=True)
class Fairness(PolicyCheck):
    """A fairness metric of the candidate's predictions must stay within a bound.

    ``demographic_parity_difference`` is the largest gap in the rate of ``positive``
    predictions between the groups of the ``sensitive`` column of the evaluation set.
    """

    kind: ClassVar[str] = "fairness"
    sensitive: str
    metric: str = "demographic_parity_difference"
    max: float = 0.1
    positive: int | str | bool = 1

    def _validate(self) -> None:
        if not isinstance(self.sensitive, str) or not self.sensitive:
            raise _fail("sensitive", "a non-empty column name", self.sensitive)
        if self.metric not in _FAIRNESS_METRICS:
            raise _fail("metric", f"one of {list(_FAIRNESS_METRICS)}", self.metric)
        if not _is_number(self.max) or not 0.0 <= self.max <= 1.0:
            raise _fail("max", "a number between 0 and 1", self.max)
        if not isinstance(self.positive, int | str):
            raise _fail("positive", "an int, str or bool label", self.positive)

    def default_name(self) -> str:
        return f"{self.metric} on {self.sensitive} <= {self.max:g}"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        details: dict[str, Any] = {"sensitive": self.sensitive, "metric": self.metric}
        details["max"] = self.max
        if self.sensitive not in data.groups:
            return (
                False,
                f"the sensitive column {self.sensitive!r} is not in the evaluation data "
                f"(have {sorted(data.groups)})",
                details,
            )
        value, rates = demographic_parity_difference(
            data.candidate_pred, data.groups[self.sensitive], positive=self.positive
        )
        details.update(value=value, per_group=rates)
        shown = ", ".join(f"{g}: {r:.3g}" for g, r in rates.items())
        summary = f"demographic parity difference on {self.sensitive!r} is {_fmt(value)} ({shown})"
        if value <= self.max:
            return True, f"{summary}, within {self.max:g}", details
        return False, f"{summary}, above the bound {self.max:g}", details


@dataclass(frozen=True)
class Latency(PolicyCheck):
    """The measured p95 single-row predict time must be within ``p95_ms`` milliseconds."""

    kind: ClassVar[str] = "latency"
    p95_ms: float

    def _validate(self) -> None:
        if not _is_number(self.p95_ms) or not 0.0 < self.p95_ms < math.inf:
            raise _fail("p95_ms", "a positive number of milliseconds", self.p95_ms)

    def default_name(self) -> str:
        return f"p95 latency <= {self.p95_ms:g} ms"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        measured = data.latency_p95_ms
        details: dict[str, Any] = {"budget_ms": self.p95_ms, "p95_ms": measured}
        if measured is None:
            return False, "the p95 predict latency was not measured", details
        summary = f"p95 single-row predict time is {_fmt(measured)} ms"
        if measured <= self.p95_ms:
            return True, f"{summary}, within {self.p95_ms:g} ms", details
        return False, f"{summary}, over the budget of {self.p95_ms:g} ms", details


@dataclass(frozen=True)
class Approvals(PolicyCheck):
    """At least ``count`` distinct identities (with ``role``, if given) must approve.

    With ``separation_of_duties`` the identity that registered the version cannot
    approve it: its approval does not count, and the check fails when the
    registering identity is unknown (separation cannot be verified).
    """

    kind: ClassVar[str] = "approvals"
    count: int = 1
    role: str | None = None
    separation_of_duties: bool = False

    def _validate(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise _fail("count", "an int >= 1", self.count)
        if self.role is not None and (not isinstance(self.role, str) or not self.role):
            raise _fail("role", "a non-empty string or None", self.role)
        if not isinstance(self.separation_of_duties, bool):
            raise _fail("separation_of_duties", "a bool", self.separation_of_duties)

    def default_name(self) -> str:
        role = f" by {self.role}" if self.role else ""
        return f"{self.count} approval{'s' if self.count > 1 else ''}{role}"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        approvers = sorted({i for i, r in data.approvals if self.role is None or r == self.role})
        details: dict[str, Any] = {"required": self.count, "role": self.role}
        notes: list[str] = []
        if self.separation_of_duties:
            if data.registered_by is None:
                details["approvers"] = approvers
                return (
                    False,
                    "separation of duties is required but who registered the version is unknown",
                    details,
                )
            if data.registered_by in approvers:
                approvers.remove(data.registered_by)
                notes.append(
                    f"the approval by {data.registered_by!r} does not count: that identity "
                    "registered the version (separation of duties)"
                )
        details["approvers"] = approvers
        role = f" with role {self.role!r}" if self.role else ""
        summary = f"{len(approvers)} of {self.count} required approval(s){role}"
        if approvers:
            summary += f" ({', '.join(approvers)})"
        reason = "; ".join([summary, *notes])
        return len(approvers) >= self.count, reason, details


#: Every check kind by its stable alias.
CHECK_KINDS: Mapping[str, type[PolicyCheck]] = {
    cls.kind: cls
    for cls in (MetricThreshold, BeatsChampion, DataQuality, Fairness, Latency, Approvals)
}


# --- the policy ------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class Policy:
    """The promotion policy of a model: checks that must all pass.

    Args:
        checks: The checks; their names must be unique.

    Raises:
        InvalidParameter: When a check is not a :class:`Check` or two share a name.
    """

    checks: tuple[Check, ...]

    def __init__(self, checks: Iterable[Check] = ()) -> None:
        items = tuple(checks)
        seen: set[str] = set()
        for check in items:
            if not isinstance(check, Check):
                raise _fail("checks", "a list of policy checks", check)
            if check.name in seen:
                raise InvalidParameter(
                    f"Two checks of the policy are named {check.name!r}; give one a 'name'."
                )
            seen.add(check.name)
        object.__setattr__(self, "checks", items)

    def evaluate(self, data: EvaluationData) -> list[CheckOutcome]:
        """Evaluate every check on one version's data, in order.

        Args:
            data: The version's evaluation data, reports and approvals.

        Returns:
            One outcome per check.
        """
        return [check.evaluate(data) for check in self.checks]

    @staticmethod
    def passed(outcomes: Iterable[CheckOutcome]) -> bool:
        """Whether every outcome passed (an empty policy passes)."""
        return all(o.passed for o in outcomes)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"checks": [{kind: ..., ...}, ...]}``."""
        return {"checks": [check.to_dict() for check in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Any]) -> Policy:
        """Build a policy from :meth:`to_dict`'s output, or from a bare list of entries.

        Raises:
            ModelError: When an entry is invalid; the message names the entry.
        """
        return cls._from_data(data, text=None)

    def to_yaml(self) -> str:
        """Return the policy as a YAML list of ``{kind: ..., ...}`` entries."""
        return yaml.safe_dump(self.to_dict()["checks"], sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        """Parse a policy from YAML: a list of entries (or a mapping with ``checks``).

        Each entry is ``{kind: <alias>, <fields>}``; a string entry such as
        ``auc >= 0.85`` is a metric threshold. An empty document is an empty policy.

        Raises:
            ModelError: When the text does not parse, or an entry has no or an
                unknown kind, unknown or missing fields or bad values; the message
                names the entry (``#1`` is the first) and its line.
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ModelError(f"The policy YAML does not parse{where}: {problem}.") from exc
        return cls._from_data([] if data is None else data, text=text)

    @classmethod
    def _from_data(cls, data: object, text: str | None) -> Policy:
        nested = isinstance(data, Mapping)
        if isinstance(data, Mapping):
            unknown = sorted(set(map(str, data)) - {"checks"})
            if unknown:
                raise ModelError(f"A policy mapping holds only 'checks'; got the keys {unknown}.")
            data = data.get("checks") or []
        if not isinstance(data, list | tuple):
            raise ModelError(
                "A policy must be a list of checks ({kind: ..., ...} entries). "
                f"Got {type(data).__name__} instead."
            )
        lines = _entry_lines(text, nested)
        checks = [
            _check_from_entry(entry, i, lines[i] if i < len(lines) else None)
            for i, entry in enumerate(data)
        ]
        try:
            return cls(checks)
        except InvalidParameter as exc:
            raise ModelError(f"Invalid policy: {exc}") from exc


def _entry_lines(text: str | None, nested: bool) -> list[int]:
    """1-based line of each entry of the policy list in ``text`` (best effort)."""
    if not text:
        return []
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if nested and isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if k.value == "checks"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def _check_from_entry(entry: object, index: int, line: int | None) -> PolicyCheck:
    where = f"Policy entry #{index + 1}" + (f" (line {line})" if line else "")
    if isinstance(entry, str):
        try:
            return parse_threshold(entry)
        except InvalidParameter as exc:
            raise ModelError(f"{where}: {exc}") from exc
    if not isinstance(entry, Mapping) or "kind" not in entry:
        raise ModelError(f"{where} must be a mapping with a 'kind'. Got {entry!r}.")
    kind = entry["kind"]
    cls = CHECK_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ModelError(
            f"{where} has unknown kind {kind!r}; expected one of {sorted(CHECK_KINDS)}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, entry)) - set(fields) - {"kind"})
    if unknown:
        raise ModelError(
            f"{where} ({kind}) has unknown field(s) {unknown}; expected {sorted(fields)}."
        )
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in entry
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ModelError(f"{where} ({kind}) is missing the field(s) {missing}.")
    kwargs = {str(k): v for k, v in entry.items() if k != "kind"}
    try:
        return cls(**kwargs)
    except InvalidParameter as exc:
        raise ModelError(f"{where} ({kind}) is invalid: {exc}") from exc
