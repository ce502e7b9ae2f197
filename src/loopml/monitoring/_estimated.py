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
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InsufficientData, InvalidParameter
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
from loopml.monitoring._results import CheckResult
from loopml.registry._stats import METRICS, WeightedMetric

__all__ = ["ESTIMABLE_METRICS", "compare_estimate", "estimate_performance"]

ESTIMABLE_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "auc", "log_loss")
"""Metrics CBPE estimates (``roc_auc`` is accepted for ``auc``)."""

_FUNCTION = "estimate_performance"
_HIGHER = {name: m.higher_is_better for name, m in METRICS.items()}
# Refits of the calibration on bootstrap resamples of the reference: enough to carry the
# calibration's error into the interval, few enough to stay cheap (isotonic fits are fast).
_CALIBRATION_RESAMPLES = 50
FloatArray = npt.NDArray[np.float64]
# Elements of one chunk of simulated label draws (k draws x classes x rows), ~16 MB.
_CHUNK_ELEMENTS = 2**21
# Row-level draws (AUC, log loss) past 2**24 elements (~1,000 draws of 8,000 binary
# rows) are cut down to fit, but never below 200 draws: a 95 % percentile interval
# from 200 draws is still within a few per cent of its width.
_ROW_BUDGET = 2**24
_MIN_DRAWS = 200
# Probabilities are clipped away from 0 and 1 so log loss stays finite (as the registry's).
_EPS = float(np.finfo(np.float64).eps)


@dataclasses.dataclass(frozen=True)
class _Calibration:
    """Isotonic maps fitted on the reference: scores ``(n, K)`` -> probabilities ``(n, K)``."""

    maps: list[Any]  # one sklearn IsotonicRegression per class (the positive one if binary)

    def __call__(self, scores: FloatArray) -> FloatArray:
        if scores.shape[1] == 2:
            positive = np.asarray(self.maps[0].predict(scores[:, 1]), dtype=np.float64)
            return np.column_stack([1.0 - positive, positive])
        calibrated = np.column_stack(
            [np.asarray(m.predict(scores[:, c]), dtype=np.float64) for c, m in enumerate(self.maps)]
        )
        # Rows whose classes all calibrate to 0 keep the model's own (normalised) scores.
        total = calibrated.sum(axis=1, keepdims=True)
        return np.where(
            total > 0, calibrated / np.where(total > 0, total, 1.0), _normalised(scores)
        )


Calibration = Callable[[FloatArray], FloatArray]


@dataclasses.dataclass(frozen=True)
class _Model:
    """The current rows as CBPE sees them: raw scores, calibrated probabilities, predictions."""

    classes: list[str]
    scores: npt.NDArray[np.float64]  # (rows, classes), as the model gave them
    calibrations: list[Calibration]  # the fitted one first, then refits on resamples
    predicted: npt.NDArray[np.intp]  # class index; len(classes) for anything else
    reference_rows: int


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
            results += [_no_data(name, part, limits.get(name), min_rows, context) for name in names]
            continue
        estimates = _estimate(model, part.rows, names, n_simulations, float(confidence), rng)
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
) -> _Model:
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
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise InvalidParameter(
            f"The reference's 'label' column holds {unknown[0]!r}, which has no probability "
            f"column (proba_{unknown[0]}); the classes are {classes[:10]}."
        )
    index = {key: i for i, key in enumerate(classes)}
    truth = np.fromiter((index[v] for v in y), dtype=np.intp, count=len(y))
    calibrations: list[Calibration] = [_normalised]
    if calibrate:
        calibrations = [_fit(ref_scores, truth)]
        for _ in range(_CALIBRATION_RESAMPLES):
            drawn = rng.integers(0, len(truth), size=len(truth))
            calibrations.append(_fit(ref_scores[drawn], truth[drawn]))
    predicted = class_keys(cur["prediction"], "prediction")
    codes = np.fromiter(
        (index.get(v, len(classes)) for v in predicted), dtype=np.intp, count=len(predicted)
    )
    return _Model(classes, cur_scores, calibrations, codes, len(y))


def _normalised(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[1])
    out: npt.NDArray[np.float64] = np.where(
        total > 0, scores / np.where(total > 0, total, 1.0), uniform
    )
    return out


def _fit(scores: FloatArray, truth: npt.NDArray[np.intp]) -> _Calibration:
    """Isotonic calibration on the reference (one-vs-rest beyond two classes)."""
    from sklearn.isotonic import IsotonicRegression

    columns = [1] if scores.shape[1] == 2 else range(scores.shape[1])
    maps = [
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            scores[:, c], (truth == c).astype(np.float64)
        )
        for c in columns
    ]
    return _Calibration(maps)


