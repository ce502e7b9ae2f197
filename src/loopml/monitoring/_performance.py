"""Realised model performance once delayed labels arrive: the ``performance`` check.

The prediction-log frame (one row per predicted row, ``label`` filled in when feedback
arrives) is split into segments — a time window, a route, a model version, or a
combination — and each metric is computed on each segment's labelled rows, with a
seeded percentile bootstrap interval. The metrics and the bootstrap are the registry's
(:mod:`loopml.registry._stats`), so a live accuracy means exactly what the model
version's evaluation accuracy means (accuracy, precision, recall and F1 are
bootstrapped on the confusion matrix's cells, exactly and cheaply, whatever the rows;
the others on rows, with fewer resamples past 2**24 row draws): ``precision``,
``recall`` and ``f1`` are
support-weighted over the classes (scikit-learn's ``average="weighted"``), ``auc`` is
one-vs-rest macro for more than two classes.

Decision rule (:func:`loopml.monitoring._perf_frame.judge`): a metric with a bound
(``thresholds={"accuracy": (">=", 0.8)}``, or a ``baseline`` — the model version's
evaluation metrics — with a relative ``tolerance``) is ``alert`` only when the point
estimate breaks the bound *and* the whole interval lies beyond it; otherwise ``ok``,
with a "not significantly" note when only the point breaks it. A segment with fewer
than ``min_labels`` labelled rows is ``no_data`` ("only 37 of 100 labels"), never a
number passed off as a judgement.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InsufficientData, InvalidParameter
from loopml.monitoring._perf_frame import (
    Bound,
    Segment,
    Task,
    bad,
    bounds,
    class_keys,
    judge,
    labelled_mask,
    metric_names,
    numbers,
    proba_columns,
    proba_matrix,
    segments,
    to_pandas,
    window_ms,
)
from loopml.monitoring._results import CheckResult, Status
from loopml.registry._stats import METRICS, bootstrap_interval

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "class_indices",
    "percentile_interval",
    "performance",
    "segment_result",
]

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auc",
    "log_loss",
)
"""Metrics of a classifier; ``auc`` and ``log_loss`` need ``proba_<class>`` columns."""
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
"""Metrics of a regressor."""

_FUNCTION = "performance"
_PROBA = ("auc", "log_loss")
_CONFUSION = ("accuracy", "precision", "recall", "f1")
# Row resamples past 2**24 elements (1,000 resamples of 16,777 rows) are cut down to
# fit, never below 200: a 95 % percentile interval from 200 resamples is still within
# a few per cent of its width, and a window that large has a narrow interval anyway.
_ROW_BUDGET = 2**24
_MIN_RESAMPLES = 200
_HIGHER = {name: m.higher_is_better for name, m in METRICS.items()}


def performance(
    frame: object,
    *,
    task: Task | None = None,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("window",),
    window: str | None = "1d",
    min_labels: int = 100,
    confidence: float = 0.95,
    thresholds: Mapping[str, tuple[str, float]] | None = None,
    baseline: Mapping[str, float] | None = None,
    tolerance: float = 0.05,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[CheckResult]:
    """Realised performance per metric and segment, on the rows whose label has arrived.

    Args:
        frame: The prediction-log rows (pandas DataFrame or pyarrow Table) with ``ts``
            (int ms), ``prediction``, ``label`` (missing until feedback), optional
            ``route``, ``model_version`` and ``proba_<class>`` columns.
        task: ``classification`` or ``regression``; inferred when ``None``: a
            classifier when there are ``proba_`` columns or text/boolean predictions
            or labels, or when every prediction is a whole number; else a regressor.
        metrics: Names among :data:`CLASSIFICATION_METRICS` or
            :data:`REGRESSION_METRICS` (``roc_auc`` is accepted for ``auc``); default
            every metric of the task (``auc``/``log_loss`` only with ``proba_`` columns).
        by: What to split by, among ``window``, ``route``, ``model_version``; ``()``
            judges the whole frame at once.
        window: Window length when splitting by window (``30m``, ``6h``, ``1d``, ``1w``);
            windows are aligned on the epoch (UTC).
        min_labels: Labelled rows a segment needs before it is judged.
        confidence: Level of the bootstrap intervals, strictly between 0 and 1.
        thresholds: Bounds per metric, ``{"accuracy": (">=", 0.8), "rmse": ("<=", 30)}``.
        baseline: Reference values per metric (e.g. the model version's evaluation
            metrics); a metric is bounded at ``tolerance`` (relative) worse than it.
            Keys that are not computed metrics are ignored.
        tolerance: Relative tolerance around ``baseline``, in ``[0, 1)``.
        n_resamples: Bootstrap resamples per interval.
        seed: Seed of the bootstrap, so results are reproducible.

    Returns:
        One ``performance`` result per metric and segment (segments in time order,
        then route and model version); ``column`` is ``"label"``, ``method`` the
        metric and ``detail`` holds ``labelled``, ``predicted``, ``labelled_fraction``,
        ``window_start``, ``window_end``, ``estimated`` (``False``) and ``confidence``.

    Raises:
        InsufficientData: The frame has no rows.
        InvalidParameter: A bad argument, a missing column, or labels or predictions
            of the wrong type (the message names the column and an example value).

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"ts": [0] * 4, "prediction": [1, 0, 1, 1],
        ...                       "label": [1, 0, 0, None]})
        >>> [r.statistic for r in performance(frame, metrics=["accuracy"], min_labels=3)]
        [0.6666666666666666]
    """
    data = to_pandas(frame, "frame", _FUNCTION)
    if len(data) == 0:
        raise InsufficientData(f"The frame given to {_FUNCTION} has no rows.", needed=1, got=0)
    if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 2:
        raise bad("min_labels", _FUNCTION, "an int >= 2", min_labels)
    if not (isinstance(confidence, float | int) and 0.0 < confidence < 1.0):
        raise bad("confidence", _FUNCTION, "a number strictly between 0 and 1", confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise bad("n_resamples", _FUNCTION, "an int >= 1", n_resamples)
    parts = segments(data, by, window_ms(window, _FUNCTION), _FUNCTION)
    labelled = labelled_mask(data)
    if "prediction" not in data.columns:
        raise InvalidParameter(f"The frame given to {_FUNCTION} has no 'prediction' column.")
    kind = _task(task, data, labelled)
    has_proba = bool(proba_columns(data))
    names = _metrics(metrics, kind, has_proba)
    limits = bounds(thresholds, baseline, tolerance, names, _HIGHER, _FUNCTION)
    rows = np.flatnonzero(labelled)
    arrays = _arrays(data.iloc[rows], kind, names)
    position = np.full(len(data), -1, dtype=np.intp)
    position[rows] = np.arange(len(rows))
    results = []
    for part in parts:
        chosen = position[part.rows]
        chosen = chosen[chosen >= 0]
        for name in names:
            y, predicted = arrays[name]
            results.append(
                _judged(
                    name,
                    part,
                    y[chosen],
                    predicted[chosen],
                    limits.get(name),
                    min_labels,
                    float(confidence),
                    n_resamples,
                    seed,
                )
            )
    return results


def _task(task: Task | None, data: pd.DataFrame, labelled: npt.NDArray[np.bool_]) -> Task:
    if task is not None:
        if task not in ("classification", "regression"):
            raise bad("task", _FUNCTION, "'classification', 'regression' or None", task)
        return task
    if proba_columns(data):
        return "classification"
    values = [*data["prediction"].dropna().tolist()]
    if "label" in data.columns:
        values += data["label"][labelled].tolist()
    if any(isinstance(v, str | bool | np.bool_) for v in values):
        return "classification"
    real = any(isinstance(v, float | np.floating) and not float(v).is_integer() for v in values)
    return "regression" if real else "classification"


def _metrics(metrics: Sequence[str] | None, task: Task, has_proba: bool) -> list[str]:
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metrics is None:
        return [m for m in allowed if has_proba or m not in _PROBA]
    names = metric_names(metrics, allowed, _FUNCTION, f"the metrics of a {task} task")
    if not has_proba and any(m in _PROBA for m in names):
        raise bad(
            "metrics",
            _FUNCTION,
            "free of auc and log_loss when the frame has no proba_<class> columns",
            list(metrics),
        )
    return names


def _arrays(
    labelled: pd.DataFrame, task: Task, names: Sequence[str]
) -> dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
    """``(y, prediction or scores)`` per metric, over the labelled rows."""
    if task == "regression":
        y_num = numbers(labelled["label"], "label")
        predicted_num = numbers(labelled["prediction"], "prediction")
        return dict.fromkeys(names, (y_num, predicted_num))
    y = class_keys(labelled["label"], "label")
    predicted = class_keys(labelled["prediction"], "prediction")
    if len(y) and _kind(labelled["label"]) != _kind(labelled["prediction"]):
        raise InvalidParameter(
            f"The 'label' column holds {_kind(labelled['label'])} (e.g. "
            f"{labelled['label'].iloc[0]!r}) but the model predicts "
            f"{_kind(labelled['prediction'])} (e.g. {labelled['prediction'].iloc[0]!r}); "
            "send labels of the type the model predicts."
        )
    out: dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]] = {}
    for name in names:
        out[name] = _scored(labelled, y) if name in ("auc", "log_loss") else (y, predicted)
    return out


def _kind(values: pd.Series[Any]) -> str:
    first = values.iloc[0] if len(values) else None
    return "text" if isinstance(first, str) else "numbers"


def _scored(
    labelled: pd.DataFrame, y: npt.NDArray[np.str_]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """The registry's inputs for AUC and log loss: a positive mask and one score per row
    (one ``proba_`` column), or class indices and one column per class."""
    columns = proba_columns(labelled)
    scores = proba_matrix(labelled, columns)
    classes = [key for _, key in columns]
    if len(columns) == 1:
        others = sorted(set(y.tolist()) - {classes[0]})
        if len(others) > 1:
            raise InvalidParameter(
                f"With the one probability column {columns[0][0]!r} the labels must be binary; "
                f"the 'label' column also holds {others[:5]}."
            )
        return y == classes[0], scores[:, 0]
    return class_indices(y, classes, "The 'label' column"), scores


def class_indices(
    y: npt.NDArray[np.str_], classes: Sequence[str], column: str
) -> npt.NDArray[np.intp]:
    """The position of each label's class among ``classes`` (the probability columns).

    Args:
        y: The labels, as class keys.
        classes: The class keys of the probability columns, in column order.
        column: How the error names the labels' column (``"The 'label' column"``).

    Returns:
        One index into ``classes`` per label.

    Raises:
        InvalidParameter: A label has no probability column.
    """
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise InvalidParameter(
            f"{column} holds {unknown[0]!r}, which has no probability column "
            f"(proba_{unknown[0]}); the classes are {list(classes)[:10]}."
        )
    index = {key: i for i, key in enumerate(classes)}
    return np.fromiter((index[v] for v in y), dtype=np.intp, count=len(y))


def percentile_interval(values: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of the finite ``values``.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when no value is finite (a metric undefined on
        every draw: its point may still be known, its interval is not).
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def _interval(
    name: str,
    y: npt.NDArray[Any],
    predicted: npt.NDArray[Any],
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """The percentile bootstrap interval of the metric on these rows.

    Accuracy, precision, recall and F1 depend only on the confusion matrix, so the rows
    collapse to its cells and a resample of the rows is a multinomial draw of the cell
    counts: the same bootstrap at a cost that does not grow with the rows. Other
    metrics resample the rows, with fewer resamples past a budget.
    """
    if name in _CONFUSION:
        cells, counts = np.unique(np.column_stack([y, predicted]), axis=0, return_counts=True)
        score = METRICS[name].prepare(cells[:, 0], cells[:, 1])
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(len(y), counts / len(y), size=n_resamples).astype(np.float64)
        return percentile_interval(score(draws), confidence)
    resamples = min(n_resamples, max(_MIN_RESAMPLES, _ROW_BUDGET // len(y)))
    try:
        return bootstrap_interval(
            name, y, predicted, n_resamples=resamples, confidence=confidence, seed=seed
        )
    except InvalidParameter:  # undefined on every resample; the point alone is known
        return math.nan, math.nan


def _judged(
    name: str,
    part: Segment,
    y: npt.NDArray[Any],
    predicted: npt.NDArray[Any],
    bound: Bound | None,
    min_labels: int,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> CheckResult:
    labelled, predictions = len(y), len(part.rows)
    detail = {
        "labelled": labelled,
        "predicted": predictions,
        "labelled_fraction": labelled / predictions,
        "window_start": part.window_start,
        "window_end": part.window_end,
        "estimated": False,
        "confidence": confidence,
    }
    result = functools.partial(segment_result, "performance", name, part, bound, detail)
    where = f" in {part.name}" if part.name else ""
    if labelled < min_labels:
        return result(
            f"{name} not judged{where}: only {labelled} of {min_labels} labels "
            f"({labelled} of {predictions} predictions labelled)."
        )
    value = METRICS[name](y, predicted)
    if not math.isfinite(value):
        return result(
            f"{name} is undefined{where} on these {labelled} labels "
            "(a single class, or constant labels)."
        )
    interval = _interval(name, y, predicted, n_resamples, confidence, seed)
    status, verdict = judge(value, interval, bound)
    return result(
        f"{name} {value:.4g} ({confidence:.0%} CI {interval[0]:.4g} to "
        f"{interval[1]:.4g}){where} on {labelled} of {predictions} predictions labelled"
        f"{verdict}.",
        judged=(value, interval, status),
    )


def segment_result(
    check: str,
    name: str,
    part: Segment,
    bound: Bound | None,
    detail: Mapping[str, Any],
    message: str,
    *,
    judged: tuple[float, tuple[float, float], Status] | None = None,
) -> CheckResult:
    """One metric's result on one segment of the prediction log.

    Args:
        check: ``performance`` or ``estimated_performance``.
        name: The metric (the result's ``method``).
        part: The segment.
        bound: The metric's bound, if any (the result's ``threshold``).
        detail: The result's ``detail`` (copied).
        message: The result's message.
        judged: ``(value, interval, status)`` of a judged metric; ``None`` for a
            ``no_data`` result.

    Returns:
        The result, its ``column`` ``"label"``.
    """
    unjudged: tuple[None, None, Status] = (None, None, "no_data")
    value, interval, status = unjudged if judged is None else judged
    return CheckResult(
        check=check,
        column="label",
        method=name,
        statistic=value,
        threshold=None if bound is None else bound.value,
        status=status,
        interval=interval,
        segment=part.name,
        message=message,
        detail=dict(detail),
    )
