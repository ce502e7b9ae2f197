"""Tests of loopml.registry._stats: named metrics, paired bootstrap, McNemar, parity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as skm

from loopml.errors import InvalidParameter
from loopml.registry import _stats
from loopml.registry._stats import (
    METRICS,
    Interval,
    demographic_parity_difference,
    get_metric,
    mcnemar,
    paired_bootstrap,
)

N = 600


@pytest.fixture(scope="module")
def binary() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, N)
    score = np.clip(0.35 * y + 0.65 * rng.random(N), 0, 1)
    return {"y": y, "score": score, "tied": np.round(score, 1), "pred": (score > 0.5).astype(int)}


@pytest.fixture(scope="module")
def multiclass() -> dict[str, Any]:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, N)
    proba = rng.dirichlet([1.0, 1.0, 1.0], N)
    proba[np.arange(N), y] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    return {"y": y, "proba": proba, "pred": proba.argmax(axis=1)}


@pytest.fixture(scope="module")
def regression() -> dict[str, Any]:
    rng = np.random.default_rng(9)
    y = rng.normal(1000.0, 5.0, N)  # a large mean exercises the centred r2
    return {"y": y, "pred": y + rng.normal(0.0, 2.0, N)}


def _weighted(name: str) -> Callable[[Any, Any], float]:
    score = getattr(skm, f"{name}_score")
    return lambda y, p: float(score(y, p, average="weighted", zero_division=0))


REFERENCE: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": skm.accuracy_score,
    "f1": _weighted("f1"),
    "precision": _weighted("precision"),
    "recall": _weighted("recall"),
    "auc": skm.roc_auc_score,
    "log_loss": skm.log_loss,
    "r2": skm.r2_score,
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
}


# --- the named metrics -------------------------------------------------------------


def test_metric_names_and_directions_are_pinned() -> None:
    assert sorted(METRICS) == sorted(REFERENCE)
    assert {n for n, m in METRICS.items() if not m.higher_is_better} == {"log_loss", "rmse", "mae"}
    assert {n for n, m in METRICS.items() if m.needs_proba} == {"auc", "log_loss"}
    assert all(m.name == n for n, m in METRICS.items())


@pytest.mark.parametrize("name", ["accuracy", "f1", "precision", "recall"])
def test_label_metrics_match_sklearn(
    name: str, binary: dict[str, Any], multiclass: dict[str, Any]
) -> None:
    for data in (binary, multiclass):
        expected = REFERENCE[name](data["y"], data["pred"])
        assert METRICS[name](data["y"], data["pred"]) == pytest.approx(expected, abs=1e-12)


def test_label_metrics_work_with_string_labels() -> None:
    y = np.array(["cat", "dog", "dog", "bird", "cat", "dog"])
    pred = np.array(["cat", "dog", "cat", "bird", "dog", "dog"])
    for name in ("accuracy", "f1", "precision", "recall"):
        assert METRICS[name](y, pred) == pytest.approx(REFERENCE[name](y, pred))


@pytest.mark.parametrize("key", ["score", "tied"])
def test_binary_auc_and_log_loss_match_sklearn(key: str, binary: dict[str, Any]) -> None:
    y, score = binary["y"], binary[key]
    assert METRICS["auc"](y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    two_columns = np.column_stack([1 - score, score])
    assert METRICS["auc"](y, two_columns) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert METRICS["log_loss"](y, score) == pytest.approx(skm.log_loss(y, score), abs=1e-9)


def test_multiclass_auc_is_one_vs_rest_macro(multiclass: dict[str, Any]) -> None:
    y, proba = multiclass["y"], multiclass["proba"]
    expected = skm.roc_auc_score(y, proba, multi_class="ovr")
    assert METRICS["auc"](y, proba) == pytest.approx(expected, abs=1e-12)
    assert METRICS["log_loss"](y, proba) == pytest.approx(skm.log_loss(y, proba), abs=1e-9)


def test_multiclass_auc_with_string_labels_uses_sorted_columns(multiclass: dict[str, Any]) -> None:
    names = np.array(["a", "b", "c"])[multiclass["y"]]
    expected = skm.roc_auc_score(multiclass["y"], multiclass["proba"], multi_class="ovr")
    assert METRICS["auc"](names, multiclass["proba"]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["r2", "rmse", "mae"])
def test_regression_metrics_match_sklearn(name: str, regression: dict[str, Any]) -> None:
    expected = REFERENCE[name](regression["y"], regression["pred"])
    assert METRICS[name](regression["y"], regression["pred"]) == pytest.approx(expected, rel=1e-9)


def test_get_metric_rejects_unknown_names() -> None:
    assert get_metric("auc") is METRICS["auc"]
    with pytest.raises(InvalidParameter, match="'metric' parameter must be one of"):
        get_metric("auroc")


@pytest.mark.parametrize(
    ("name", "y", "prediction", "message"),
    [
        ("auc", [0, 1, 2], [0.1, 0.2, 0.3], "needs a binary target"),
        ("auc", [0, 1, 5], np.full((3, 2), 0.5), "one column per class"),
        ("auc", ["a", "b", "a"], ["x", "y", "x"], "numeric scores"),
        ("accuracy", [0, 1], [[0, 1], [1, 0]], "one predicted label per row"),
        ("accuracy", [0, 1, 1], [0, 1], "one entry per row of y_true"),
        ("accuracy", [], [], "non-empty"),
    ],
)
def test_bad_inputs_are_rejected(name: str, y: Any, prediction: Any, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        METRICS[name](y, prediction)


# --- paired bootstrap ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["accuracy", "f1", "auc", "log_loss", "r2", "rmse", "mae"])
def test_vectorised_bootstrap_equals_a_loop_over_sklearn(
    name: str, binary: dict[str, Any], regression: dict[str, Any]
) -> None:
    # Same seed, same draws: the vectorised metric and sklearn per resample must agree.
    n = 150
    if name in ("r2", "rmse", "mae"):
        y = regression["y"][:n]
        cand, champ = regression["pred"][:n], y[::-1] * 0.001 + y * 0.999
    elif METRICS[name].needs_proba:
        y, cand, champ = binary["y"][:n], binary["score"][:n], binary["tied"][n : 2 * n]
    else:
        y, cand, champ = binary["y"][:n], binary["pred"][:n], 1 - binary["pred"][n : 2 * n]
    fast = paired_bootstrap(name, y, cand, champ, n_resamples=150, seed=3)
    slow = paired_bootstrap(REFERENCE[name], y, cand, champ, n_resamples=150, seed=3)
    assert fast.difference == pytest.approx(slow.difference, abs=1e-9)
    assert fast.low == pytest.approx(slow.low, abs=1e-9)
    assert fast.high == pytest.approx(slow.high, abs=1e-9)
    assert (fast.n_resamples, fast.confidence) == (150, 0.95)


def test_bootstrap_is_reproducible_and_depends_on_the_seed(binary: dict[str, Any]) -> None:
    y, pred = binary["y"], binary["pred"]
    other = np.where(np.arange(N) % 4 == 0, 1 - pred, pred)
    first = paired_bootstrap("accuracy", y, pred, other, n_resamples=300, seed=1)
    assert paired_bootstrap("accuracy", y, pred, other, n_resamples=300, seed=1) == first
    assert paired_bootstrap("accuracy", y, pred, other, n_resamples=300, seed=2) != first
    assert first.low <= first.difference <= first.high


def test_bootstrap_chunks_bound_memory_without_changing_the_answer(
    binary: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    y, score, tied = binary["y"], binary["score"], binary["tied"]
    whole = paired_bootstrap("auc", y, score, tied, n_resamples=400)
    monkeypatch.setattr(_stats, "_CHUNK_ELEMENTS", 7 * N)  # 7 resamples per chunk
    chunked = paired_bootstrap("auc", y, score, tied, n_resamples=400)
    assert chunked.difference == whole.difference
    assert chunked.low == pytest.approx(whole.low, abs=0.02)
    assert chunked.high == pytest.approx(whole.high, abs=0.02)


def test_bootstrap_separates_noise_from_a_real_gain() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 2000)
    champion = np.where(rng.random(2000) < 0.8, y, 1 - y)
    noise = np.where(rng.random(2000) < 0.8, y, 1 - y)
    better = np.where(rng.random(2000) < 0.9, y, 1 - y)
    tied = paired_bootstrap("accuracy", y, noise, champion)
    assert tied.low < 0 < tied.high
    gain = paired_bootstrap("accuracy", y, better, champion)
    assert gain.low > 0.05


def test_lower_is_better_sign_handling(regression: dict[str, Any]) -> None:
    y, good = regression["y"], regression["pred"]
    worse = y + 1.5 * (good - y)
    interval = paired_bootstrap("rmse", y, good, worse, n_resamples=500)
    assert interval.difference < 0 and interval.high < 0  # candidate's rmse is lower
    gain = interval.improvement(higher_is_better=METRICS["rmse"].higher_is_better)
    assert gain.difference == -interval.difference
    assert (gain.low, gain.high) == (-interval.high, -interval.low)
    assert gain.low > 0
    assert interval.improvement(higher_is_better=True) is interval


def test_interval_improvement_flips_and_swaps() -> None:
    interval = Interval(difference=-0.2, low=-0.5, high=0.1, n_resamples=10, confidence=0.9)
    assert interval.improvement(False) == Interval(0.2, -0.1, 0.5, 10, 0.9)


def test_identical_predictions_give_a_zero_interval(binary: dict[str, Any]) -> None:
    for name, pred in (("accuracy", binary["pred"]), ("auc", binary["score"])):
        interval = paired_bootstrap(name, binary["y"], pred, pred, n_resamples=200)
        assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_bootstrap_skips_undefined_resamples_but_not_all_of_them() -> None:
    y = np.array([0] * 9 + [1])
    scores = np.linspace(0, 1, 10)
    interval = paired_bootstrap("auc", y, scores, scores[::-1], n_resamples=300)
    assert np.isfinite([interval.low, interval.high]).all()
    with pytest.raises(InvalidParameter, match="undefined on every bootstrap resample"):
        paired_bootstrap("auc", np.zeros(10, int), scores, scores, n_resamples=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_resamples": 0}, "'n_resamples' parameter"),
        ({"n_resamples": 10.5}, "'n_resamples' parameter"),
        ({"confidence": 1.0}, "'confidence' parameter"),
        ({"confidence": 0}, "'confidence' parameter"),
    ],
)
def test_bootstrap_rejects_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        paired_bootstrap("accuracy", [0, 1], [0, 1], [1, 1], **kwargs)


def test_bootstrap_rejects_mismatched_lengths() -> None:
    with pytest.raises(InvalidParameter, match="'champion' must have one entry per row"):
        paired_bootstrap("accuracy", [0, 1, 1], [0, 1, 1], [1, 1])


# --- McNemar --------------------------------------------------------------------------


def test_mcnemar_counts_discordant_pairs_and_matches_binomtest() -> None:
    cand = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 1], bool)
    champ = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0], bool)
    result = mcnemar(cand, champ)
    assert (result.b, result.c) == (5, 1)
    assert result.p_value == pytest.approx(binomtest(5, 6, 0.5).pvalue)
    assert mcnemar(champ, cand).p_value == pytest.approx(result.p_value)  # two-sided


def test_mcnemar_without_discordant_pairs_has_p_one() -> None:
    same = np.array([True, False, True])
    assert mcnemar(same, same) == _stats.McNemarResult(0, 0, 1.0)


# --- demographic parity -----------------------------------------------------------------


def test_demographic_parity_difference_hand_example() -> None:
    # group a: 3 of 4 predicted positive (0.75); b: 1 of 4 (0.25); c: 1 of 2 (0.5).
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0, 1, 0]
    groups = ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c"]
    value, rates = demographic_parity_difference(y_pred, groups)
    assert rates == {"a": 0.75, "b": 0.25, "c": 0.5}
    assert value == 0.5


def test_demographic_parity_with_one_group_or_label_positive() -> None:
    assert demographic_parity_difference([1, 0], ["x", "x"]) == (0.0, {"x": 0.5})
    value, rates = demographic_parity_difference(["yes", "no", "yes", "yes"], [0, 0, 1, 1], "yes")
    assert (value, rates) == (0.5, {"0": 0.5, "1": 1.0})
    with pytest.raises(InvalidParameter, match="'groups' must have one entry per row"):
        demographic_parity_difference([1, 0], ["x"])