def _estimate(
    model: _Model,
    rows: npt.NDArray[np.intp],
    names: Sequence[str],
    n_simulations: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, tuple[float, tuple[float, float]]]:
    """Expected value and interval of each metric on one segment.

    The draws share out over the refitted calibrations, so the interval carries the
    calibration's own error as well as the labels' (without calibration: the one map).
    """
    refits = model.calibrations[1:] or model.calibrations
    scores, predicted = model.scores[rows], model.predicted[rows]
    out: dict[str, tuple[float, tuple[float, float]]] = {}
    counted = [name for name in names if not METRICS[name].needs_proba]
    if counted:
        out |= _from_counts(
            model, scores, predicted, refits, counted, n_simulations, confidence, rng
        )
    ranked = [name for name in names if METRICS[name].needs_proba]
    if "log_loss" in ranked:
        ranked.remove("log_loss")
        out["log_loss"] = _log_loss(model, scores, refits, n_simulations, confidence, rng)
    if "auc" in ranked and len(model.classes) == 2:
        ranked.remove("auc")
        out["auc"] = _binary_auc(model, scores, refits, n_simulations, confidence, rng)
    if ranked:
        # Row-level draws cost draws x classes x rows: past the budget, fewer draws.
        draws = min(n_simulations, max(_MIN_DRAWS, _ROW_BUDGET // (len(model.classes) * len(rows))))
        out |= _from_rows(model, scores, predicted, refits, ranked, draws, confidence, rng)
    return out


def _from_counts(
    model: _Model,
    scores: FloatArray,
    predicted: npt.NDArray[np.intp],
    refits: Sequence[Calibration],
    names: Sequence[str],
    n_simulations: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, tuple[float, tuple[float, float]]]:
    """Accuracy, precision, recall and F1 depend on the confusion matrix alone.

    Its cells are (label, predicted class) with the unknown predictions in an extra
    column. The label counts among the rows predicted ``d`` are a sum of independent
    categorical draws: their mean and covariance are exact, and a normal draw with
    them stands for a realisation (cheap whatever the row count).
    """
    k = len(model.classes)
    cell_labels = np.repeat(np.arange(k), k + 1)
    cell_predicted = np.tile(np.arange(k + 1), k)
    scorers = {name: METRICS[name].prepare(cell_labels, cell_predicted) for name in names}
    onehot = np.eye(k + 1)[predicted]
    expected = (model.calibrations[0](scores).T @ onehot).reshape(1, k * (k + 1))
    shares = np.bincount(np.arange(n_simulations) % len(refits), minlength=len(refits))
    draws: dict[str, list[FloatArray]] = {name: [] for name in names}
    groups = [np.flatnonzero(predicted == d) for d in range(k + 1)]
    for calibration, share in zip(refits, shares.tolist(), strict=True):
        proba = calibration(scores)
        weights = np.zeros((share, k, k + 1))
        for d, members in enumerate(groups):
            if members.size:
                p = proba[members]
                mean = p.sum(axis=0)
                covariance = np.diag(mean) - p.T @ p
                weights[:, :, d] = rng.multivariate_normal(
                    mean, covariance, size=share, method="eigh", check_valid="ignore"
                )
        flat = np.clip(weights, 0.0, None).reshape(share, k * (k + 1))
        for name in names:
            draws[name].append(scorers[name](flat))
    return {
        name: (float(scorers[name](expected)[0]), _percentile_interval(draws[name], confidence))
        for name in names
    }


def _from_rows(
    model: _Model,
    scores: FloatArray,
    predicted: npt.NDArray[np.intp],
    refits: Sequence[Calibration],
    names: Sequence[str],
    n_simulations: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, tuple[float, tuple[float, float]]]:
    """AUC and log loss need every row's score: draw every row's label.

    Each row is repeated once per class (class-major), so a weight vector over the
    ``classes x rows`` copies is a (possibly fractional) labelling: the calibrated
    probabilities give the expected metric, a 0/1 draw gives one simulated realisation.
    """
    k, n = len(model.classes), len(scores)
    labels = np.repeat(np.arange(k), n)
    tiled = np.tile(scores, (k, 1))
    scorers: dict[str, WeightedMetric] = {
        name: METRICS[name].prepare(labels, tiled) for name in names
    }
    expected = model.calibrations[0](scores).T.reshape(1, k * n)
    shares = np.bincount(np.arange(n_simulations) % len(refits), minlength=len(refits))
    draws: dict[str, list[FloatArray]] = {name: [] for name in names}
    per_chunk = max(1, _CHUNK_ELEMENTS // (k * n))
    for calibration, share in zip(refits, shares.tolist(), strict=True):
        cumulative = np.cumsum(calibration(scores), axis=1)
        cumulative[:, -1] = 1.0  # rounding must not leave a draw above every class
        for start in range(0, share, per_chunk):
            size = min(per_chunk, share - start)
            uniform = rng.random((size, n))
            drawn = (uniform[:, :, None] >= cumulative[None, :, :]).sum(axis=2)
            weights = np.zeros((size, k * n))
            weights[np.arange(size)[:, None], drawn * n + np.arange(n)[None, :]] = 1.0
            for name in names:
                draws[name].append(scorers[name](weights))
    return {
        name: (float(scorers[name](expected)[0]), _percentile_interval(draws[name], confidence))
        for name in names
    }


def _log_loss(
    model: _Model,
    scores: FloatArray,
    refits: Sequence[Calibration],
    n_simulations: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[float, tuple[float, float]]:
    """Log loss is a mean of independent per-row losses: its draws are normal with the
    exact mean and variance of that mean under each calibration."""
    n = len(scores)
    normalised = scores / scores.sum(axis=1, keepdims=True)
    losses = -np.log(np.clip(normalised, _EPS, 1.0 - _EPS))
    shares = np.bincount(np.arange(n_simulations) % len(refits), minlength=len(refits))
    draws = []
    for calibration, share in zip(refits, shares.tolist(), strict=True):
        proba = calibration(scores)
        mean = (proba * losses).sum(axis=1)
        variance = (proba * losses**2).sum(axis=1) - mean**2
        spread = math.sqrt(max(float(variance.sum()), 0.0)) / n
        draws.append(rng.normal(float(mean.sum()) / n, spread, size=share))
    expected = float((model.calibrations[0](scores) * losses).sum() / n)
    return expected, _percentile_interval(draws, confidence)


def _binary_auc(
    model: _Model,
    scores: FloatArray,
    refits: Sequence[Calibration],
    n_simulations: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[float, tuple[float, float]]:
    """Binary AUC from two sums: with midranks ``r`` of the scores, a labelling with
    ``n1`` positives whose ranks add up to ``R`` has AUC ``(R - n1 (n1 + 1) / 2) /
    (n1 (n - n1))`` (Mann-Whitney, ties counting one half, as the registry's AUC). Under
    a calibration, ``(n1, R)`` is a sum of independent rows, drawn here as a bivariate
    normal with its exact mean and covariance: cheap whatever the row count."""
    n = len(scores)
    ranks = pd.Series(scores[:, 1]).rank(method="average").to_numpy(dtype=np.float64)
    shares = np.bincount(np.arange(n_simulations) % len(refits), minlength=len(refits))
    draws = []
    for calibration, share in zip(refits, shares.tolist(), strict=True):
        p = calibration(scores)[:, 1]
        spread = p * (1.0 - p)
        mean = [float(p.sum()), float(p @ ranks)]
        covariance = [
            [float(spread.sum()), float(spread @ ranks)],
            [float(spread @ ranks), float(spread @ ranks**2)],
        ]
        positives, rank_sum = rng.multivariate_normal(
            mean, covariance, size=share, method="eigh", check_valid="ignore"
        ).T
        pairs = positives * (n - positives)
        auc = np.full(share, np.nan)
        np.divide(rank_sum - positives * (positives + 1) / 2, pairs, out=auc, where=pairs > 0)
        draws.append(auc)
    labels = np.repeat(np.arange(2), n)
    expected = model.calibrations[0](scores).T.reshape(1, 2 * n)
    point = float(METRICS["auc"].prepare(labels, np.tile(scores, (2, 1)))(expected)[0])
    return point, _percentile_interval(draws, confidence)


def _percentile_interval(chunks: list[FloatArray], confidence: float) -> tuple[float, float]:
    values = np.concatenate(chunks)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def _no_data(
    name: str, part: Segment, bound: Bound | None, min_rows: int, context: Mapping[str, Any]
) -> CheckResult:
    where = f" in {part.name}" if part.name else ""
    return CheckResult(
        check="estimated_performance",
        column="label",
        method=name,
        statistic=None,
        threshold=None if bound is None else bound.value,
        status="no_data",
        segment=part.name,
        message=f"{name} not estimated{where}: only {len(part.rows)} of {min_rows} rows.",
        detail=dict(context),
    )


def _judged(
    name: str,
    part: Segment,
    value: float,
    interval: tuple[float, float],
    bound: Bound | None,
    context: Mapping[str, Any],
) -> CheckResult:
    where = f" in {part.name}" if part.name else ""
    if not math.isfinite(value):
        return dataclasses.replace(
            _no_data(name, part, bound, 0, context),
            message=f"{name} cannot be estimated{where}: the calibrated probabilities give "
            "a single class.",
        )
    status, verdict = judge(value, interval, bound)
    return CheckResult(
        check="estimated_performance",
        column="label",
        method=name,
        statistic=value,
        threshold=None if bound is None else bound.value,
        status=status,
        interval=interval,
        segment=part.name,
        message=f"Estimated (CBPE, no labels) {name} {value:.4g}{where}; if the calibration "
        f"holds the realised value lies in {interval[0]:.4g} to {interval[1]:.4g} "
        f"({context['confidence']:.0%}){verdict}.",
        detail=dict(context),
    )
