"""Realised performance with delayed labels: loopml.monitoring.performance.

Real models (scikit-learn's bundled datasets, trained here), metrics checked against
scikit-learn's own, segments, labelled fractions, thresholds and bad input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.errors import InsufficientData, InvalidParameter
from loopml.monitoring import CheckResult, performance

DAY = 86_400_000
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z


def _log(
    predictions: Any, labels: Any, proba: dict[str, Any] | None = None, seed: int = 0
) -> pd.DataFrame:
    """A prediction-log frame: two days, two routes, two model versions, shuffled times."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "ts": T0 + rng.integers(0, 2 * DAY, size=n),
            "route": rng.choice(["primary:m@champion", "canary:m/2"], size=n),
            "model_version": rng.choice(["m/1", "m/2"], size=n),
            "prediction": list(predictions),
            "label": pd.Series(list(labels), dtype=object),
        }
    )
    for name, values in (proba or {}).items():
        frame[name] = values
    return frame


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x_train, y_train)
    proba = model.predict_proba(x_test)[:, 1]
    predicted = model.predict(x_test)
    frame = _log(predicted, y_test, {"proba_1": proba})
    return frame, y_test, predicted, proba


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0)
    predicted = Ridge(alpha=0.1).fit(x_train, y_train).predict(x_test)
    return _log(predicted, y_test), y_test, predicted


def _by_method(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.method: r for r in results}


def test_classifier_metrics_match_scikit_learn(cancer: Any) -> None:
    frame, y, predicted, proba = cancer
    results = _by_method(performance(frame, by=(), min_labels=100))
    assert list(results) == ["accuracy", "precision", "recall", "f1", "auc", "log_loss"]
    expected = {
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, average="weighted"),
        "recall": skm.recall_score(y, predicted, average="weighted"),
        "f1": skm.f1_score(y, predicted, average="weighted"),
        "auc": skm.roc_auc_score(y, proba),
        "log_loss": skm.log_loss(y, proba),
    }
    for name, value in expected.items():
        result = results[name]
        assert result.check == "performance"
        assert result.column == "label"
        assert result.statistic == pytest.approx(value, rel=1e-9)
        assert result.status == "ok"
        assert result.interval is not None
        assert result.interval[0] <= result.statistic <= result.interval[1]
        assert result.detail["labelled"] == len(y) == result.detail["predicted"]
        assert result.detail["labelled_fraction"] == 1.0
        assert result.detail["estimated"] is False


def test_regressor_metrics_match_scikit_learn(diabetes: Any) -> None:
    frame, y, predicted = diabetes
    results = _by_method(performance(frame, by=()))
    assert list(results) == ["rmse", "mae", "r2"]
    assert results["rmse"].statistic == pytest.approx(np.sqrt(skm.mean_squared_error(y, predicted)))
    assert results["mae"].statistic == pytest.approx(skm.mean_absolute_error(y, predicted))
    assert results["r2"].statistic == pytest.approx(skm.r2_score(y, predicted))


def test_multiclass_auc_and_log_loss_use_one_column_per_class() -> None:
    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.6, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    frame = _log(model.predict(x_test), y_test, {f"proba_{c}": proba[:, c] for c in range(3)})
    results = _by_method(performance(frame, by=(), metrics=["accuracy", "roc_auc", "log_loss"]))
    assert results["auc"].statistic == pytest.approx(
        skm.roc_auc_score(y_test, proba, multi_class="ovr")
    )
    assert results["log_loss"].statistic == pytest.approx(skm.log_loss(y_test, proba))


def test_segments_by_window_route_and_version_count_every_row(cancer: Any) -> None:
    frame, *_ = cancer
    results = performance(
        frame, metrics=["accuracy"], by=("window", "route", "model_version"), min_labels=2
    )
    assert len(results) == 2 * 2 * 2
    assert sum(r.detail["predicted"] for r in results) == len(frame)
    first = results[0]
    assert first.segment == (
        "window=2025-12-01T00:00:00+00:00, route=canary:m/2, model_version=m/1"
    )
    assert (first.detail["window_start"], first.detail["window_end"]) == (T0, T0 + DAY)
    starts = [r.detail["window_start"] for r in results]
    assert starts == sorted(starts)


def test_too_few_labels_is_no_data_and_says_how_many(cancer: Any) -> None:
    frame, *_ = cancer
    partial = frame.copy()
    partial.loc[partial.index[37:], "label"] = None
    [result] = performance(partial, metrics=["accuracy"], by=())
    assert result.status == "no_data"
    assert result.statistic is None
    assert "only 37 of 100 labels" in result.message
    assert result.detail["labelled"] == 37
    assert result.detail["labelled_fraction"] == pytest.approx(37 / len(frame))


