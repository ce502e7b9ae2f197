"""Estimated performance before labels arrive (CBPE): loopml.monitoring.estimate_performance.

The worlds here have a known truth, ``P(y = 1 | x)``, and a scikit-learn model trained on
it, so "the calibration holds" and "it does not" are facts of the test, not hopes:
under the model's own world and under covariate shift the realised metric falls in the
estimate's interval in most seeds; under concept shift it does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from loopml.errors import InsufficientData, InvalidParameter
from loopml.monitoring import CheckResult, compare_estimate, estimate_performance, performance

HOUR = 3_600_000
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
WEIGHTS = np.array([1.5, -1.0])
SEEDS = range(20)


def _features(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    return rng.normal(0.0, scale, size=(n, 2))


def _labels(rng: np.random.Generator, x: np.ndarray, weights: np.ndarray = WEIGHTS) -> np.ndarray:
    truth = 1.0 / (1.0 + np.exp(-(x @ weights + 0.3)))
    return (rng.random(len(x)) < truth).astype(int)


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(1234)
    x = _features(rng, 4000)
    return LogisticRegression().fit(x, _labels(rng, x))


def _frame(
    model: LogisticRegression, x: np.ndarray, y: np.ndarray, temperature: float = 1.0
) -> pd.DataFrame:
    """The prediction log of ``model`` on ``x``: 1000 rows an hour, labels ``y``.

    ``temperature`` < 1 makes the logged probabilities under-confident (same ranking,
    same predicted labels): a model whose scores need calibrating.
    """
    proba = 1.0 / (1.0 + np.exp(-temperature * model.decision_function(x)))
    return pd.DataFrame(
        {
            "ts": T0 + np.arange(len(x), dtype=np.int64) * (HOUR // 1000),
            "route": "primary:m@champion",
            "model_version": "m/1",
            "prediction": model.predict(x),
            "proba_1": proba,
            "label": pd.Series(y, dtype=object),
        }
    )


def _run(
    model: LogisticRegression,
    seed: int,
    *,
    scale: float = 1.0,
    weights: np.ndarray = WEIGHTS,
    temperature: float = 1.0,
    calibrate: bool = True,
    metrics: tuple[str, ...] = ("accuracy", "auc"),
) -> list[CheckResult]:
    """Reference 3000 rows from the model's world; current 2 windows of 1000 rows."""
    rng = np.random.default_rng(seed)
    x_ref = _features(rng, 3000)
    reference = _frame(model, x_ref, _labels(rng, x_ref), temperature)
    x_cur = _features(rng, 2000, scale)
    current = _frame(model, x_cur, _labels(rng, x_cur, weights), temperature)
    estimated = estimate_performance(
        reference,
        current.assign(label=None),
        metrics=metrics,
        window="1h",
        calibrate=calibrate,
        seed=seed,
    )
    realised = performance(current, metrics=metrics, window="1h", seed=seed)
    return compare_estimate(estimated, realised)


def _covered(results: list[CheckResult], metric: str) -> list[bool]:
    return [r.detail["realised_within_interval"] for r in results if r.method == metric]


@pytest.mark.slow
def test_estimate_covers_the_realised_metric_when_calibration_holds(model: Any) -> None:
    results = [r for seed in SEEDS for r in _run(model, seed)]
    for metric in ("accuracy", "auc"):
        covered = _covered(results, metric)
        assert len(covered) == 2 * len(SEEDS)
        assert sum(covered) >= 0.85 * len(covered), (metric, sum(covered))


@pytest.mark.slow
def test_estimate_follows_a_covariate_shift(model: Any) -> None:
    # Inputs squeezed towards the decision boundary: the model gets worse, P(y | x) holds.
    baseline = _run(model, 100)
    shifted = [r for seed in range(100, 110) for r in _run(model, seed, scale=0.4)]
    before = np.mean([r.detail["realised"] for r in baseline if r.method == "accuracy"])
    after = [r for r in shifted if r.method == "accuracy"]
    assert np.mean([r.detail["realised"] for r in after]) < before - 0.08
    assert all(r.statistic is not None and r.statistic < before - 0.08 for r in after)
    assert sum(_covered(shifted, "accuracy")) >= 0.85 * len(after)
    assert sum(_covered(shifted, "auc")) >= 0.85 * len(after)


def test_a_concept_shift_falls_outside_the_interval(model: Any) -> None:
    # The second feature's effect flips: the scores no longer mean what they meant.
    for seed in range(3):
        results = _run(model, seed, weights=np.array([1.5, 1.0]))
        assert _covered(results, "accuracy") == [False, False]
        assert all("calibration no longer holds" in r.message for r in results)


@pytest.mark.slow
def test_calibration_fixes_under_confident_scores(model: Any) -> None:
    calibrated = [r for seed in range(5) for r in _run(model, seed, temperature=0.3)]
    raw = [r for seed in range(5) for r in _run(model, seed, temperature=0.3, calibrate=False)]
    assert sum(_covered(calibrated, "accuracy")) >= 8
    assert sum(_covered(raw, "accuracy")) == 0
    assert all(r.detail["calibrated"] is False for r in raw)


def test_result_shape(model: Any) -> None:
    results = _run(model, 0, metrics=("accuracy", "precision", "recall", "f1", "auc", "log_loss"))
    assert len(results) == 12
    first = results[0]
    assert first.check == "estimated_performance"
    assert first.column == "label"
    assert first.segment == "window=2025-12-01T00:00:00+00:00"
    assert first.status == "ok"
    assert first.interval is not None and first.statistic is not None
    assert first.interval[0] <= first.statistic <= first.interval[1]
    detail = first.detail
    assert detail["estimated"] is True
    assert (detail["window_start"], detail["window_end"]) == (T0, T0 + HOUR)
    assert (detail["predicted"], detail["labelled"], detail["labelled_fraction"]) == (1000, 0, 0.0)
    assert detail["reference_rows"] == 3000
    assert "Estimated (CBPE, no labels)" in first.message
    assert CheckResult.from_dict(first.to_dict()) == first


