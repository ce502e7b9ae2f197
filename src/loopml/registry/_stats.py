"""Statistics behind promotion policies: paired bootstrap, McNemar, demographic parity.

Named metrics live in :data:`METRICS` under stable names (``accuracy``, ``auc``,
``f1``, ``precision``, ``recall``, ``log_loss``, ``r2``, ``rmse``, ``mae``); each
knows whether it needs probabilities and whether higher is better. Every named
metric is computed from per-row *weights*: a bootstrap resample is the same rows
with multiplicities, so all resamples of a chunk are scored at once with a few
matrix products instead of one Python call per resample.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    >>> better, worse = y.copy(), np.array([1, 1, 0, 0, 1, 1, 1, 0])
    >>> interval = paired_bootstrap("accuracy", y, better, worse, n_resamples=200)
    >>> interval.difference
    0.5
    >>> interval.low > 0
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.errors import InvalidParameter

__all__ = [
    "METRICS",
    "Interval",
    "McNemarResult",
    "Metric",
    "bootstrap_interval",
    "demographic_parity_difference",
    "get_metric",
    "mcnemar",
    "paired_bootstrap",
    "unpaired_bootstrap",
]

FloatArray = npt.NDArray[np.float64]
AnyArray = npt.NDArray[Any]
#: Scores every row of a ``(k, n)`` weight matrix: returns the metric for each of the k rows.
WeightedMetric = Callable[[FloatArray], FloatArray]

# Upper bound on the elements of one resample chunk (index and weight matrices are
# k x n); 2**21 keeps each matrix near 16 MB whatever the row count.
_CHUNK_ELEMENTS = 2**21
# Probabilities are clipped away from 0 and 1 so log loss stays finite.
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Interval:
    """A percentile confidence interval of ``metric(candidate) - metric(champion)``.

    Attributes:
        difference: The difference on the full data (the point estimate).
        low: Lower percentile bound over the resamples.
        high: Upper percentile bound over the resamples.
        n_resamples: How many resamples were drawn.
        confidence: The interval's confidence level, e.g. ``0.95``.
    """

    difference: float
    low: float
    high: float
    n_resamples: int
    confidence: float

    def improvement(self, higher_is_better: bool) -> Interval:
        """Return the interval of the candidate's *improvement* over the champion.

        For a higher-is-better metric that is the difference itself; for a
        lower-is-better one (``rmse``, ``log_loss``, ``mae``) it is the negated
        difference with the bounds swapped, so a positive improvement always means
        the candidate is better.

        Args:
            higher_is_better: Whether larger metric values are better.

        Returns:
            An interval whose positive values favour the candidate.

        Example:
            >>> Interval(-0.2, -0.3, -0.1, 100, 0.95).improvement(False).low
            0.1
        """
        if higher_is_better:
            return self
        return Interval(-self.difference, -self.high, -self.low, self.n_resamples, self.confidence)


@dataclass(frozen=True)
class McNemarResult:
    """The exact McNemar test on paired correctness.

    Attributes:
        b: Rows the candidate got right and the champion got wrong.
        c: Rows the candidate got wrong and the champion got right.
        p_value: Two-sided exact binomial p-value of ``b`` among ``b + c`` at 0.5.
    """

    b: int
    c: int
    p_value: float


@dataclass(frozen=True)
class Metric:
    """A named metric that can score many bootstrap resamples at once.

    Calling it scores one prediction: ``METRICS["auc"](y_true, scores)``.

    Attributes:
        name: The stable name stored in policies.
        needs_proba: Whether it takes scores/probabilities rather than labels.
        higher_is_better: Whether larger values are better (``False`` for losses).
        prepare: Given ``(y_true, prediction)`` returns a function scoring a
            ``(k, n)`` matrix of row weights (multiplicities) into ``k`` values;
            ``nan`` marks a resample on which the metric is undefined.
    """

    name: str
    needs_proba: bool
    higher_is_better: bool
    prepare: Callable[[AnyArray, AnyArray], WeightedMetric]

    def __call__(self, y_true: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
        """Return the metric of ``prediction`` against ``y_true`` on all rows once."""
        y, p = _paired(y_true, prediction, "prediction")
        return float(self.prepare(y, p)(np.ones((1, len(y))))[0])


# --- the named metrics -----------------------------------------------------------


def _labels(p: AnyArray, metric: str) -> AnyArray:
    if p.ndim != 1:
        raise InvalidParameter(
            f"The '{metric}' metric takes one predicted label per row. "
            f"Got an array of shape {p.shape} instead."
        )
    return p


def _mean_of(values: FloatArray) -> WeightedMetric:
    def score(w: FloatArray) -> FloatArray:
        out: FloatArray = (w @ values) / w.sum(axis=1)
        return out

    return score


def _accuracy(y: AnyArray, p: AnyArray) -> WeightedMetric:
    return _mean_of((_labels(p, "accuracy") == y).astype(np.float64))


def _errors(y: AnyArray, p: AnyArray, metric: str) -> FloatArray:
    err: FloatArray = _labels(p, metric).astype(np.float64) - y.astype(np.float64)
    return err


def _mae(y: AnyArray, p: AnyArray) -> WeightedMetric:
    return _mean_of(np.abs(_errors(y, p, "mae")))


def _rmse(y: AnyArray, p: AnyArray) -> WeightedMetric:
    mse = _mean_of(_errors(y, p, "rmse") ** 2)
    return lambda w: np.sqrt(mse(w))


def _r2(y: AnyArray, p: AnyArray) -> WeightedMetric:
    squared = _errors(y, p, "r2") ** 2
    # Centring first keeps sum(y^2) - sum(y)^2 / n from cancelling catastrophically.
    yc = y.astype(np.float64) - float(np.mean(y))
    yc2 = yc * yc

    def score(w: FloatArray) -> FloatArray:
        total = w.sum(axis=1)
        sse = w @ squared
        sst = w @ yc2 - (w @ yc) ** 2 / total
        defined = sst > 1e-12 * np.maximum(w @ yc2, 1.0)
        out: FloatArray = np.full(len(w), np.nan)
        np.divide(sse, sst, out=out, where=defined)
        return 1.0 - out

    return score


def _positive_mask(y: AnyArray) -> npt.NDArray[np.bool_]:
    """Which rows belong to the positive class of a binary target."""
    if y.dtype == np.bool_:
        return y
    classes = np.unique(y)
    if y.dtype.kind in "iuf" and set(classes.tolist()) <= {0, 1}:
        return np.equal(y, 1)
    if len(classes) == 2:
        second: npt.NDArray[np.bool_] = y == classes[1]
        return second
    raise InvalidParameter(
        "A single score per row needs a binary target (two classes, or 0/1). "
        f"Got the classes {classes.tolist()[:10]} instead."
    )


def _column_index(y: AnyArray, n_columns: int) -> npt.NDArray[np.intp]:
    """The probability column of each row's true class.

    Integer labels ``0..K-1`` index the columns directly; other labels map to the
    columns in sorted order, so there must be one column per class.
    """
    classes = np.unique(y)
    if y.dtype.kind in "iu" and classes.min() >= 0 and classes.max() < n_columns:
        return y.astype(np.intp)
    if len(classes) == n_columns:
        return np.searchsorted(classes, y).astype(np.intp)
    raise InvalidParameter(
        f"The probabilities have {n_columns} columns but y_true has the classes "
        f"{classes.tolist()[:10]}; expected one column per class (in sorted order)."
    )


def _scores(p: AnyArray, metric: str) -> FloatArray:
    if p.ndim not in (1, 2) or p.dtype.kind not in "iufb":
        raise InvalidParameter(
            f"The '{metric}' metric takes numeric scores: one per row, or one column "
            f"per class. Got an array of dtype {p.dtype} and shape {p.shape} instead."
        )
    scores: FloatArray = p.astype(np.float64)
    return scores


def _log_loss(y: AnyArray, p: AnyArray) -> WeightedMetric:
    proba = _scores(p, "log_loss")
    if proba.ndim == 1:
        positive = _positive_mask(y)
        chosen = np.where(positive, proba, 1.0 - proba)
    else:
        proba = proba / proba.sum(axis=1, keepdims=True)
        chosen = proba[np.arange(len(y)), _column_index(y, proba.shape[1])]
    return _mean_of(-np.log(np.clip(chosen, _EPS, 1.0 - _EPS)))


def _binary_auc(scores: FloatArray, positive: npt.NDArray[np.bool_]) -> WeightedMetric:
    """AUC from weights: each positive scores 1 per negative below it, 1/2 per tie."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    pos = positive[order].astype(np.float64)
    neg = 1.0 - pos
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    tied = len(starts) < len(ranked)

    def score(w: FloatArray) -> FloatArray:
        ws = w[:, order]
        p_w, n_w = ws * pos, ws * neg
        if tied:  # one bucket per distinct score
            p_w = np.add.reduceat(p_w, starts, axis=1)
            n_w = np.add.reduceat(n_w, starts, axis=1)
        below = np.cumsum(n_w, axis=1) - n_w
        wins = np.einsum("ij,ij->i", p_w, below + 0.5 * n_w)
        pairs = p_w.sum(axis=1) * n_w.sum(axis=1)
        out: FloatArray = np.full(len(w), np.nan)
        np.divide(wins, pairs, out=out, where=pairs > 0)
        return out

    return score


