"""The kinds of promotion-policy checks, each saved under a stable alias."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from loopml.errors import InvalidParameter
from loopml.registry._evaluation import (
    AnyArray,
    EvaluationData,
    PolicyCheck,
    fail,
    fmt,
    is_number,
    num,
)
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
    "DataQuality",
    "Fairness",
    "Latency",
    "MetricThreshold",
    "parse_threshold",
]


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
        raise fail("threshold", "of the form '<metric> <op> <number>', e.g. 'auc >= 0.85'", text)
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
            raise fail("metric", "a non-empty string", self.metric)
        if self.op not in _OPERATORS:
            raise fail("op", f"one of {sorted(_OPERATORS)}", self.op)
        if not is_number(self.value) or not math.isfinite(self.value):
            raise fail("value", "a finite number", self.value)

    def default_name(self) -> str:
        return f"{self.metric} {self.op} {num(self.value)}"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        measured = _candidate_metric(self.metric, data)
        details: dict[str, Any] = {"metric": self.metric, "op": self.op, "threshold": self.value}
        if measured is None:
            return False, f"{self.metric} was not measured for this version", details
        details["value"] = measured
        if math.isnan(measured):
            return False, f"{self.metric} is undefined (NaN) on the evaluation data", details
        if _OPERATORS[self.op](measured, self.value):
            return True, f"{self.metric} = {fmt(measured)} {self.op} {self.value:g}", details
        return False, f"{self.metric} = {fmt(measured)}, needs {self.op} {self.value:g}", details


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

    Passes when there is no champion yet, and when the candidate already is the
    champion (comparing a version with itself proves nothing, and promoting it moves
    nothing); the reason says which. Fails when the evaluation compared with no
    champion at all (``champion=None``): whether the candidate would beat one is
    unknown.
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
        if not is_number(self.margin) or not 0.0 <= self.margin < math.inf:
            raise fail("margin", "a finite number >= 0", self.margin)
        if not is_number(self.confidence) or not 0.0 < self.confidence < 1.0:
            raise fail("confidence", "a number strictly between 0 and 1", self.confidence)
        if self.method not in ("bootstrap", "mcnemar"):
            raise fail("method", "'bootstrap' or 'mcnemar'", self.method)
        if self.method == "mcnemar" and self.metric != "accuracy":
            raise InvalidParameter(
                "The McNemar test compares error rates, so method='mcnemar' only works with "
                f"metric='accuracy'. Got metric={self.metric!r}; use method='bootstrap'."
            )
        if not isinstance(self.n_resamples, int) or isinstance(self.n_resamples, bool):
            raise fail("n_resamples", "an int >= 100", self.n_resamples)
        if self.n_resamples < 100:
            raise fail("n_resamples", "an int >= 100", self.n_resamples)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise fail("seed", "an int >= 0", self.seed)

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
        alias = data.champion_alias
        if alias is None:
            return (
                False,
                "the evaluation compared the candidate with no champion (champion=None), "
                "so whether it beats one is unknown; evaluate it against an alias",
                details,
            )
        if data.candidate_is_champion:
            details["candidate_is_champion"] = True
            return (
                True,
                f"the candidate already is @{alias}; comparing it with itself is meaningless, "
                "so there is nothing to beat",
                details,
            )
        if not data.has_champion:
            return True, f"there is no @{alias} yet, so there is nothing to beat", details
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
            f"{self.metric}{direction} {verb} the champion by {fmt(abs(gain.difference))} "
            f"(improvement {self.confidence:.0%} CI {fmt(gain.low)} to {fmt(gain.high)})"
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
            raise fail("sensitive", "a non-empty column name", self.sensitive)
        if self.metric not in _FAIRNESS_METRICS:
            raise fail("metric", f"one of {list(_FAIRNESS_METRICS)}", self.metric)
        if not is_number(self.max) or not 0.0 <= self.max <= 1.0:
            raise fail("max", "a number between 0 and 1", self.max)
        if not isinstance(self.positive, int | str):
            raise fail("positive", "an int, str or bool label", self.positive)

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
        summary = f"demographic parity difference on {self.sensitive!r} is {fmt(value)} ({shown})"
        if value <= self.max:
            return True, f"{summary}, within {self.max:g}", details
        return False, f"{summary}, above the bound {self.max:g}", details


@dataclass(frozen=True)
class Latency(PolicyCheck):
    """The measured p95 single-row predict time must be within ``p95_ms`` milliseconds."""

    kind: ClassVar[str] = "latency"
    p95_ms: float

    def _validate(self) -> None:
        if not is_number(self.p95_ms) or not 0.0 < self.p95_ms < math.inf:
            raise fail("p95_ms", "a positive number of milliseconds", self.p95_ms)

    def default_name(self) -> str:
        return f"p95 latency <= {self.p95_ms:g} ms"

    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        measured = data.latency_p95_ms
        details: dict[str, Any] = {"budget_ms": self.p95_ms, "p95_ms": measured}
        if measured is None:
            return False, "the p95 predict latency was not measured", details
        summary = f"p95 single-row predict time is {fmt(measured)} ms"
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
            raise fail("count", "an int >= 1", self.count)
        if self.role is not None and (not isinstance(self.role, str) or not self.role):
            raise fail("role", "a non-empty string or None", self.role)
        if not isinstance(self.separation_of_duties, bool):
            raise fail("separation_of_duties", "a bool", self.separation_of_duties)

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
        passed = len(approvers) >= self.count
        if notes and not passed:
            notes.append(
                "another identity must approve, or the policy's owner sets "
                "separation_of_duties: false"
            )
        reason = "; ".join([summary, *notes])
        return passed, reason, details


#: Every check kind by its stable alias.
CHECK_KINDS: Mapping[str, type[PolicyCheck]] = {
    cls.kind: cls
    for cls in (MetricThreshold, BeatsChampion, DataQuality, Fairness, Latency, Approvals)
}