def test_labelled_fraction_with_delayed_labels(cancer: Any) -> None:
    frame, y, predicted, _ = cancer
    partial = frame.copy()
    rng = np.random.default_rng(3)
    missing = rng.random(len(frame)) < 0.4
    partial.loc[missing, "label"] = np.nan
    [result] = performance(partial, metrics=["accuracy"], by=())
    assert result.detail["labelled"] == int((~missing).sum())
    assert result.statistic == pytest.approx(skm.accuracy_score(y[~missing], predicted[~missing]))


def test_a_pyarrow_table_gives_the_same_results(cancer: Any) -> None:
    frame, *_ = cancer
    table = pa.Table.from_pandas(frame.astype({"label": "float64"}), preserve_index=False)
    assert performance(table, by=("route",)) == performance(frame, by=("route",))


def test_intervals_are_seeded(cancer: Any) -> None:
    frame, *_ = cancer
    assert performance(frame, seed=7) == performance(frame, seed=7)
    assert performance(frame, seed=7, by=()) != performance(frame, seed=8, by=())


def test_threshold_alerts_only_when_the_whole_interval_breaks_it(cancer: Any) -> None:
    frame, *_ = cancer
    [accuracy] = performance(frame, metrics=["accuracy"], by=())
    assert accuracy.statistic is not None and accuracy.interval is not None
    low, high = accuracy.interval
    [clear] = performance(
        frame, metrics=["accuracy"], by=(), thresholds={"accuracy": (">=", high + 0.01)}
    )
    assert clear.status == "alert"
    assert clear.threshold == high + 0.01
    assert "whole interval" in clear.message
    [unsure] = performance(
        frame,
        metrics=["accuracy"],
        by=(),
        thresholds={"accuracy": (">=", (accuracy.statistic + high) / 2)},
    )
    assert unsure.status == "ok"
    assert "not significantly" in unsure.message
    [fine] = performance(frame, metrics=["accuracy"], by=(), thresholds={"accuracy": (">=", low)})
    assert fine.status == "ok"
    assert "within the bound" in fine.message


def test_thresholds_read_from_yaml_are_lists(cancer: Any) -> None:
    frame, *_ = cancer
    [as_list] = performance(
        frame, metrics=["accuracy"], by=(), thresholds={"accuracy": [">=", 0.99]}
    )
    [as_tuple] = performance(
        frame, metrics=["accuracy"], by=(), thresholds={"accuracy": (">=", 0.99)}
    )
    assert as_list == as_tuple
    assert as_list.status == "alert"


def test_timestamps_window_like_milliseconds(cancer: Any) -> None:
    frame, *_ = cancer
    stamped = frame.assign(ts=pd.to_datetime(frame["ts"], unit="ms", utc=True))
    assert performance(stamped, metrics=["accuracy"]) == performance(frame, metrics=["accuracy"])


def test_error_thresholds_bound_from_above(diabetes: Any) -> None:
    frame, *_ = diabetes
    [rmse] = performance(frame, metrics=["rmse"], by=(), thresholds={"rmse": ("<=", 30)})
    assert rmse.status == "alert"  # diabetes RMSE is ~55
    [rmse] = performance(frame, metrics=["rmse"], by=(), thresholds={"rmse": ("<=", 100)})
    assert rmse.status == "ok"


def test_baseline_with_relative_tolerance(cancer: Any) -> None:
    frame, *_ = cancer
    baseline = {"accuracy": 1.0, "train_seconds": 12.0}  # the version's metrics, extras ignored
    [result] = performance(frame, metrics=["accuracy"], by=(), baseline=baseline, tolerance=0.01)
    assert result.threshold == pytest.approx(0.99)
    assert result.status == "alert"
    assert "baseline 1 - 1%" in result.message
    [result] = performance(frame, metrics=["accuracy"], by=(), baseline=baseline, tolerance=0.2)
    assert result.status == "ok"


def test_undefined_metric_is_no_data() -> None:
    frame = _log([1] * 150, [1] * 150, {"proba_1": np.linspace(0.5, 1.0, 150)})
    [auc] = performance(frame, metrics=["auc"], by=())
    assert auc.status == "no_data"
    assert "undefined" in auc.message


@pytest.mark.parametrize(
    ("predictions", "labels", "expected"),
    [
        (["cat", "dog"] * 3, ["dog", "cat"] * 3, "classification"),
        ([0.5, 1.5] * 3, [1.0, 2.0] * 3, "regression"),
        ([0, 1] * 3, [1, 1] * 3, "classification"),
    ],
)
def test_task_is_inferred(predictions: list[Any], labels: list[Any], expected: str) -> None:
    results = performance(_log(predictions, labels), by=(), min_labels=2)
    methods = {r.method for r in results}
    assert methods == (
        {"rmse", "mae", "r2"}
        if expected == "regression"
        else {"accuracy", "precision", "recall", "f1"}
    )