def _auc(y: AnyArray, p: AnyArray) -> WeightedMetric:
    scores = _scores(p, "auc")
    if scores.ndim == 1:
        return _binary_auc(scores, _positive_mask(y))
    columns = _column_index(y, scores.shape[1])
    if scores.shape[1] == 2:
        return _binary_auc(scores[:, 1], columns == 1)
    # One-vs-rest, macro average over the classes present in y_true (as scikit-learn).
    parts = [_binary_auc(scores[:, c], columns == c) for c in np.unique(columns)]

    def score(w: FloatArray) -> FloatArray:
        values = np.stack([part(w) for part in parts])
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        out: FloatArray = np.full(len(w), np.nan)
        np.divide(np.where(finite, values, 0.0).sum(axis=0), count, out=out, where=count > 0)
        return out

    return score


def _per_class(y: AnyArray, p: AnyArray, metric: str) -> Callable[[FloatArray], FloatArray]:
    """Support-weighted precision, recall or F1 over the classes (scikit-learn's 'weighted')."""
    p = _labels(p, metric)
    classes = np.unique(np.concatenate([y, p]))
    yi, pi = np.searchsorted(classes, y), np.searchsorted(classes, p)
    onehot_true = np.eye(len(classes))[yi]
    onehot_pred = np.eye(len(classes))[pi]
    hit = onehot_true * (yi == pi)[:, None]

    def score(w: FloatArray) -> FloatArray:
        tp, support, predicted = w @ hit, w @ onehot_true, w @ onehot_pred
        denominator = {"precision": predicted, "recall": support, "f1": support + predicted}
        numerator = 2 * tp if metric == "f1" else tp
        per_class = np.zeros_like(tp)
        np.divide(numerator, denominator[metric], out=per_class, where=denominator[metric] > 0)
        out: FloatArray = (per_class * support).sum(axis=1) / support.sum(axis=1)
        return out

    return score


