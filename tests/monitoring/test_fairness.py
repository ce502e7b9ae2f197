"""Fairness check: biased vs fair predictions, fairlearn's definitions, Clarify's CI/DPL, edges."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring import CheckResult, MonitorResult
from loopml.monitoring._fairness import MAX_GROUPS, fairness

BETWEEN = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)


def _frame(
    n: int, *, bias: float, seed: int, shares: tuple[float, ...] = (0.6, 0.4)
) -> pd.DataFrame:
    """Labels independent of the group; group "b" loses ``bias`` of its positive predictions."""
    rng = np.random.default_rng(seed)
    groups = np.array(["a", "b", "c", "d"][: len(shares)])
    group = rng.choice(groups, size=n, p=np.asarray(shares))
    label = rng.random(n) < 0.4
    right = rng.random(n) < 0.85
    prediction = np.where(right, label, ~label)
    prediction &= ~((group == "b") & (rng.random(n) < bias))
    return pd.DataFrame(
        {"group": group, "label": label.astype(int), "prediction": prediction.astype(int)}
    )


def _by(results: list[CheckResult], method: str, segment: str = "") -> CheckResult:
    (found,) = [r for r in results if r.method == method and r.segment == segment]
    return found


@pytest.fixture(scope="module")
def biased() -> list[CheckResult]:
    return fairness(_frame(4000, bias=0.5, seed=1), sensitive="group")


@pytest.fixture(scope="module")
def fair() -> list[CheckResult]:
    return fairness(_frame(4000, bias=0.0, seed=2), sensitive="group")


@pytest.mark.parametrize("method", BETWEEN)
def test_built_in_bias_alerts_and_fair_predictions_pass(
    biased: list[CheckResult], fair: list[CheckResult], method: str
) -> None:
    alert, ok = _by(biased, method), _by(fair, method)
    assert (alert.status, ok.status) == ("alert", "ok")
    assert alert.check == ok.check == "fairness"
    assert alert.column == "group"
    assert alert.interval is not None and alert.p_value is not None and alert.p_value < 0.025
    assert "beyond the threshold" in alert.message


@pytest.mark.parametrize(("rows", "groups"), [(30, 2), (60, 4)])
def test_fair_predictions_rarely_alert_even_at_the_smallest_judged_groups(
    rows: int, groups: int
) -> None:
    """At most 5 % of fair samples raise any alert (the basic bootstrap keeps the max-type
    statistics honest; the percentile interval alerted on about 6 %)."""
    alerted = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        label = rng.random(rows * groups) < 0.4
        frame = pd.DataFrame(
            {
                "group": np.repeat(list("abcd"[:groups]), rows),
                "label": label,
                "prediction": np.where(rng.random(rows * groups) < 0.8, label, ~label),
            }
        )
        results = fairness(frame, sensitive="group", n_resamples=400, seed=seed)
        alerted += any(r.status == "alert" for r in results)
    assert alerted <= 5


def test_the_four_fifths_rule_is_the_default_ratio(biased: list[CheckResult]) -> None:
    ratio = _by(biased, "demographic_parity_ratio")
    assert ratio.threshold == 0.8
    assert ratio.statistic is not None and ratio.statistic < 0.8
    assert ratio.interval is not None and ratio.interval[1] < 0.8


def test_per_group_results_name_their_group(biased: list[CheckResult]) -> None:
    rate_a, rate_b = _by(biased, "selection_rate", "a"), _by(biased, "selection_rate", "b")
    assert rate_a.statistic is not None and rate_b.statistic is not None
    assert rate_b.statistic < rate_a.statistic
    assert (
        rate_a.detail["group"]["n"]
        == _by(biased, "demographic_parity_ratio").detail["groups"]["a"]["n"]
    )
    groups = _by(biased, "demographic_parity_difference").detail["groups"]
    assert set(groups) == {"a", "b"}
    assert groups["a"]["n"] + groups["b"]["n"] == 4000
    assert groups["b"]["selection_rate"] == pytest.approx(rate_b.statistic)
    accuracy = _by(biased, "accuracy", "b")
    assert accuracy.status == "ok" and accuracy.threshold is None  # descriptive by default


def test_thresholds_override_the_defaults() -> None:
    frame = _frame(4000, bias=0.5, seed=1)
    results = fairness(
        frame, sensitive="group", thresholds={"demographic_parity_ratio": 0.2, "accuracy": 0.95}
    )
    assert _by(results, "demographic_parity_ratio").status == "ok"
    assert _by(results, "accuracy", "a").status == "alert"  # 85 % right, well below 95 %


def _fairlearn(frame: pd.DataFrame) -> dict[str, float]:
    from fairlearn import metrics

    args: dict[str, Any] = {
        "y_true": frame["label"],
        "y_pred": frame["prediction"],
        "sensitive_features": frame["group"],
    }
    return {
        "demographic_parity_difference": metrics.demographic_parity_difference(**args),
        "demographic_parity_ratio": metrics.demographic_parity_ratio(**args),
        "equal_opportunity_difference": metrics.equal_opportunity_difference(**args),
        "equalized_odds_difference": metrics.equalized_odds_difference(**args),
    }


@st.composite
def _small_frames(draw: st.DrawFn) -> pd.DataFrame:
    """Frames where every group has both labels, so fairlearn's rates are all defined."""
    rows = []
    for group in "abcd"[: draw(st.integers(2, 4))]:
        for label in (0, 1):
            predictions = draw(st.lists(st.integers(0, 1), min_size=1, max_size=12))
            rows += [(group, label, p) for p in predictions]
    return pd.DataFrame(rows, columns=["group", "label", "prediction"])


