"""Comparing routes on live traffic: the log joined with feedback, intervals and tests.

Prediction logs are written with the real :class:`PredictionLog` and labels with
the real :func:`record_feedback`, on every back-end, for endpoint ``credit`` of
project ``p`` (routes ``credit@champion:90``, ``credit/2:10:canary`` and
``credit/3:shadow``). Each request's correctness follows a fixed pseudo-random
pattern, so every accuracy below is exact and every result reproducible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier

from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound, InvalidParameter
from loopml.registry import RegistryClient
from loopml.serving._compare import (
    RouteComparison,
    compare_predictions,
    compare_routes,
)
from loopml.serving._deployments import DeploymentClient
from loopml.serving._feedback import record_feedback
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.store import open_store

ENDPOINT = "credit"
PRIMARY, CANARY, SHADOW = "primary:credit@champion", "canary:credit/2", "shadow:credit/3"
T0 = 1_700_000_000_000


@dataclass
class Log:
    """An endpoint deployed in a real store, and a way to log traffic and feedback to it."""

    store: Any
    artifacts: ArtifactStore
    folder: Path

    def write(self, records: Sequence[PredictionRecord], labels: dict[str, Any]) -> None:
        with PredictionLog(self.folder, self.store, self.artifacts, "test") as log:
            for record in records:
                log.append(record, wait=False)
            log.flush()
        record_feedback(self.store, ENDPOINT, labels.items())

    def compare(self, **options: Any) -> RouteComparison:
        return compare_routes(self.store, self.artifacts, ENDPOINT, project="p", **options)


@pytest.fixture
def log(store_uri: str, tmp_path: Path) -> Iterator[Log]:
    store = open_store(store_uri)
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    registry = RegistryClient(store, artifacts)
    features, target = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
    for _ in range(3):
        registry.register(DummyClassifier().fit(features, target), "credit", project="p")
    registry.promote("credit/1", project="p", force=True, reason="test setup")
    DeploymentClient(store, registry).set(
        ENDPOINT, ["credit@champion:90", "credit/2:10:canary", "credit/3:shadow"], project="p"
    )
    yield Log(store, artifacts, tmp_path / "wal")
    store.close()


def _correct(i: int, accuracy: float, salt: int = 0) -> bool:
    """Whether request ``i`` is answered right: exactly ``accuracy`` of every 100 are."""
    return (i * 37 + salt) % 100 < round(accuracy * 100)


def _traffic(
    route: str,
    version: str,
    count: int,
    accuracy: float,
    *,
    prefix: str,
    salt: int = 0,
    ts: int = T0,
) -> tuple[list[PredictionRecord], dict[str, int]]:
    """``count`` one-row requests answered by ``route``, and their true labels."""
    records, labels = [], {}
    for i in range(count):
        truth = i % 2
        predicted = truth if _correct(i, accuracy, salt) else 1 - truth
        request_id = f"{prefix}-{i:05d}"
        records.append(
            PredictionRecord(
                request_id, ENDPOINT, route, version, [{"x": i}], [predicted], 1.0 + i % 10, ts + i
            )
        )
        labels[request_id] = truth
    return records, labels


def _shadow(
    answered: Sequence[PredictionRecord], labels: dict[str, int], accuracy: float
) -> list[PredictionRecord]:
    """``shadow:credit/3`` scoring a copy of each answered request."""
    return [
        PredictionRecord(
            f"{record.request_id}:shadow:credit/3",
            ENDPOINT,
            SHADOW,
            "credit/3",
            record.inputs,
            [
                labels[record.request_id]
                if _correct(i, accuracy, 11)
                else 1 - labels[record.request_id]
            ],
            2.0,
            record.ts + 1,
        )
        for i, record in enumerate(answered)
    ]


def test_a_clearly_better_canary_is_significant(log: Log) -> None:
    primary, primary_labels = _traffic(PRIMARY, "credit/1", 600, 0.70, prefix="p")
    canary, canary_labels = _traffic(CANARY, "credit/2", 300, 0.95, prefix="c")
    log.write(primary + canary, primary_labels | canary_labels)

    result = log.compare()
    assert (result.endpoint, result.metric, result.baseline) == (ENDPOINT, "accuracy", PRIMARY)
    assert result.higher_is_better and result.confidence == 0.95
    base, other = result.routes
    assert (base.route, base.mode, base.model_versions) == (PRIMARY, "primary", ("credit/1",))
    assert (other.route, other.mode, other.model_versions) == (CANARY, "canary", ("credit/2",))
    assert (base.predictions, base.labelled, other.predictions, other.labelled) == (
        600,
        600,
        300,
        300,
    )
    assert base.metric is not None and other.metric is not None
    assert base.metric.value == pytest.approx(0.70)
    assert other.metric.value == pytest.approx(0.95)
    assert base.metric.low < 0.70 < base.metric.high
    assert (base.latency_p50_ms, base.latency_p95_ms) == (5.5, 10.0)

    difference = result.difference(CANARY)
    assert difference is not None and difference.difference is not None
    assert not difference.paired
    assert (difference.n_route, difference.n_baseline) == (300, 600)
    assert difference.difference.value == pytest.approx(0.25)
    assert 0 < difference.difference.low < 0.25 < difference.difference.high
    assert difference.test == "two-proportion z-test"
    assert difference.p_value is not None and difference.p_value < 1e-6
    assert difference.significant and difference.verdict == "better"
    assert result.difference(PRIMARY) is None
    assert result.summary.startswith(
        f"On accuracy, {CANARY} is significantly better than {PRIMARY}"
    )


def test_equal_models_do_not_differ_significantly(log: Log) -> None:
    primary, primary_labels = _traffic(PRIMARY, "credit/1", 800, 0.80, prefix="p")
    canary, canary_labels = _traffic(CANARY, "credit/2", 200, 0.80, prefix="c", salt=3)
    log.write(primary + canary, primary_labels | canary_labels)

    difference = log.compare().difference(CANARY)
    assert difference is not None and difference.difference is not None
    assert difference.difference.low < 0 < difference.difference.high
    assert difference.p_value is not None and difference.p_value > 0.5
    assert not difference.significant
    assert difference.verdict == "no_difference"


def test_a_shadow_is_compared_paired_on_the_requests_it_copied(log: Log) -> None:
    primary, labels = _traffic(PRIMARY, "credit/1", 500, 0.90, prefix="p")
    canary, canary_labels = _traffic(CANARY, "credit/2", 50, 0.90, prefix="c")
    # The shadow copies every request, but only the primary's are paired with it.
    shadow = _shadow(primary, labels, 0.60) + _shadow(canary, canary_labels, 0.60)
    log.write(primary + canary + shadow, labels | canary_labels)

    result = log.compare()
    assert [r.route for r in result.routes] == [PRIMARY, CANARY, SHADOW]
    stats = result.routes[2]
    # Labelled through the request each shadow prediction copied.
    assert (stats.predictions, stats.labelled, stats.latency_p50_ms) == (550, 550, 2.0)
    difference = result.difference(SHADOW)
    assert difference is not None and difference.difference is not None
    assert difference.paired
    assert (difference.n_route, difference.n_baseline) == (500, 500)
    assert difference.difference.value == pytest.approx(0.60 - 0.90)
    assert difference.test == "McNemar exact test"
    assert difference.significant and difference.verdict == "worse"
    assert f"{SHADOW} is significantly worse than {PRIMARY}" in result.summary


def test_too_few_labels_are_undecided_however_large_the_gap(log: Log) -> None:
    primary, primary_labels = _traffic(PRIMARY, "credit/1", 400, 0.50, prefix="p")
    canary, canary_labels = _traffic(CANARY, "credit/2", 100, 1.0, prefix="c")
    labelled = dict(list(canary_labels.items())[:12])  # feedback for 12 canary requests
    log.write(primary + canary, primary_labels | labelled)

    result = log.compare()
    canary_stats = result.routes[1]
    assert (canary_stats.predictions, canary_stats.labelled) == (100, 12)
    difference = result.difference(CANARY)
    assert difference is not None and difference.difference is not None
    assert difference.difference.value == pytest.approx(0.5)
    assert difference.p_value is None
    assert not difference.significant
    assert difference.verdict == "too_few_labels"
    assert (
        f"{CANARY} has too few labelled predictions to decide (12 of 30 needed)" in result.summary
    )
    # With a lower bar the same data decides.
    decided = log.compare(min_labelled=10).difference(CANARY)
    assert decided is not None and decided.verdict == "better"


def test_a_route_without_labels_is_reported_without_a_metric(log: Log) -> None:
    primary, labels = _traffic(PRIMARY, "credit/1", 40, 0.9, prefix="p")
    canary, _ = _traffic(CANARY, "credit/2", 5, 0.9, prefix="c")
    log.write(primary + canary, labels)
    result = log.compare()
    assert result.routes[1].labelled == 0 and result.routes[1].metric is None
    difference = result.difference(CANARY)
    assert difference is not None
    assert difference.difference is None and difference.verdict == "too_few_labels"
    assert "(0 of 30 needed)" in result.summary


def test_baseline_metric_and_since_can_be_chosen(log: Log) -> None:
    primary, primary_labels = _traffic(PRIMARY, "credit/1", 300, 0.70, prefix="p")
    canary, canary_labels = _traffic(CANARY, "credit/2", 300, 0.95, prefix="c", ts=T0 + 10_000)
    log.write(primary + canary, primary_labels | canary_labels)

    flipped = log.compare(baseline="credit/2", metric="f1")
    assert flipped.baseline == CANARY and flipped.metric == "f1"
    difference = flipped.difference(PRIMARY)
    assert difference is not None and difference.difference is not None
    assert difference.difference.value < 0 and difference.verdict == "worse"
    assert difference.test == "bootstrap interval" and difference.p_value is None
    assert log.compare(baseline=CANARY).baseline == CANARY

    later = log.compare(since_ms=T0 + 10_000)
    assert [r.route for r in later.routes] == [CANARY]
    assert later.differences == ()
    assert later.summary == f"Only {CANARY} has predictions; there is nothing to compare it with."


def test_regression_defaults_to_rmse_and_lower_is_better(log: Log) -> None:
    records, labels = [], {}
    for i in range(200):
        truth = float(i % 17) + 0.5
        for route, version, error in ((PRIMARY, "credit/1", 2.0), (CANARY, "credit/2", 0.5)):
            request_id = f"{route[0]}-{i}"
            sign = 1 if i % 2 else -1
            records.append(
                PredictionRecord(
                    request_id, ENDPOINT, route, version, [{}], [truth + sign * error], 1.0
                )
            )
            labels[request_id] = truth
    log.write(records, labels)

    result = log.compare()
    assert result.metric == "rmse" and not result.higher_is_better
    assert result.routes[0].metric is not None
    assert result.routes[0].metric.value == pytest.approx(2.0)
    difference = result.difference(CANARY)
    assert difference is not None and difference.difference is not None
    assert difference.difference.value == pytest.approx(-1.5)
    assert difference.test == "Welch t-test on squared errors"
    assert difference.verdict == "better"
    mae = log.compare(metric="mae").difference(CANARY)
    assert mae is not None and mae.test == "Welch t-test on absolute errors"
    assert mae.verdict == "better"


def test_multi_row_requests_pair_with_a_list_of_labels(log: Log) -> None:
    records = [
        PredictionRecord(f"r{i}", ENDPOINT, PRIMARY, "credit/1", [{}, {}, {}], ["a", "b", "a"], 1.0)
        for i in range(20)
    ]
    labels: dict[str, Any] = {f"r{i}": ["a", "b", "b"] for i in range(18)}
    labels["r18"] = ["a", "b"]  # wrong length
    labels["r19"] = "a"  # a bare label for three rows
    log.write(records, labels)
    result = log.compare()
    stats = result.routes[0]
    assert (stats.predictions, stats.labelled, stats.unmatched_labels) == (20, 54, 2)
    assert stats.metric is not None and stats.metric.value == pytest.approx(2 / 3)


def test_errors(log: Log) -> None:
    with pytest.raises(DeploymentNotFound, match="'nope'"):
        compare_routes(log.store, log.artifacts, "nope", project="p")
    with pytest.raises(InvalidParameter, match="no logged predictions since"):
        log.compare(since_ms=T0)
    primary, labels = _traffic(PRIMARY, "credit/1", 40, 0.9, prefix="p")
    log.write(primary, {})
    with pytest.raises(InvalidParameter, match=r"has feedback yet.*/v1/endpoints/credit/feedback"):
        log.compare()
    record_feedback(log.store, ENDPOINT, labels.items())
    for metric in ("auc", "log_loss", "nope"):
        with pytest.raises(InvalidParameter, match="'metric' parameter must be one of accuracy"):
            log.compare(metric=metric)
    with pytest.raises(InvalidParameter, match=r"'baseline'.*primary:credit@champion"):
        log.compare(baseline="credit/9")
    for bad in ({"confidence": 1.0}, {"min_labelled": 1}, {"n_resamples": 0}):
        with pytest.raises(InvalidParameter, match=f"'{next(iter(bad))}'"):
            log.compare(**bad)


def test_labels_that_no_metric_can_compare(log: Log) -> None:
    records = [
        PredictionRecord(f"r{i}", ENDPOINT, PRIMARY, "credit/1", [{}], ["yes"], 1.0)
        for i in range(4)
    ]
    log.write(records, {"r0": "yes", "r1": 1})
    with pytest.raises(InvalidParameter, match=r"mix text \('yes'\) and numbers \(1\)"):
        log.compare()
    with pytest.raises(InvalidParameter, match="'rmse' needs numeric"):
        compare_predictions(_frame({PRIMARY: [("yes", "no")]}), metric="rmse")


# -- compare_predictions on frames at hand ----------------------------------------------------


def _frame(
    routes: dict[str, list[tuple[Any, Any]]], paired_with: str | None = None
) -> pd.DataFrame:
    """A frame like ``predictions(with_feedback=True)``: ``(prediction, label)`` per request.

    Requests of ``shadow:`` routes copy, in order, those of ``paired_with`` (and carry
    no label of their own, like the log's).
    """
    rows = []
    for route, pairs in routes.items():
        shadow = route.startswith("shadow:")
        for i, (predicted, label) in enumerate(pairs):
            answered = f"{paired_with}-{i}" if shadow else f"{route}-{i}"
            rows.append(
                {
                    "request_id": f"{answered}:shadow:x" if shadow else answered,
                    "ts": T0 + i,
                    "endpoint": ENDPOINT,
                    "route": route,
                    "model_version": route.split(":")[1],
                    "latency_ms": 1.0,
                    "inputs": "[{}]",
                    "output": json.dumps([predicted]),
                    "label": None if shadow else label,
                }
            )
    return pd.DataFrame(rows)


def test_a_frame_must_have_the_log_s_columns() -> None:
    with pytest.raises(InvalidParameter, match=r"'frame'.*without \['label'\]"):
        compare_predictions(_frame({PRIMARY: [(1, 1)]}).drop(columns="label"))
    with pytest.raises(InvalidParameter, match="no predictions"):
        compare_predictions(_frame({PRIMARY: [(1, 1)]}).iloc[:0])


_outcomes = st.lists(st.booleans(), min_size=1, max_size=80)


@settings(max_examples=40, deadline=None)
@given(primary=_outcomes, canary=_outcomes, shadow=_outcomes, min_labelled=st.integers(2, 40))
def test_intervals_hold_their_estimates_and_significance_needs_evidence(
    primary: list[bool], canary: list[bool], shadow: list[bool], min_labelled: int
) -> None:
    shadow = (shadow * len(primary))[: len(primary)]  # one shadow answer per primary request
    frame = _frame(
        {
            PRIMARY: [(1, 1 if right else 0) for right in primary],
            CANARY: [(1, 1 if right else 0) for right in canary],
            SHADOW: [
                (1 if right else 0, 1 if truth else 0)
                for right, truth in zip(shadow, primary, strict=True)
            ],
        },
        paired_with=PRIMARY,
    )
    result = compare_predictions(frame, min_labelled=min_labelled, n_resamples=200)
    assert result.baseline == PRIMARY
    for stats in result.routes:
        assert stats.metric is not None
        assert stats.metric.low - 1e-9 <= stats.metric.value <= stats.metric.high + 1e-9
    base = result.routes[0].metric
    assert base is not None and base.value == pytest.approx(np.mean(primary))
    for difference in result.differences:
        estimate = difference.difference
        assert estimate is not None
        assert estimate.low - 1e-9 <= estimate.value <= estimate.high + 1e-9
        assert difference.paired == (difference.route == SHADOW)
        enough = min(difference.n_route, difference.n_baseline) >= min_labelled
        assert (difference.p_value is not None) == enough
        if difference.significant:
            assert enough and estimate.excludes_zero()
            assert difference.p_value is not None and difference.p_value < 0.05
            assert difference.verdict == ("better" if estimate.value > 0 else "worse")
        else:
            assert difference.verdict == ("no_difference" if enough else "too_few_labels")
    canary_difference = result.difference(CANARY)
    assert canary_difference is not None and canary_difference.difference is not None
    assert canary_difference.difference.value == pytest.approx(np.mean(canary) - np.mean(primary))
    assert not math.isnan(canary_difference.difference.low)