def _precision(y: AnyArray, p: AnyArray) -> WeightedMetric:
    return _per_class(y, p, "precision")


def _recall(y: AnyArray, p: AnyArray) -> WeightedMetric:
    return _per_class(y, p, "recall")


def _f1(y: AnyArray, p: AnyArray) -> WeightedMetric:
    return _per_class(y, p, "f1")


#: The named metrics by stable name. ``precision``, ``recall`` and ``f1`` are
#: support-weighted over the classes (scikit-learn's ``average="weighted"``), so they
#: work the same for binary and multiclass targets and any label type.
METRICS: Mapping[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", needs_proba=False, higher_is_better=True, prepare=_accuracy),
        Metric("auc", needs_proba=True, higher_is_better=True, prepare=_auc),
        Metric("f1", needs_proba=False, higher_is_better=True, prepare=_f1),
        Metric("precision", needs_proba=False, higher_is_better=True, prepare=_precision),
        Metric("recall", needs_proba=False, higher_is_better=True, prepare=_recall),
        Metric("log_loss", needs_proba=True, higher_is_better=False, prepare=_log_loss),
        Metric("r2", needs_proba=False, higher_is_better=True, prepare=_r2),
        Metric("rmse", needs_proba=False, higher_is_better=False, prepare=_rmse),
        Metric("mae", needs_proba=False, higher_is_better=False, prepare=_mae),
    )
}


def get_metric(name: str) -> Metric:
    """Return the named metric.

    Raises:
        InvalidParameter: When ``name`` is not one of :data:`METRICS`.
    """
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise InvalidParameter(
            f"The 'metric' parameter must be one of {sorted(METRICS)}. Got {name!r} instead."
        ) from None


# --- tests ---------------------------------------------------------------------------