@pytest.mark.parametrize(
    ("predictions", "labels", "task", "message"),
    [
        (
            [1.5, 2.5],
            ["high", "low"],
            "regression",
            "The 'label' column must hold finite numbers for a regression task. Got 'high' (str)",
        ),
        ([1.5, 2.5], [1.0, True], "regression", "Got True (bool)"),
        ([1, 0], [[1], [0]], None, "The 'label' column must hold class labels"),
        ([1, 0], [0.5, 1.0], "classification", "Got 0.5 (float)"),
        (
            ["yes", "no"],
            [1, 0],
            None,
            "The 'label' column holds numbers (e.g. 1) but the model predicts text",
        ),
        ([1, 0], ["1", 0], None, "The 'label' column mixes text ('1') and numbers (0)"),
    ],
)
def test_labels_of_the_wrong_type_name_the_column_and_value(
    predictions: list[Any], labels: list[Any], task: Any, message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(")", r"\)")):
        performance(_log(predictions, labels), task=task, by=(), min_labels=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"metrics": ["rmse"]},
            "The 'metrics' parameter of performance must be names among accuracy",
        ),
        ({"metrics": "accuracy"}, "a non-empty sequence of metric names"),
        ({"window": "1 day"}, "The 'window' parameter of performance must be a duration"),
        ({"by": ("hour",)}, "The 'by' parameter"),
        ({"min_labels": 1}, "The 'min_labels' parameter"),
        ({"confidence": 1.0}, "The 'confidence' parameter"),
        ({"task": "ranking"}, "The 'task' parameter"),
        ({"thresholds": {"accuracy": (">", 0.8)}}, "The 'thresholds' parameter"),
        (
            {"thresholds": {"accuracy": (">=", 0.8)}, "baseline": {"accuracy": 0.9}},
            "free of metrics that 'thresholds' bounds",
        ),
        ({"baseline": {"accuracy": 0.9}, "tolerance": 1.5}, "The 'tolerance' parameter"),
    ],
)
def test_bad_arguments(cancer: Any, kwargs: dict[str, Any], message: str) -> None:
    frame, *_ = cancer
    with pytest.raises(InvalidParameter, match=message):
        performance(frame, **kwargs)


def test_bad_frames() -> None:
    with pytest.raises(InsufficientData, match="has no rows"):
        performance(_log([], []))
    with pytest.raises(InvalidParameter, match="pandas DataFrame or a pyarrow Table"):
        performance({"ts": [1]})
    with pytest.raises(InvalidParameter, match="no 'route' column"):
        performance(_log([1], [1]).drop(columns="route"), by=("route",))
    with pytest.raises(InvalidParameter, match="integer milliseconds"):
        performance(_log([1], [1]).astype({"ts": "float64"}))
    with pytest.raises(InvalidParameter, match="free of auc and log_loss"):
        performance(_log([1, 0], [1, 0]), metrics=["auc"])
    with pytest.raises(InvalidParameter, match=r"'proba_1' column must hold probabilities"):
        performance(_log([1, 0], [1, 0], {"proba_1": [0.2, 1.5]}), by=(), min_labels=2)
    with pytest.raises(InvalidParameter, match="no probability column"):
        performance(
            _log([1, 0], [2, 0], {"proba_0": [0.2, 0.5], "proba_1": [0.8, 0.5]}),
            by=(),
            min_labels=2,
        )


def test_too_many_segments_is_refused() -> None:
    frame = _log([1] * 10_001, [1] * 10_001).assign(ts=T0 + np.arange(10_001) * 1000)
    with pytest.raises(InvalidParameter, match="10001 segments, more than 10000"):
        performance(frame, window="1s")


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10 * DAY),
            st.sampled_from(["a", "b", "c"]),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(["1h", "6h", "1d"]),
)
def test_segments_partition_the_rows(rows: list[tuple[int, str, bool, bool]], window: str) -> None:
    frame = pd.DataFrame(
        {
            "ts": np.array([r[0] for r in rows], dtype=np.int64),
            "route": [r[1] for r in rows],
            "model_version": "m/1",
            "prediction": [int(r[2]) for r in rows],
            "label": pd.Series([int(r[2]) if r[3] else None for r in rows], dtype=object),
        }
    )
    results = performance(
        frame, metrics=["accuracy"], by=("window", "route"), window=window, min_labels=2
    )
    assert sum(r.detail["predicted"] for r in results) == len(rows)
    assert sum(r.detail["labelled"] for r in results) == sum(r[3] for r in rows)
    for result in results:
        start, end = result.detail["window_start"], result.detail["window_end"]
        route = result.segment.split("route=")[1]
        inside = [r for r in rows if start <= r[0] < end and r[1] == route]
        assert len(inside) == result.detail["predicted"]
        if result.status == "no_data":
            assert result.detail["labelled"] < 2
        else:
            assert result.statistic == 1.0  # every label equals its prediction here
