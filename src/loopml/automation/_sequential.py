"""Always-valid sequential comparison of a canary (candidate) against the champion.

The scheduler looks at a canary again and again (every minute, every 50 requests); a
fixed-horizon test repeated at every look would declare a difference that is not
there in a third of A/A canaries or more (``bench/canary_analysis.py`` measures it).
:func:`decide` instead keeps the chance of *any* false promote or rollback, over every
look the canary will ever get, at most the policy's ``alpha``.

The rule, per metric. Let ``harm`` be how much worse the candidate is, in the metric's
own units (candidate minus champion for an error rate, a slow-request share or a loss;
champion minus candidate for accuracy), ``V`` the variance of its estimate and ``n``
the row count of the smaller arm. The mixture sequential probability ratio test of
Johari, Pekelis and Walsh ("Always valid inference", 2017/2022) mixes the normal
likelihood ratio of the true harm over a normal prior of variance ``τ²`` centred on the
tested value; the mixture is a martingale under that value, so by Ville's inequality it
exceeds ``1/alpha`` with probability at most ``alpha`` at any look, however chosen. Inverted, it
gives a confidence sequence: at every look,

    harm ± c(n) √V,   c(n) = √((1 + 1/r) (2 ln(1/alpha) + ln(1 + r))),   r = τ² / V,

covers the true harm at all looks at once with probability ``1 - alpha``. Then:

* ``rollback`` when the lower end is above 0 (the candidate is worse, proven);
* ``promote`` when the upper end is below the metric's margin (the candidate is not
  worse by more than the declared non-inferiority margin, proven);
* ``continue`` below ``min_samples_per_arm`` rows on either arm ("not enough data yet")
  and while the interval still straddles both thresholds.

Across metrics (error rate, latency, quality): ``alpha`` is split evenly between them
(Bonferroni), any metric's rollback rolls the canary back, a promotion needs every
metric to prove itself at the same look, and when ``max_samples_per_arm`` or
``max_duration_s`` is reached without that the verdict is ``inconclusive``, never a
silent promote or rollback. A candidate worse by less than the margin may be either
promoted or rolled back, whichever is proven first: both statements are true.

Mixing variance. ``τ²`` sets the sample size at which the interval is narrowest:
``r = τ²/V`` grows with the sample, and ``c`` is smallest at ``r* = 2 ln(1/alpha) + ln(1 +
r*)`` (8.21 for alpha = 0.05, where ``c = 3.03`` against 1.96 for one fixed-horizon look).
We set ``τ²`` so that ``r = r* n / mixing_samples``: in standard-error units the prior
is fixed, so the rule is free of the metric's scale, and it is tuned for a canary that
ends near ``mixing_samples`` rows per arm (default 2,000: an error rate going from 1 %
to 2 % needs about that many requests per arm; ``bench/canary_analysis.py`` measures a
median of 2,950 with it, and the same simulation tuned for 10,000 needed about 3,300).
Before that the bound is wider (c = 3.25 at a quarter of it), after it barely grows
(3.25 at ten times it).

Variance. Each arm's variance is its plug-in estimate (for a share, with one event and
one non-event added, so that 0 errors is not certainty), but at least the variance of
both arms pooled: a small canary arm that happened to see few events would otherwise
look precise and be promoted on luck (without the floor, A/A canaries with 5 % of the
traffic and a 1 % error rate were falsely decided 6 % of the time at alpha = 5 %; with it,
0.5 %, over 3,000 simulated canaries of 200 looks). Like Johari et al.'s plug-in
variance, the guarantee is asymptotic (the estimate must be near normal);
``min_samples_per_arm`` keeps the first looks honest, and the A/A tests in
``tests/automation/test_sequential.py`` check the level at 1 % error rates, unequal
splits and hundreds of looks.

Latency is compared as the share of requests slower than a threshold fixed when the
canary starts (see :func:`~loopml.automation._canary_state.latency_exceedance`), not as
a mean: latency is heavy-tailed, so a mean is ruled by a few outliers and its variance
estimate is unstable, which breaks the normal approximation the guarantee rests on; a
share is a bounded binomial count, and it speaks about the tail users notice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.automation._canary_state import CanaryState, MetricState, Moments, Proportion
from loopml.errors import InvalidParameter

__all__ = [
    "CanaryPolicy",
    "Decision",
    "MetricVerdict",
    "Verdict",
    "boundary",
    "decide",
    "mean_moments",
    "mixing_ratio",
    "proportion_moments",
]

F64 = npt.NDArray[np.float64]
Numbers = float | int | npt.NDArray[Any]


class Decision(StrEnum):
    """What the analysis concludes at one look."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    CONTINUE = "continue"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class CanaryPolicy:
    """How sure, how tolerant and how long a canary analysis is.

    Args:
        alpha: the chance, over every look, of a false promote or rollback (split
            evenly between the compared metrics). In (0, 0.5].
        margins: per metric name, the non-inferiority margin in the metric's units
            (0.002 on an error rate: the candidate may have up to 0.2 points more
            errors). A metric without one gets 0: the candidate must prove itself
            better, so an equally good candidate ends ``inconclusive``.
        min_samples_per_arm: rows each arm of a metric needs before it counts.
        max_samples_per_arm: the smaller arm's rows (of the metric with most rows,
            usually the error rate: every request) at which the canary ends.
        max_duration_s: seconds after the start at which the canary ends.
        mixing_samples: rows per arm the test is tuned for (see the module docstring).

    Raises:
        InvalidParameter: naming the parameter, for a value out of its range.
    """

    alpha: float = 0.05
    margins: Mapping[str, float] = field(default_factory=dict)
    min_samples_per_arm: int = 500
    max_samples_per_arm: int = 100_000
    max_duration_s: float = 86_400.0
    mixing_samples: int = 2_000

    def __post_init__(self) -> None:
        alpha = self.alpha
        if not isinstance(alpha, int | float) or not 0 < alpha <= 0.5:
            _bad("alpha", "a number in (0, 0.5]", alpha)
        if not isinstance(self.margins, Mapping):
            _bad("margins", "a mapping of metric name to margin", self.margins)
        for name, margin in self.margins.items():
            if not isinstance(margin, int | float) or not 0 <= margin < math.inf:
                _bad("margins", f"a finite margin >= 0 for {name!r}", margin)
        for name in ("min_samples_per_arm", "max_samples_per_arm", "mixing_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _bad(name, "an int >= 1", value)
        if self.max_samples_per_arm < self.min_samples_per_arm:
            _bad("max_samples_per_arm", f">= min_samples_per_arm ({self.min_samples_per_arm})",
                 self.max_samples_per_arm)  # fmt: skip
        duration = self.max_duration_s
        if not isinstance(duration, int | float) or not 0 < duration < math.inf:
            _bad("max_duration_s", "a finite number of seconds > 0", duration)


def _bad(parameter: str, expected: str, got: object) -> None:
    raise InvalidParameter(
        f"The {parameter!r} parameter of CanaryPolicy must be {expected}. Got {got!r} instead."
    )


@dataclass(frozen=True)
class MetricVerdict:
    """One metric at one look.

    ``harm`` is how much worse the candidate is in the metric's units (positive:
    worse); ``lower``/``upper`` its always-valid confidence interval at level
    ``1 - alpha``; ``z`` is ``harm / √V`` and the interval is ``harm ± boundary √V``.
    ``p_worse`` is the always-valid p-value of "the candidate is not worse" and
    ``p_not_inferior`` that of "the candidate is worse by the margin or more" (1 when
    the estimate points the other way). Statistics are None until each arm has 2 rows.
    """

    metric: str
    decision: Decision
    reason: str
    champion_n: int
    candidate_n: int
    alpha: float
    margin: float
    champion_value: float | None = None
    candidate_value: float | None = None
    harm: float | None = None
    lower: float | None = None
    upper: float | None = None
    z: float | None = None
    boundary: float | None = None
    p_worse: float | None = None
    p_not_inferior: float | None = None


@dataclass(frozen=True)
class Verdict:
    """The canary's decision at one look, with every metric's evidence and the reason."""

    decision: Decision
    reason: str
    elapsed_s: float
    metrics: tuple[MetricVerdict, ...]

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON types."""
        return asdict(self)


def mixing_ratio(alpha: float) -> float:
    """``r*``, the ratio τ²/V at which the interval is narrowest: ``r = 2 ln(1/alpha) + ln(1+r)``.

    Solved by fixed-point iteration, a contraction since ``d/dr ln(1+r) < 1``.
    """
    base = 2.0 * math.log(1.0 / alpha)
    ratio = base
    for _ in range(500):
        previous, ratio = ratio, base + math.log1p(ratio)
        if abs(ratio - previous) < 1e-12:
            break
    return ratio


def boundary(smaller_arm: Numbers, *, alpha: float, mixing_samples: int) -> F64:
    """``c(n)``: the interval is ``harm ± c √V`` after ``n`` rows on the smaller arm."""
    ratio = mixing_ratio(alpha) * np.asarray(smaller_arm, dtype=np.float64) / mixing_samples
    with np.errstate(divide="ignore"):
        return np.sqrt((1.0 + 1.0 / ratio) * (2.0 * math.log(1.0 / alpha) + np.log1p(ratio)))


def proportion_moments(
    champion_n: Numbers, champion_events: Numbers, candidate_n: Numbers, candidate_events: Numbers
) -> tuple[F64, F64, F64]:
    """Each arm's share of events and the variance of their difference (arrays welcome).

    Each arm's variance is ``p(1-p)`` at ``p = (events + 1) / (n + 2)``, floored at the
    pooled share's; see the module docstring for why.
    """
    n_a, x_a = np.asarray(champion_n, np.float64), np.asarray(champion_events, np.float64)
    n_b, x_b = np.asarray(candidate_n, np.float64), np.asarray(candidate_events, np.float64)
    smoothed_a, smoothed_b = (x_a + 1) / (n_a + 2), (x_b + 1) / (n_b + 2)
    pooled = (x_a + x_b + 1) / (n_a + n_b + 2)
    floor = pooled * (1 - pooled)
    var_a = np.maximum(smoothed_a * (1 - smoothed_a), floor)
    var_b = np.maximum(smoothed_b * (1 - smoothed_b), floor)
    return x_a / n_a, x_b / n_b, var_a / n_a + var_b / n_b


def mean_moments(
    champion: tuple[Numbers, Numbers, Numbers], candidate: tuple[Numbers, Numbers, Numbers]
) -> tuple[F64, F64, F64]:
    """Each arm's mean and the variance of their difference, from ``(n, mean, m2)`` per arm.

    Arrays welcome; both arms need 2 rows. Each arm's variance is its sample variance,
    floored at that of both arms pooled (Chan et al.'s merge of the two summaries).
    """
    n_a, mean_a, m2_a = (np.asarray(x, np.float64) for x in champion)
    n_b, mean_b, m2_b = (np.asarray(x, np.float64) for x in candidate)
    n = n_a + n_b
    pooled_m2 = m2_a + m2_b + (mean_b - mean_a) ** 2 * n_a * n_b / n
    floor = pooled_m2 / (n - 1)
    var_a = np.maximum(m2_a / (n_a - 1), floor)
    var_b = np.maximum(m2_b / (n_b - 1), floor)
    return mean_a, mean_b, var_a / n_a + var_b / n_b


def _p_value(distance: float, variance: float, ratio: float) -> float:
    """``min(1, 1/Λ)`` for the mixture ratio Λ at ``distance`` from the tested value."""
    if distance <= 0:
        return 1.0
    if variance == 0:
        return 0.0
    log_lr = -0.5 * math.log1p(ratio) + ratio / (1 + ratio) * distance * distance / (2 * variance)
    return min(1.0, math.exp(-log_lr))


def _judge(metric: MetricState, policy: CanaryPolicy, alpha: float) -> MetricVerdict:
    margin = float(policy.margins.get(metric.name, 0.0))
    n_a, n_b = metric.champion.n, metric.candidate.n
    base = MetricVerdict(metric.name, Decision.CONTINUE, "", n_a, n_b, alpha, margin)
    if min(n_a, n_b) < 2:
        return _with_reason(base, f"not enough data yet ({n_a} / {n_b} rows)")
    if isinstance(metric.champion, Proportion) and isinstance(metric.candidate, Proportion):
        moments = proportion_moments(n_a, metric.champion.events, n_b, metric.candidate.events)
    elif isinstance(metric.champion, Moments) and isinstance(metric.candidate, Moments):
        a, b = metric.champion, metric.candidate
        moments = mean_moments((a.n, a.mean, a.m2), (b.n, b.mean, b.m2))
    else:
        raise InvalidParameter(f"The metric {metric.name!r} mixes a share and a mean.")
    value_a, value_b, variance = (float(x) for x in moments)
    harm = value_a - value_b if metric.higher_is_better else value_b - value_a
    smaller = min(n_a, n_b)
    bound = float(boundary(smaller, alpha=alpha, mixing_samples=policy.mixing_samples))
    ratio = mixing_ratio(alpha) * smaller / policy.mixing_samples
    radius = bound * math.sqrt(variance)
    lower, upper = harm - radius, harm + radius
    decision = Decision.CONTINUE
    if smaller < policy.min_samples_per_arm:
        text = f"not enough data yet ({smaller} of {policy.min_samples_per_arm} rows per arm)"
    elif lower > 0:
        decision, text = Decision.ROLLBACK, "candidate worse"
    elif upper < margin:
        decision = Decision.PROMOTE
        text = "candidate better" if upper < 0 else f"candidate not worse by {margin:g} or more"
    else:
        text = "evidence not decisive"
    interval = f"{1 - alpha:.1%} always-valid interval [{lower:+.4g}, {upper:+.4g}]"
    figures = f"{value_b:.4g} vs {value_a:.4g}, harm {harm:+.4g}, {interval}, {n_b}/{n_a} rows"
    return MetricVerdict(
        metric.name,
        decision,
        f"{metric.name}: {text} ({figures})",
        n_a,
        n_b,
        alpha,
        margin,
        value_a,
        value_b,
        harm,
        lower,
        upper,
        _z(harm, variance),
        bound,
        _p_value(harm, variance, ratio),
        _p_value(margin - harm, variance, ratio),
    )


def _z(harm: float, variance: float) -> float:
    if variance > 0:
        return harm / math.sqrt(variance)
    return 0.0 if harm == 0 else math.copysign(math.inf, harm)


def _with_reason(verdict: MetricVerdict, text: str) -> MetricVerdict:
    return MetricVerdict(**{**asdict(verdict), "reason": f"{verdict.metric}: {text}"})


def decide(state: CanaryState, policy: CanaryPolicy) -> Verdict:
    """The canary's verdict at this look: a pure function of the counts and the policy.

    Call it at every look, as often as wanted; stop the canary at the first
    ``promote``, ``rollback`` or ``inconclusive``.

    Example:
        >>> from loopml.automation._canary_state import CanaryState, error_rate
        >>> state = CanaryState.start([error_rate()], at=0.0)
        >>> state = state.add_counts("error_rate", "champion", n=4000, events=40, at=60.0)
        >>> state = state.add_counts("error_rate", "candidate", n=4000, events=120, at=60.0)
        >>> decide(state, CanaryPolicy()).decision
        <Decision.ROLLBACK: 'rollback'>
    """
    alpha = policy.alpha / len(state.metrics)
    verdicts = tuple(_judge(metric, policy, alpha) for metric in state.metrics)
    elapsed = state.updated_at - state.started_at

    def reasons(decision: Decision | None = None) -> str:
        chosen = [v for v in verdicts if decision is None or v.decision is decision]
        return "; ".join(v.reason for v in chosen)

    if any(v.decision is Decision.ROLLBACK for v in verdicts):
        return Verdict(Decision.ROLLBACK, reasons(Decision.ROLLBACK), elapsed, verdicts)
    if all(v.decision is Decision.PROMOTE for v in verdicts):
        return Verdict(Decision.PROMOTE, reasons(), elapsed, verdicts)
    traffic = max(min(v.champion_n, v.candidate_n) for v in verdicts)
    if traffic >= policy.max_samples_per_arm or elapsed >= policy.max_duration_s:
        limit = (
            f"{traffic} rows per arm reached the maximum of {policy.max_samples_per_arm}"
            if traffic >= policy.max_samples_per_arm
            else f"{elapsed:.0f} s reached the maximum of {policy.max_duration_s:.0f} s"
        )
        pending = "; ".join(v.reason for v in verdicts if v.decision is not Decision.PROMOTE)
        return Verdict(
            Decision.INCONCLUSIVE, f"{limit} without proof: {pending}", elapsed, verdicts
        )
    return Verdict(Decision.CONTINUE, reasons(Decision.CONTINUE), elapsed, verdicts)