@pytest.mark.slow
def test_multiclass_accuracy_and_auc() -> None:
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])

    def world(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, size=n)
        return centres[y] + rng.normal(0.0, 1.0, size=(n, 2)), y

    model = LogisticRegression().fit(*world(3000))

    def frame(n: int) -> pd.DataFrame:
        x, y = world(n)
        proba = model.predict_proba(x)
        columns = {f"proba_{c}": proba[:, c] for c in range(3)}
        return pd.DataFrame(
            {"ts": T0, "prediction": model.predict(x), "label": pd.Series(y, dtype=object)}
            | columns
        )

    reference = frame(3000)
    covered = []
    for seed in range(10):
        current = frame(1000)
        estimated = estimate_performance(
            reference, current, metrics=["accuracy", "roc_auc"], by=(), seed=seed
        )
        realised = performance(current, metrics=["accuracy", "auc"], by=())
        covered += [
            r.detail["realised_within_interval"] for r in compare_estimate(estimated, realised)
        ]
    assert sum(covered) >= 17


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=4, max_size=40))
def test_certain_probabilities_give_the_realised_metric_exactly(
    rows: list[tuple[bool, bool]],
) -> None:
    # Probabilities of 0 and 1 leave nothing to estimate: the expected confusion matrix
    # is the realised one, and every simulated draw equals it.
    labels = np.array([int(y) for y, _ in rows])
    frame = pd.DataFrame(
        {
            "ts": T0,
            "prediction": [int(p) for _, p in rows],
            "proba_1": labels.astype(float),
            "label": pd.Series(labels, dtype=object),
        }
    )
    reference = pd.DataFrame({"prediction": [0, 1], "proba_1": [0.0, 1.0], "label": [0, 1]})
    metrics = ["accuracy", "precision", "recall", "f1"]
    estimated = estimate_performance(
        reference, frame, metrics=metrics, by=(), calibrate=False, min_rows=2, n_simulations=20
    )
    realised = performance(frame, metrics=metrics, by=(), min_labels=2)
    for estimate, real in zip(estimated, realised, strict=True):
        assert estimate.statistic == pytest.approx(real.statistic)
        assert estimate.interval == pytest.approx((real.statistic, real.statistic))


def test_small_segments_are_no_data(model: Any) -> None:
    rng = np.random.default_rng(0)
    x = _features(rng, 1050)
    frame = _frame(model, x, _labels(rng, x))
    results = estimate_performance(frame, frame, metrics=["accuracy"], window="1h")
    assert [r.status for r in results] == ["ok", "no_data"]
    assert results[1].message.endswith("only 50 of 100 rows.")
    assert results[1].detail["estimated"] is True
    [compared] = compare_estimate(results[1:], performance(frame, window="1h"))
    assert compared.detail["realised"] is None
    assert compared.detail["realised_within_interval"] is None


def test_thresholds_judge_estimates(model: Any) -> None:
    rng = np.random.default_rng(0)
    x = _features(rng, 1000)
    frame = _frame(model, x, _labels(rng, x))
    table = pa.Table.from_pandas(frame.astype({"label": "int64"}), preserve_index=False)
    [result] = estimate_performance(
        table, table, metrics=["accuracy"], by=(), thresholds={"accuracy": (">=", 0.95)}
    )
    assert result.status == "alert"
    assert result.threshold == 0.95


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda r, c: (r.drop(columns="proba_1"), c), InvalidParameter, "no proba_<class> column"),
        (
            lambda r, c: (r, c.drop(columns="proba_1")),
            InvalidParameter,
            "lacks the column 'proba_1'",
        ),
        (lambda r, c: (r.head(50), c), InsufficientData, "50 labelled rows"),
        (
            lambda r, c: (r.assign(label=1), c),
            InvalidParameter,
            "must hold '1' and one other class",
        ),
        (lambda r, c: (r.assign(label="yes"), c), InvalidParameter, "must hold '1' and one other"),
        (lambda r, c: (r, c.head(0)), InsufficientData, "has no rows"),
        (lambda r, c: (r, c.assign(proba_1=2.0)), InvalidParameter, "Got 2.0 instead"),
    ],
)
def test_bad_frames(model: Any, change: Any, error: type[Exception], message: str) -> None:
    rng = np.random.default_rng(0)
    x = _features(rng, 400)
    frame = _frame(model, x, _labels(rng, x))
    reference, current = change(frame, frame)
    with pytest.raises(error, match=message):
        estimate_performance(reference, current, by=())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["rmse"]}, "names among accuracy, precision, recall, f1, auc, log_loss"),
        ({"n_simulations": 1}, "The 'n_simulations' parameter"),
        ({"calibrate": "yes"}, "The 'calibrate' parameter"),
        ({"confidence": 0}, "The 'confidence' parameter"),
    ],
)
def test_bad_arguments(model: Any, kwargs: dict[str, Any], message: str) -> None:
    rng = np.random.default_rng(0)
    x = _features(rng, 200)
    frame = _frame(model, x, _labels(rng, x))
    with pytest.raises(InvalidParameter, match=message):
        estimate_performance(frame, frame, **kwargs)


def test_compare_estimate_takes_estimates_only(model: Any) -> None:
    rng = np.random.default_rng(0)
    x = _features(rng, 200)
    realised = performance(_frame(model, x, _labels(rng, x)), by=())
    with pytest.raises(InvalidParameter, match="'estimated_performance' check"):
        compare_estimate(realised, realised)
