"""CBPE's arithmetic: calibrations fitted on the reference, expected metrics and draws.

The public check is :func:`loopml.monitoring._estimated.estimate_performance`; this
module holds what it computes with (see that module's docstring for the method).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.monitoring._performance import percentile_interval
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


@dataclasses.dataclass(frozen=True)
class _Simulation:
    """How the label draws of one segment go: shared out over the refitted calibrations."""

    refits: Sequence[Calibration]
    n_simulations: int
    confidence: float
    rng: np.random.Generator

    def shares(self) -> Iterator[tuple[Calibration, int]]:
        """Each refitted calibration with its share of the draws (round robin)."""
        counts = np.bincount(
            np.arange(self.n_simulations) % len(self.refits), minlength=len(self.refits)
        )
        return zip(self.refits, counts.tolist(), strict=True)

    def interval(self, chunks: Sequence[FloatArray]) -> tuple[float, float]:
        """The percentile interval of the simulated values, drawn in ``chunks``."""
        return percentile_interval(np.concatenate(chunks), self.confidence)


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
    simulation = _Simulation(
        model.calibrations[1:] or model.calibrations, n_simulations, confidence, rng
    )
    scores, predicted = model.scores[rows], model.predicted[rows]
    out: dict[str, tuple[float, tuple[float, float]]] = {}
    counted = [name for name in names if not METRICS[name].needs_proba]
    if counted:
        out |= _from_counts(model, scores, predicted, counted, simulation)
    ranked = [name for name in names if METRICS[name].needs_proba]
    if "log_loss" in ranked:
        ranked.remove("log_loss")
        out["log_loss"] = _log_loss(model, scores, simulation)
    if "auc" in ranked and len(model.classes) == 2:
        ranked.remove("auc")
        out["auc"] = _binary_auc(model, scores, simulation)
    if ranked:
        # Row-level draws cost draws x classes x rows: past the budget, fewer draws.
        draws = min(n_simulations, max(_MIN_DRAWS, _ROW_BUDGET // (len(model.classes) * len(rows))))
        fewer = dataclasses.replace(simulation, n_simulations=draws)
        out |= _from_rows(model, scores, ranked, fewer)
    return out


def _scored_draws(
    scorers: Mapping[str, WeightedMetric],
    expected: FloatArray,
    labellings: Iterable[FloatArray],
    simulation: _Simulation,
) -> dict[str, tuple[float, tuple[float, float]]]:
    """Each metric on the expected labelling, and the interval of its simulated values.

    ``labellings`` yields ``(draws, cells)`` weight matrices, one simulated labelling a
    row, in the cells the scorers were prepared on.
    """
    draws: dict[str, list[FloatArray]] = {name: [] for name in scorers}
    for weights in labellings:
        for name, score in scorers.items():
            draws[name].append(score(weights))
    return {
        name: (float(score(expected)[0]), simulation.interval(draws[name]))
        for name, score in scorers.items()
    }


def _from_counts(
    model: Scored,
    scores: FloatArray,
    predicted: npt.NDArray[np.intp],
    names: Sequence[str],
    simulation: _Simulation,
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
    groups = [np.flatnonzero(predicted == d) for d in range(k + 1)]

    def labellings() -> Iterator[FloatArray]:
        for calibration, share in simulation.shares():
            proba = calibration(scores)
            weights = np.zeros((share, k, k + 1))
            for d, members in enumerate(groups):
                if members.size:
                    p = proba[members]
                    mean = p.sum(axis=0)
                    covariance = np.diag(mean) - p.T @ p
                    weights[:, :, d] = simulation.rng.multivariate_normal(
                        mean, covariance, size=share, method="eigh", check_valid="ignore"
                    )
            yield np.clip(weights, 0.0, None).reshape(share, k * (k + 1))

    return _scored_draws(scorers, expected, labellings(), simulation)


def _from_rows(
    model: Scored, scores: FloatArray, names: Sequence[str], simulation: _Simulation
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
    per_chunk = max(1, _CHUNK_ELEMENTS // (k * n))

    def labellings() -> Iterator[FloatArray]:
        for calibration, share in simulation.shares():
            cumulative = np.cumsum(calibration(scores), axis=1)
            cumulative[:, -1] = 1.0  # rounding must not leave a draw above every class
            for start in range(0, share, per_chunk):
                size = min(per_chunk, share - start)
                uniform = simulation.rng.random((size, n))
                drawn = (uniform[:, :, None] >= cumulative[None, :, :]).sum(axis=2)
                weights = np.zeros((size, k * n))
                weights[np.arange(size)[:, None], drawn * n + np.arange(n)[None, :]] = 1.0
                yield weights

    return _scored_draws(scorers, expected, labellings(), simulation)


def _log_loss(
    model: Scored, scores: FloatArray, simulation: _Simulation
) -> tuple[float, tuple[float, float]]:
    """Log loss is a mean of independent per-row losses: its draws are normal with the
    exact mean and variance of that mean under each calibration."""
    n = len(scores)
    normalised = scores / scores.sum(axis=1, keepdims=True)
    losses = -np.log(np.clip(normalised, _EPS, 1.0 - _EPS))
    draws = []
    for calibration, share in simulation.shares():
        proba = calibration(scores)
        mean = (proba * losses).sum(axis=1)
        variance = (proba * losses**2).sum(axis=1) - mean**2
        spread = math.sqrt(max(float(variance.sum()), 0.0)) / n
        draws.append(simulation.rng.normal(float(mean.sum()) / n, spread, size=share))
    expected = float((model.calibrations[0](scores) * losses).sum() / n)
    return expected, simulation.interval(draws)


def _binary_auc(
    model: Scored, scores: FloatArray, simulation: _Simulation
) -> tuple[float, tuple[float, float]]:
    """Binary AUC from two sums: with midranks ``r`` of the scores, a labelling with
    ``n1`` positives whose ranks add up to ``R`` has AUC ``(R - n1 (n1 + 1) / 2) /
    (n1 (n - n1))`` (Mann-Whitney, ties counting one half, as the registry's AUC). Under
    a calibration, ``(n1, R)`` is a sum of independent rows, drawn here as a bivariate
    normal with its exact mean and covariance: cheap whatever the row count."""
    n = len(scores)
    ranks = pd.Series(scores[:, 1]).rank(method="average").to_numpy(dtype=np.float64)
    draws = []
    for calibration, share in simulation.shares():
        p = calibration(scores)[:, 1]
        spread = p * (1.0 - p)
        mean = [float(p.sum()), float(p @ ranks)]
        covariance = [
            [float(spread.sum()), float(spread @ ranks)],
            [float(spread @ ranks), float(spread @ ranks**2)],
        ]
        positives, rank_sum = simulation.rng.multivariate_normal(
            mean, covariance, size=share, method="eigh", check_valid="ignore"
        ).T
        pairs = positives * (n - positives)
        auc = np.full(share, np.nan)
        np.divide(rank_sum - positives * (positives + 1) / 2, pairs, out=auc, where=pairs > 0)
        draws.append(auc)
    labels = np.repeat(np.arange(2), n)
    expected = model.calibrations[0](scores).T.reshape(1, 2 * n)
    point = float(METRICS["auc"].prepare(labels, np.tile(scores, (2, 1)))(expected)[0])
    return point, simulation.interval(draws)