def _paired(y_true: npt.ArrayLike, other: npt.ArrayLike, what: str) -> tuple[AnyArray, AnyArray]:
    y, p = np.asarray(y_true), np.asarray(other)
    if y.ndim != 1 or len(y) == 0:
        raise InvalidParameter(
            f"'y_true' must be a non-empty one-dimensional array. Got shape {y.shape} instead."
        )
    if p.ndim == 0 or len(p) != len(y):
        raise InvalidParameter(
            f"'{what}' must have one entry per row of y_true ({len(y)}). "
            f"Got shape {p.shape} instead."
        )
    return y, p


def _weights(indices: npt.NDArray[np.int64], n: int) -> FloatArray:
    """Turn a ``(k, n)`` matrix of drawn row indices into per-row multiplicities."""
    k = len(indices)
    flat = (indices + (np.arange(k, dtype=np.int64) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)


def paired_bootstrap(
    metric: Callable[[Any, Any], float] | str,
    y_true: npt.ArrayLike,
    candidate: npt.ArrayLike,
    champion: npt.ArrayLike,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Confidence interval of ``metric(candidate) - metric(champion)`` on the same rows.

    Each resample draws the row indices with replacement once and scores both
    models on those same rows (a *paired* bootstrap), so the noise both share
    cancels out. The interval is the percentile interval of the differences.

    Named metrics (a :class:`Metric`, or its name) score a whole chunk of resamples
    at once; any other ``callable(y_true, prediction) -> float`` is called once per
    resample and model. Resamples on which the metric is undefined (e.g. AUC on a
    draw with a single class) are left out of the percentiles.

    Args:
        metric: A :class:`Metric`, a name from :data:`METRICS`, or a callable.
        y_true: The true targets, one per row.
        candidate: The candidate's predictions (labels, scores or probabilities).
        champion: The champion's predictions on the same rows, of the same kind.
        n_resamples: How many bootstrap resamples to draw.
        confidence: Confidence level of the interval, strictly between 0 and 1.
        seed: Seed of the random generator, so the interval is reproducible.

    Returns:
        The point difference on all rows and its percentile interval.

    Raises:
        InvalidParameter: For bad arguments, mismatched lengths, or a metric that is
            undefined on every resample.

    Example:
        >>> y = [1.0, 2.0, 3.0, 4.0]
        >>> paired_bootstrap("rmse", y, [1.0, 2.0, 3.0, 4.5], [1.5, 2.5, 3.5, 4.5]).difference
        -0.25
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise InvalidParameter(
            f"The 'n_resamples' parameter must be a positive int. Got {n_resamples!r} instead."
        )
    if not 0.0 < confidence < 1.0:
        raise InvalidParameter(
            f"The 'confidence' parameter must be strictly between 0 and 1. Got {confidence!r}."
        )
    scorer = get_metric(metric) if isinstance(metric, str) else metric
    y, cand = _paired(y_true, candidate, "candidate")
    _, champ = _paired(y, champion, "champion")
    n = len(y)
    rng = np.random.default_rng(seed)
    chunks: list[FloatArray] = []
    if isinstance(scorer, Metric):
        score_cand, score_champ = scorer.prepare(y, cand), scorer.prepare(y, champ)
        everything = np.ones((1, n))
        point = float(score_cand(everything)[0] - score_champ(everything)[0])
        for k in _chunk_sizes(n_resamples, n):
            w = _resample(rng, n, k)
            chunks.append(score_cand(w) - score_champ(w))
    else:
        point = float(scorer(y, cand)) - float(scorer(y, champ))
        for k in _chunk_sizes(n_resamples, n):
            rows = rng.integers(0, n, size=(k, n))
            chunks.append(
                np.array(
                    [float(scorer(y[r], cand[r])) - float(scorer(y[r], champ[r])) for r in rows]
                )
            )
    low, high = _percentiles(chunks, confidence, "The metric")
    return Interval(point, low, high, n_resamples, float(confidence))


def bootstrap_interval(
    metric: str,
    y_true: npt.ArrayLike,
    predictions: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of one model's named metric on its evaluation rows.

    Raises:
        InvalidParameter: an unknown metric, or one undefined on every resample.
    """
    scorer = get_metric(metric)
    y, pred = _paired(y_true, predictions, "predictions")
    n = len(y)
    score = scorer.prepare(y, pred)
    rng = np.random.default_rng(seed)
    chunks = [score(_resample(rng, n, k)) for k in _chunk_sizes(n_resamples, n)]
    return _percentiles(chunks, confidence, f"The metric {metric!r}")


def unpaired_bootstrap(
    metric: Metric,
    a: tuple[npt.ArrayLike, npt.ArrayLike],
    b: tuple[npt.ArrayLike, npt.ArrayLike],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``metric(a) - metric(b)`` for two *different* sets of rows.

    Each side is resampled on its own (an A/B split: the rows are not shared).

    Args:
        metric: a named :class:`Metric`.
        a: ``(y_true, prediction)`` of one side.
        b: ``(y_true, prediction)`` of the other.
        n_resamples: how many resamples.
        confidence: the interval's level, strictly between 0 and 1.
        seed: seed of the resampling.

    Raises:
        InvalidParameter: the metric is undefined on every resample.
    """
    score_a, score_b = metric.prepare(*_paired(*a, "a")), metric.prepare(*_paired(*b, "b"))
    n_a, n_b = len(np.asarray(a[0])), len(np.asarray(b[0]))
    rng = np.random.default_rng(seed)
    chunks = [
        score_a(_resample(rng, n_a, k)) - score_b(_resample(rng, n_b, k))
        for k in _chunk_sizes(n_resamples, max(n_a, n_b))
    ]
    return _percentiles(chunks, confidence, "The metric")


def _chunk_sizes(n_resamples: int, n: int) -> list[int]:
    """Resamples per chunk, so that a chunk's ``k x n`` matrices stay near 16 MB."""
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    return [min(per_chunk, n_resamples - start) for start in range(0, n_resamples, per_chunk)]


def _resample(rng: np.random.Generator, n: int, k: int) -> FloatArray:
    """``k`` bootstrap resamples of ``n`` rows, as a ``(k, n)`` matrix of multiplicities."""
    return _weights(rng.integers(0, n, size=(k, n)), n)


def _percentiles(chunks: list[FloatArray], confidence: float, what: str) -> tuple[float, float]:
    """The percentile interval of the finite values of ``chunks``."""
    values = np.concatenate(chunks)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InvalidParameter(f"{what} is undefined on every bootstrap resample.")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def mcnemar(candidate_correct: npt.ArrayLike, champion_correct: npt.ArrayLike) -> McNemarResult:
    """Exact McNemar test: do the two models' error rates differ on the same rows?

    Only the discordant rows matter: ``b`` (candidate right, champion wrong) and
    ``c`` (the reverse). Under the null hypothesis each discordant row is a fair
    coin, so the two-sided p-value is the exact binomial test of ``b`` of ``b + c``.

    Args:
        candidate_correct: Per row, whether the candidate was right.
        champion_correct: Per row, whether the champion was right.

    Returns:
        ``b``, ``c`` and the p-value (1.0 when there are no discordant rows).

    Raises:
        InvalidParameter: When the arrays differ in length or are empty.

    Example:
        >>> mcnemar([True, True, True, False], [False, False, False, False])
        McNemarResult(b=3, c=0, p_value=0.25)
    """
    cand, champ = _paired(candidate_correct, champion_correct, "champion_correct")
    cand, champ = cand.astype(bool), champ.astype(bool)
    b = int(np.count_nonzero(cand & ~champ))
    c = int(np.count_nonzero(~cand & champ))
    if b + c == 0:
        return McNemarResult(b, c, 1.0)
    from scipy.stats import binomtest

    p_value = float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(b, c, min(1.0, p_value))


def demographic_parity_difference(
    y_pred: npt.ArrayLike, groups: npt.ArrayLike, positive: object = 1
) -> tuple[float, dict[str, float]]:
    """Largest gap in positive-prediction rate between the groups of a sensitive column.

    Args:
        y_pred: Predicted labels, one per row.
        groups: The sensitive column, one group value per row.
        positive: The label counted as a positive prediction.

    Returns:
        ``(max rate - min rate, {group: rate})``; group keys are ``str(value)``.
        One group alone gives a difference of 0.

    Raises:
        InvalidParameter: When the arrays differ in length or are empty.

    Example:
        >>> demographic_parity_difference([1, 0, 1, 1], ["a", "a", "b", "b"])
        (0.5, {'a': 0.5, 'b': 1.0})
    """
    pred, group = _paired(y_pred, groups, "groups")
    hits = (pred == positive).astype(np.float64)
    values, codes = np.unique(group.astype(str), return_inverse=True)
    rates = np.bincount(codes, weights=hits) / np.bincount(codes)
    per_group = {str(v): float(r) for v, r in zip(values, rates, strict=True)}
    value = float(rates.max() - rates.min())
    return (0.0 if math.isclose(value, 0.0, abs_tol=1e-15) else value), per_group