@pytest.mark.slow  # fairlearn's MetricFrame takes ~0.1 s per metric and frame
@settings(max_examples=25)
@given(_small_frames())
def test_point_estimates_equal_fairlearns(frame: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        # fairlearn warns when a ratio's denominator is 0; its value is still the reference.
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = _fairlearn(frame)
    results = fairness(frame, sensitive="group", min_group=1, n_resamples=20)
    for method, value in expected.items():
        if method == "demographic_parity_ratio" and frame["prediction"].sum() == 0:
            assert _by(results, method).statistic == 1.0  # no one selected: parity
        else:
            assert _by(results, method).statistic == pytest.approx(value, abs=1e-12)


def test_clarify_class_imbalance_and_label_proportions() -> None:
    frame = pd.DataFrame(
        {
            "group": ["a"] * 60 + ["b"] * 40,
            "label": [1] * 30 + [0] * 30 + [1] * 10 + [0] * 30,
            "prediction": [1] * 100,
        }
    )
    results = fairness(frame, sensitive="group")
    # Group d = "b" against the rest a = "a": CI = (60 - 40) / 100, DPL = 30/60 - 10/40.
    ci, dpl = (
        _by(results, "class_imbalance", "b"),
        _by(results, "difference_in_proportions_of_labels", "b"),
    )
    assert ci.statistic == pytest.approx(0.2)
    assert dpl.statistic == pytest.approx(0.25)
    assert ci.interval is not None and ci.interval[0] < 0.2 < ci.interval[1]
    assert _by(results, "class_imbalance", "a").statistic == pytest.approx(-0.2)
    assert dpl.status == "ok" and dpl.threshold is None
    flagged = fairness(
        frame, sensitive="group", thresholds={"difference_in_proportions_of_labels": 0.05}
    )
    assert _by(flagged, "difference_in_proportions_of_labels", "b").status == "alert"


def test_label_only_metrics_without_predictions() -> None:
    frame = _frame(500, bias=0.0, seed=3).drop(columns="prediction")
    results = fairness(frame, sensitive="group", prediction=None)
    assert {r.method for r in results} == {"class_imbalance", "difference_in_proportions_of_labels"}


@pytest.mark.parametrize("labels", ["none", "absent"])
def test_without_labels_the_label_free_metrics_are_still_computed(labels: str) -> None:
    frame = _frame(2000, bias=0.5, seed=4)
    if labels == "absent":
        frame = frame.drop(columns="label")
    else:
        frame["label"] = None
    results = fairness(frame, sensitive="group")
    assert _by(results, "demographic_parity_ratio").status == "alert"
    assert _by(results, "selection_rate", "a").statistic is not None
    for method in ("equal_opportunity_difference", "equalized_odds_difference"):
        result = _by(results, method)
        assert result.status == "no_data" and result.statistic is None
        assert "no labels yet" in result.message
    assert _by(results, "accuracy", "b").status == "no_data"
    assert _by(results, "difference_in_proportions_of_labels", "b").status == "no_data"


def test_partial_feedback_judges_labels_on_the_labelled_rows_only() -> None:
    frame = _frame(4000, bias=0.5, seed=5)
    frame["label"] = frame["label"].astype("Int64").mask(np.arange(4000) % 2 == 0)
    results = fairness(frame, sensitive="group")
    assert _by(results, "accuracy", "a").detail["group"]["labelled"] < 1400
    assert _by(results, "equal_opportunity_difference").status == "alert"


def test_small_groups_are_no_data_and_named() -> None:
    frame = _frame(3000, bias=0.5, seed=6, shares=(0.6, 0.395, 0.005))
    results = fairness(frame, sensitive="group")
    small = _by(results, "selection_rate", "c")
    assert small.status == "no_data" and "'c'" in small.message and "fewer than 30" in small.message
    represented = _by(results, "class_imbalance", "c")  # CI is about small groups: computed
    assert represented.statistic is not None and represented.statistic > 0.9
    parity = _by(results, "demographic_parity_difference")
    assert parity.status == "alert"
    assert parity.detail["excluded"] == ["c"] and "left out" in parity.message
    only_one = fairness(frame, sensitive="group", min_group=1500)
    dp = _by(only_one, "demographic_parity_difference")
    assert dp.status == "no_data" and "fewer than two groups" in dp.message


def test_a_clear_gap_on_few_rows_is_inconclusive_not_an_alert() -> None:
    frame = pd.DataFrame(
        {"group": ["a"] * 30 + ["b"] * 30, "prediction": [1] * 18 + [0] * 12 + [1] * 13 + [0] * 17}
    )
    ratio = _by(fairness(frame, sensitive="group"), "demographic_parity_ratio")
    assert ratio.statistic is not None and ratio.statistic < 0.8  # 13/30 vs 18/30
    assert ratio.status == "ok" and "not conclusively" in ratio.message


def test_missing_sensitive_values_form_their_own_group() -> None:
    frame = _frame(1000, bias=0.0, seed=7)
    frame["group"] = frame["group"].where(np.arange(1000) % 10 != 0)
    results = fairness(frame, sensitive="group")
    assert "(missing)" in _by(results, "demographic_parity_ratio").detail["groups"]
    assert _by(results, "selection_rate", "(missing)").detail["group"]["n"] == 100


def test_arrow_tables_give_the_same_results() -> None:
    frame = _frame(1000, bias=0.3, seed=8)
    assert fairness(pa.Table.from_pandas(frame), sensitive="group") == fairness(
        frame, sensitive="group"
    )


def test_seeded_and_json_round_trip() -> None:
    frame = _frame(1000, bias=0.3, seed=9)
    first, again = fairness(frame, sensitive="group"), fairness(frame, sensitive="group")
    assert first == again
    other = fairness(frame, sensitive="group", seed=1)
    assert [r.interval for r in other] != [r.interval for r in first]
    result = MonitorResult("m", "alert", 0, "frame", "frame", 1000, 1000, tuple(first))
    assert MonitorResult.from_dict(result.to_dict()).checks == tuple(
        CheckResult.from_dict(c.to_dict()) for c in first
    )
    assert result.to_json()


def test_string_labels_need_a_positive_value() -> None:
    frame = _frame(500, bias=0.0, seed=10)
    words = frame.assign(
        label=frame["label"].map({1: "yes", 0: "no"}),
        prediction=frame["prediction"].map({1: "yes", 0: "no"}),
    )
    with pytest.raises(InvalidParameter, match="'positive' parameter of fairness must be given"):
        fairness(words, sensitive="group")
    results = fairness(words, sensitive="group", positive="yes")
    assert _by(results, "demographic_parity_difference").statistic == pytest.approx(
        _by(fairness(frame, sensitive="group"), "demographic_parity_difference").statistic
    )
    with pytest.raises(InvalidParameter, match="must be one of the predicted or true labels"):
        fairness(words, sensitive="group", positive="maybe")


def test_labels_of_another_type_than_the_predictions_are_refused() -> None:
    frame = _frame(500, bias=0.0, seed=11)
    frame["label"] = frame["label"].map({1: "yes", 0: "no"})
    with pytest.raises(InvalidParameter, match="labels of fairness must be of the predictions"):
        fairness(frame, sensitive="group", positive=1)


def test_an_absent_sensitive_column_names_the_columns_there_are() -> None:
    with pytest.raises(UnknownColumnError, match="'sex' is not in the frame") as info:
        fairness(_frame(100, bias=0.0, seed=12), sensitive="sex")
    assert info.value.known == ("group", "label", "prediction")
    assert "group, label, prediction" in str(info.value)
    with pytest.raises(UnknownColumnError, match="prediction column 'score'"):
        fairness(_frame(100, bias=0.0, seed=12), sensitive="group", prediction="score")


def test_no_rows_with_a_prediction_is_insufficient_data() -> None:
    frame = _frame(100, bias=0.0, seed=13).assign(prediction=None)
    with pytest.raises(InsufficientData, match="at least one row with a prediction"):
        fairness(frame, sensitive="group")


def test_an_id_column_is_refused_as_a_sensitive_column() -> None:
    frame = pd.DataFrame({"id": range(MAX_GROUPS + 1), "prediction": 1})
    with pytest.raises(InvalidParameter, match=f"at most {MAX_GROUPS} groups"):
        fairness(frame, sensitive="id")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": 1.0}, "'confidence' parameter of fairness"),
        ({"min_group": 0}, "'min_group' parameter of fairness"),
        ({"n_resamples": True}, "'n_resamples' parameter of fairness"),
        ({"n_resamples": 10**6}, r"'n_resamples' parameter of fairness must be an int in \[1, "),
        ({"thresholds": {"parity": 0.1}}, "must have keys among"),
        ({"thresholds": {"accuracy": float("nan")}}, "to a finite number"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        fairness(_frame(100, bias=0.0, seed=14), sensitive="group", **kwargs)


def test_a_frame_of_another_type_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="must be a pandas DataFrame or a pyarrow Table"):
        fairness([{"group": "a", "prediction": 1}], sensitive="group")
