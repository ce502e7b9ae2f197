"""Performance estimated before labels arrive: the ``estimated_performance`` check (CBPE).

Confidence-based performance estimation, as NannyML's CBPE:

1. On the labelled **reference** (e.g. the evaluation window), the model's scores are
   calibrated with isotonic regression (one-vs-rest and renormalised for more than two
   classes), so that a calibrated ``p`` means "right ``p`` of the time".
2. On each unlabelled **current** segment, row ``i`` then has the label ``c`` with
   probability ``p_ic``. The expected confusion matrix follows, and every metric is
   computed on it: the rows are repeated once per class, weighted by ``p_ic``, and scored
   by the registry's own weighted metrics (:mod:`loopml.registry._stats`). So the
   expected accuracy, precision, recall, F1 (support-weighted, as the registry's), ROC
   AUC and log loss mean exactly what the realised ones of
   :func:`~loopml.monitoring.performance` mean.
3. The interval is where the **realised** metric should fall if the calibration holds:
   realisations of the labels are drawn from calibrated probabilities (seeded,
   ``n_simulations`` of them), each is scored the same way, and the percentile interval
   of those scores is reported. The draws share out over 50 calibrations refitted on
   bootstrap resamples of the reference, so the interval also carries the calibration's
   own error (which matters when a shift crowds the current rows where the reference
   had few). What is drawn costs nothing per row where an exact moment form exists:
   the confusion matrix (accuracy, precision, recall, F1) as normal draws with the exact
   mean and covariance of its cells, binary AUC from the positives' count and rank sum
   (bivariate normal, exact moments), log loss as a mean of independent row losses;
   only multiclass AUC draws every row's label (fewer draws past 2**24 elements).

CBPE holds under covariate shift (the inputs move, ``P(label | score)`` does not); when
the relation between scores and labels itself changes (concept shift), the estimate is
wrong, and :func:`compare_estimate` — once labels arrive — shows it: the realised metric
falls outside the interval. Binary and multiclass classifiers are supported; the scores
are the ``proba_<class>`` columns (a binary model may give only the positive class's).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InsufficientData, InvalidParameter
from loopml.monitoring._cbpe import (
    CALIBRATION_RESAMPLES,
    Calibration,
    Scored,
    expected_metrics,
    fit,
    normalised,
)
from loopml.monitoring._perf_frame import (
    Bound,
    Segment,
    bad,
    bounds,
    class_keys,
    judge,
    labelled_mask,
    metric_names,
    proba_columns,
    proba_matrix,
    segments,
    to_pandas,
    window_ms,
)
from loopml.monitoring._performance import class_indices, segment_result
from loopml.monitoring._results import CheckResult
from loopml.registry._stats import METRICS

__all__ = ["ESTIMABLE_METRICS", "compare_estimate", "estimate_performance"]

ESTIMABLE_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "auc", "log_loss")
"""Metrics CBPE estimates (``roc_auc`` is accepted for ``auc``)."""

_FUNCTION = "estimate_performance"
_HIGHER = {name: m.higher_is_better for name, m in METRICS.items()}


def estimate_performance(
    reference: object,
    current: object,
    *,
    metrics: Sequence[str] = ("accuracy", "auc"),
    by: Sequence[str] = ("window",),
    window: str | None = "1d",
    calibrate: bool = True,
    min_rows: int = 100,
    confidence: float = 0.95,
    thresholds: Mapping[str, tuple[str, float]] | None = None,
    baseline: Mapping[str, float] | None = None,
    tolerance: float = 0.05,
    n_simulations: int = 1000,
    seed: int = 0,
) -> list[CheckResult]:
    """Estimate a classifier's performance on unlabelled predictions (CBPE).

    Args:
        reference: Labelled prediction-log rows (pandas DataFrame or pyarrow Table) with
            ``prediction``, ``label`` and the ``proba_<class>`` columns; rows without a
            label are left out. The calibration is fitted here.
        current: The prediction-log rows to estimate on (labels are not read), with
            ``ts``, ``prediction``, the same ``proba_`` columns and, when split by them,
            ``route`` and ``model_version``.
        metrics: Names among :data:`ESTIMABLE_METRICS`.
        by: What to split ``current`` by, among ``window``, ``route``,
            ``model_version`` (use the same as for the realised
            :func:`~loopml.monitoring.performance`, so :func:`compare_estimate` pairs them).
        window: Window length when splitting by window (``1h``, ``1d`` ...).
        calibrate: Calibrate the scores on the reference (isotonic); ``False`` trusts
            the model's probabilities as they are.
        min_rows: Labelled reference rows needed, and rows a current segment needs
            before it is estimated (else ``no_data``).
        confidence: Level of the intervals, strictly between 0 and 1.
        thresholds: Bounds per metric, ``{"accuracy": (">=", 0.8)}``; judged as the
            realised check does (alert only when the whole interval is beyond the bound).
        baseline: Reference values per metric, bounded at ``tolerance`` (relative) worse.
        tolerance: Relative tolerance around ``baseline``, in ``[0, 1)``.
        n_simulations: Label draws behind each interval.
        seed: Seed of the draws, so results are reproducible.

    Returns:
        One ``estimated_performance`` result per metric and segment, ``detail`` with
        ``estimated=True``, ``calibrated``, ``reference_rows``, ``labelled``,
        ``predicted``, ``labelled_fraction``, ``window_start`` and ``window_end``.

    Raises:
        InsufficientData: Fewer than ``min_rows`` labelled reference rows, or an
            empty ``current``.
        InvalidParameter: A bad argument, no ``proba_`` columns, columns that differ
            between the frames, or labels, predictions or probabilities of the wrong type.

    Example:
        >>> import pandas as pd
        >>> reference = pd.DataFrame({"prediction": [0, 1, 1, 0], "label": [0, 1, 0, 0],
        ...                           "proba_1": [0.1, 0.9, 0.8, 0.3]})
        >>> current = pd.DataFrame({"ts": [0, 0, 0], "prediction": [1, 0, 1],
        ...                         "proba_1": [0.95, 0.2, 0.7]})
        >>> [accuracy] = estimate_performance(reference, current, metrics=["accuracy"],
        ...                                   by=(), min_rows=2)
        >>> accuracy.detail["estimated"], round(accuracy.statistic, 3)
        (True, 0.667)
    """
    names = metric_names(metrics, ESTIMABLE_METRICS, _FUNCTION, "what CBPE estimates")
    for parameter, value in (("min_rows", min_rows), ("n_simulations", n_simulations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise bad(parameter, _FUNCTION, "an int >= 2", value)
    if not (isinstance(confidence, float | int) and 0.0 < confidence < 1.0):
        raise bad("confidence", _FUNCTION, "a number strictly between 0 and 1", confidence)
    if not isinstance(calibrate, bool):
        raise bad("calibrate", _FUNCTION, "a bool", calibrate)
    limits = bounds(thresholds, baseline, tolerance, names, _HIGHER, _FUNCTION)
    ref = to_pandas(reference, "reference", _FUNCTION)
    cur = to_pandas(current, "current", _FUNCTION)
    if len(cur) == 0:
        raise InsufficientData(f"The 'current' frame of {_FUNCTION} has no rows.", needed=1, got=0)
    parts = segments(cur, by, window_ms(window, _FUNCTION), _FUNCTION)
    rng = np.random.default_rng(seed)
    model = _model(ref, cur, calibrate, min_rows, rng)
    labelled = labelled_mask(cur)
    results: list[CheckResult] = []
    for part in parts:
        context = {
            "labelled": int(labelled[part.rows].sum()),
            "predicted": len(part.rows),
            "labelled_fraction": float(labelled[part.rows].mean()),
            "window_start": part.window_start,
            "window_end": part.window_end,
            "estimated": True,
            "calibrated": calibrate,
            "reference_rows": model.reference_rows,
            "confidence": float(confidence),
        }
        if len(part.rows) < min_rows:
            where = f" in {part.name}" if part.name else ""
            results += [
                segment_result(
                    "estimated_performance",
                    name,
                    part,
                    limits.get(name),
                    context,
                    f"{name} not estimated{where}: only {len(part.rows)} of {min_rows} rows.",
                )
                for name in names
            ]
            continue
        estimates = expected_metrics(model, part.rows, names, n_simulations, float(confidence), rng)
        results += [
            _judged(name, part, *estimates[name], limits.get(name), context) for name in names
        ]
    return results


def compare_estimate(
    estimated: Sequence[CheckResult], realised: Sequence[CheckResult]
) -> list[CheckResult]:
    """Set each estimate against the realised metric, once the labels have arrived.

    Pairs an ``estimated_performance`` result with the ``performance`` result of the same
    metric and segment (so both must be split the same way) and adds to its ``detail``:
    ``realised`` (the realised value, ``None`` when not judged), ``realised_labelled``
    and ``realised_within_interval`` (whether it fell inside the estimate's interval;
    ``None`` when there is nothing to compare). An estimate whose interval misses the
    realised value says the calibration no longer holds (concept shift). Statuses are
    unchanged.

    Args:
        estimated: Results of :func:`estimate_performance`.
        realised: Results of :func:`~loopml.monitoring.performance`.

    Returns:
        The estimated results, in their order, with the comparison in ``detail`` and
        the message.

    Raises:
        InvalidParameter: ``estimated`` holds a result of another check.
    """
    actual = {(r.method, r.segment): r for r in realised if r.check == "performance"}
    out = []
    for estimate in estimated:
        if estimate.check != "estimated_performance":
            raise bad(
                "estimated",
                "compare_estimate",
                "results of the 'estimated_performance' check",
                estimate.check,
            )
        real = actual.get((estimate.method, estimate.segment))
        value = None if real is None else real.statistic
        within: bool | None = None
        note = " No realised value to compare with yet."
        if value is not None and estimate.interval is not None and estimate.statistic is not None:
            low, high = estimate.interval
            within = bool(low <= value <= high)
            note = f" Realised {value:.4g}: " + (
                "inside the interval."
                if within
                else "outside the interval (the calibration no longer holds)."
            )
        detail = {
            **estimate.detail,
            "realised": value,
            "realised_labelled": None if real is None else real.detail.get("labelled"),
            "realised_within_interval": within,
        }
        out.append(dataclasses.replace(estimate, detail=detail, message=estimate.message + note))
    return out


def _model(
    ref: pd.DataFrame, cur: pd.DataFrame, calibrate: bool, min_rows: int, rng: np.random.Generator
) -> Scored:
    columns = proba_columns(ref)
    if not columns:
        raise InvalidParameter(
            f"{_FUNCTION} needs the model's class probabilities: the 'reference' frame has no "
            "proba_<class> column."
        )
    missing = [c for c, _ in columns if c not in cur.columns]
    if missing:
        raise InvalidParameter(
            f"The 'current' frame of {_FUNCTION} lacks the column {missing[0]!r}."
        )
    for frame, parameter in ((ref, "reference"), (cur, "current")):
        if "prediction" not in frame.columns:
            raise InvalidParameter(
                f"The {parameter!r} frame of {_FUNCTION} has no 'prediction' column."
            )
    rows = labelled_mask(ref)
    if int(rows.sum()) < min_rows:
        raise InsufficientData(
            f"The reference of {_FUNCTION} has {int(rows.sum())} labelled rows; "
            f"the calibration needs at least {min_rows}.",
            needed=min_rows,
            got=int(rows.sum()),
        )
    y = class_keys(ref["label"][rows], "label")
    ref_scores = proba_matrix(ref[rows], columns)
    cur_scores = proba_matrix(cur, columns)
    classes = [key for _, key in columns]
    if len(classes) == 1:  # the positive class only: the other class is the labels' other value
        found = sorted(set(y.tolist()))
        others = [key for key in found if key != classes[0]]
        if len(others) != 1 or len(found) != 2:
            raise InvalidParameter(
                f"With the one probability column {columns[0][0]!r} the reference labels must "
                f"hold {classes[0]!r} and one other class. Got the classes {found[:5]} instead."
            )
        classes = [others[0], classes[0]]
        ref_scores = np.column_stack([1.0 - ref_scores[:, 0], ref_scores[:, 0]])
        cur_scores = np.column_stack([1.0 - cur_scores[:, 0], cur_scores[:, 0]])
    truth = class_indices(y, classes, "The reference's 'label' column")
    calibrations: list[Calibration] = [normalised]
    if calibrate:
        calibrations = [fit(ref_scores, truth)]
        for _ in range(CALIBRATION_RESAMPLES):
            drawn = rng.integers(0, len(truth), size=len(truth))
            calibrations.append(fit(ref_scores[drawn], truth[drawn]))
    predicted = class_keys(cur["prediction"], "prediction")
    index = {key: i for i, key in enumerate(classes)}
    codes = np.fromiter(
        (index.get(v, len(classes)) for v in predicted), dtype=np.intp, count=len(predicted)
    )
    return Scored(classes, cur_scores, calibrations, codes, len(y))


def _judged(
    name: str,
    part: Segment,
    value: float,
    interval: tuple[float, float],
    bound: Bound | None,
    context: Mapping[str, Any],
) -> CheckResult:
    result = functools.partial(segment_result, "estimated_performance", name, part, bound, context)
    where = f" in {part.name}" if part.name else ""
    if not math.isfinite(value):
        return result(
            f"{name} cannot be estimated{where}: the calibrated probabilities give a single class."
        )
    status, verdict = judge(value, interval, bound)
    return result(
        f"Estimated (CBPE, no labels) {name} {value:.4g}{where}; if the calibration "
        f"holds the realised value lies in {interval[0]:.4g} to {interval[1]:.4g} "
        f"({context['confidence']:.0%}){verdict}.",
        judged=(value, interval, status),
    )
