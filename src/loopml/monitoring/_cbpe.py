"""CBPE's arithmetic: calibrations fitted on the reference, expected metrics and draws.

The public check is :func:`loopml.monitoring._estimated.estimate_performance`; this
module holds what it computes with (see that module's docstring for the method).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.registry._stats import METRICS, WeightedMetric

__all__ = [
    "CALIBRATION_RESAMPLES",
    "Calibration",
    "Scored",
    "expected_metrics",
    "fit",
    "normalised",
]

FloatArray = npt.NDArray[np.float64]
# Refits of the calibration on bootstrap resamples of the reference: enough to carry the
# calibration's error into the interval, few enough to stay cheap (isotonic fits are fast).
CALIBRATION_RESAMPLES = 50
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
class IsotonicCalibration:
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
        return np.where(total > 0, calibrated / np.where(total > 0, total, 1.0), normalised(scores))


Calibration = Callable[[FloatArray], FloatArray]


@dataclasses.dataclass(frozen=True)
class Scored:
    """The current rows as CBPE sees them: raw scores, calibrated probabilities, predictions."""

    classes: list[str]
    scores: npt.NDArray[np.float64]  # (rows, classes), as the model gave them
    calibrations: list[Calibration]  # the fitted one first, then refits on resamples
    predicted: npt.NDArray[np.intp]  # class index; len(classes) for anything else
    reference_rows: int


def normalised(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[1])
    out: npt.NDArray[np.float64] = np.where(
        total > 0, scores / np.where(total > 0, total, 1.0), uniform
    )
    return out


def fit(scores: FloatArray, truth: npt.NDArray[np.intp]) -> IsotonicCalibration:
    """Isotonic calibration on the reference (one-vs-rest beyond two classes)."""
    from sklearn.isotonic import IsotonicRegression

    columns = [1] if scores.shape[1] == 2 else range(scores.shape[1])
    maps = [
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            scores[:, c], (truth == c).astype(np.float64)
        )
        for c in columns
    ]
    return IsotonicCalibration(maps)


def expected_metrics(
    model: Scored,
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
    model: Scored,
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
    model: Scored,
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
    model: Scored,
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
    model: Scored,
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
