"""How two routes' metrics differ: a bootstrap interval of the difference, and a test.

Routes that scored the *same* rows (a shadow and the route whose requests it
copied) are compared **paired**: the registry's paired bootstrap, McNemar's exact
test for accuracy, a paired t-test on the per-row losses for MAE and RMSE. Routes
that answered *different* requests (primaries and canaries) are compared
**unpaired**: each side is resampled on its own, with a two-proportion z-test for
accuracy and Welch's t-test on the per-row losses for MAE and RMSE. Other metrics
(F1, precision, recall, R²) have no test here: their interval alone decides.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1] * 50)
    >>> low, high = difference_interval("accuracy", (y, y), (y, 1 - y), paired=False,
    ...                                 n_resamples=200, confidence=0.95, seed=0)
    >>> (low, high)
    (1.0, 1.0)
    >>> method("accuracy", paired=True), two_sided_p("accuracy", True, (y, y), (y, 1 - y))
    ('McNemar exact test', 1.5777218104420236e-30)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.errors import InvalidParameter
from loopml.registry._stats import (
    Metric,
    get_metric,
    mcnemar,
    paired_bootstrap,
    unpaired_bootstrap,
)

__all__ = ["Sample", "difference_interval", "method", "two_sided_p"]

AnyArray = npt.NDArray[Any]
FloatArray = npt.NDArray[np.float64]
Sample = tuple[AnyArray, AnyArray]
"""``(labels, predictions)`` of one route, one entry per row."""

# The method of metrics without a test: significance rests on the interval alone.
_INTERVAL_ONLY = "bootstrap interval"

# (unpaired, paired) test per metric.
_TESTS: dict[str, tuple[str, str]] = {
    "accuracy": ("two-proportion z-test", "McNemar exact test"),
    "mae": ("Welch t-test on absolute errors", "paired t-test on absolute errors"),
    "rmse": ("Welch t-test on squared errors", "paired t-test on squared errors"),
}


def method(metric: str, paired: bool) -> str:
    """The name of the test used for ``metric``, e.g. ``McNemar exact test``."""
    return _TESTS.get(metric, (_INTERVAL_ONLY, _INTERVAL_ONLY))[paired]


def difference_interval(
    metric: Metric | str,
    a: Sample,
    b: Sample,
    *,
    paired: bool,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(a) - metric(b)``.

    Args:
        metric: a registry metric, or its name.
        a: labels and predictions of one route.
        b: those of the other; when ``paired``, the same rows with the same labels.
        paired: resample the rows of both together (else each side on its own).
        n_resamples: how many resamples.
        confidence: the interval's level, strictly between 0 and 1.
        seed: seed of the resampling.

    Returns:
        ``(low, high)``; both ``nan`` when the metric is undefined on every resample.
    """
    scorer = get_metric(metric) if isinstance(metric, str) else metric
    if paired:
        try:
            interval = paired_bootstrap(
                scorer,
                a[0],
                a[1],
                b[1],
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
        except InvalidParameter:  # undefined on every resample
            return math.nan, math.nan
        return interval.low, interval.high
    try:
        return unpaired_bootstrap(
            scorer, a, b, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    except InvalidParameter:  # undefined on every resample
        return math.nan, math.nan


def two_sided_p(metric: str, paired: bool, a: Sample, b: Sample) -> float | None:
    """Two-sided p-value of :func:`method`'s test; ``None`` for a metric without one.

    Each side needs at least two rows.
    """
    if metric not in _TESTS:
        return None
    if metric == "accuracy":
        right_a, right_b = a[1] == a[0], b[1] == b[0]
        if paired:
            return mcnemar(right_a, right_b).p_value
        return _two_proportions(right_a, right_b)
    loss_a, loss_b = (_losses(metric, *sample) for sample in (a, b))
    return _paired_t(loss_a, loss_b) if paired else _welch_t(loss_a, loss_b)


def _losses(metric: str, y: AnyArray, predicted: AnyArray) -> FloatArray:
    error: FloatArray = predicted.astype(np.float64) - y.astype(np.float64)
    return np.abs(error) if metric == "mae" else error * error


def _two_proportions(a: AnyArray, b: AnyArray) -> float:
    from scipy.stats import norm

    n_a, n_b = len(a), len(b)
    pooled = (np.count_nonzero(a) + np.count_nonzero(b)) / (n_a + n_b)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se == 0.0:  # both sides all right (or all wrong): the same proportion
        return 1.0
    z = (np.count_nonzero(a) / n_a - np.count_nonzero(b) / n_b) / se
    return min(1.0, float(2.0 * norm.sf(abs(z))))


def _paired_t(a: FloatArray, b: FloatArray) -> float:
    from scipy.stats import t

    d = a - b
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:  # every row differs by the same amount
        return 1.0 if mean == 0.0 else 0.0
    statistic = mean / (sd / math.sqrt(len(d)))
    return min(1.0, float(2.0 * t.sf(abs(statistic), len(d) - 1)))


def _welch_t(a: FloatArray, b: FloatArray) -> float:
    from scipy.stats import t

    var_a, var_b = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    difference = float(a.mean() - b.mean())
    if var_a + var_b == 0.0:  # both sides constant
        return 1.0 if difference == 0.0 else 0.0
    dof = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    statistic = difference / math.sqrt(var_a + var_b)
    return min(1.0, float(2.0 * t.sf(abs(statistic), dof)))
