"""Tests of loopml.registry._policy: every check passing and failing, significance, YAML."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidParameter, ModelError
from loopml.registry._policy import (
    CHECK_KINDS,
    Approvals,
    BeatsChampion,
    Check,
    CheckOutcome,
    DataQuality,
    EvaluationData,
    Fairness,
    Latency,
    MetricThreshold,
    Policy,
    parse_threshold,
)

ROWS = 2000


def _flip(y: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Predictions right on each row with probability ``accuracy``, independently."""
    return np.where(rng.random(len(y)) < accuracy, y, 1 - y)


def _proba(pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scores that rank like the labels, with noise."""
    return np.clip(0.25 + 0.5 * pred + rng.normal(0, 0.2, len(pred)), 0, 1)


@pytest.fixture(scope="module")
def sim() -> dict[str, np.ndarray]:
    """A seeded binary evaluation set: champion 80%, a noise-only twin at 80%, a 90% model."""
    rng = np.random.default_rng(2024)
    y = rng.integers(0, 2, ROWS)
    champion, noise, better = _flip(y, 0.8, rng), _flip(y, 0.8, rng), _flip(y, 0.9, rng)
    return {
        "y": y,
        "champion": champion,
        "noise": noise,
        "better": better,
        "champion_proba": _proba(champion, rng),
        "noise_proba": _proba(noise, rng),
        "better_proba": _proba(better, rng),
    }


def _versus(sim: dict[str, np.ndarray], candidate: str, **extra: Any) -> EvaluationData:
    return EvaluationData(
        y_true=sim["y"],
        candidate_pred=sim[candidate],
        candidate_proba=sim[f"{candidate}_proba"],
        champion_pred=sim["champion"],
        champion_proba=sim["champion_proba"],
        **extra,
    )


def _data(**fields: Any) -> EvaluationData:
    fields.setdefault("y_true", np.array([0, 1, 1, 0]))
    fields.setdefault("candidate_pred", np.array([0, 1, 1, 1]))
    return EvaluationData(**fields)


# --- metric thresholds --------------------------------------------------------------


def test_metric_threshold_passes_and_fails_from_reported_metrics() -> None:
    data = _data(metrics={"auc": 0.87})
    passed = MetricThreshold("auc", ">=", 0.85).evaluate(data)
    assert passed == CheckOutcome(
        "auc >= 0.85",
        "metric_threshold",
        True,
        "auc = 0.87 >= 0.85",
        {"metric": "auc", "op": ">=", "threshold": 0.85, "value": 0.87},
    )
    failed = MetricThreshold("auc", ">=", 0.9).evaluate(data)
    assert not failed.passed
    assert failed.reason == "auc = 0.87, needs >= 0.9"


def test_metric_threshold_computes_named_metrics_when_not_reported() -> None:
    data = _data()  # accuracy 3/4
    assert MetricThreshold("accuracy", ">", 0.7).evaluate(data).passed
    outcome = MetricThreshold("accuracy", "<", 0.7).evaluate(data)
    assert not outcome.passed and "accuracy = 0.75" in outcome.reason
    proba = _data(candidate_proba=np.array([0.1, 0.9, 0.8, 0.3]))
    assert MetricThreshold("auc", ">=", 1.0).evaluate(proba).passed


def test_metric_threshold_fails_when_not_measured() -> None:
    outcome = MetricThreshold("latency_score", ">=", 1).evaluate(_data())
    assert not outcome.passed
    assert outcome.reason == "latency_score was not measured for this version"
    no_proba = MetricThreshold("auc", ">=", 0.5).evaluate(_data())
    assert no_proba.reason == "auc was not measured for this version"
    nan = MetricThreshold("r2", ">=", 0.5).evaluate(_data(metrics={"r2": float("nan")}))
    assert not nan.passed and "undefined" in nan.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auc >= 0.85", MetricThreshold("auc", ">=", 0.85)),
        ("rmse<3", MetricThreshold("rmse", "<", 3.0)),
        ("  log_loss <= .5 ", MetricThreshold("log_loss", "<=", 0.5)),
        ("val/f1 > 1e-3", MetricThreshold("val/f1", ">", 0.001)),
        ("delta > -2.5", MetricThreshold("delta", ">", -2.5)),
    ],
)
def test_parse_threshold(text: str, expected: MetricThreshold) -> None:
    assert parse_threshold(text) == expected
    assert MetricThreshold.parse(text) == expected


@pytest.mark.parametrize("text", ["auc", "auc = 0.8", "auc >= high", ">= 0.8", "auc >= 0.8 x"])
def test_parse_threshold_rejects_bad_text(text: str) -> None:
    with pytest.raises(InvalidParameter, match="'<metric> <op> <number>'"):
        parse_threshold(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "", "op": ">=", "value": 1}, "'metric'"),
        ({"metric": "auc", "op": "==", "value": 1}, "'op'"),
        ({"metric": "auc", "op": ">=", "value": "0.8"}, "'value'"),
        ({"metric": "auc", "op": ">=", "value": float("inf")}, "'value'"),
        ({"metric": "auc", "op": ">=", "value": True}, "'value'"),
    ],
)
def test_metric_threshold_validates_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        MetricThreshold(**kwargs)


# --- beating the champion -------------------------------------------------------------


def test_beats_champion_passes_without_a_champion() -> None:
    outcome = BeatsChampion("auc", margin=0.01).evaluate(_data())
    assert outcome.passed
    assert outcome.reason == "there is no @champion yet, so there is nothing to beat"
    assert outcome.name == "beats champion on auc by 0.01"


def test_beats_champion_says_when_the_candidate_already_is_the_champion() -> None:
    """Issue 12 item 18a: a candidate that is the champion is not told "no champion yet"."""
    data = _data(candidate_is_champion=True)
    outcome = BeatsChampion("auc", margin=0.01).evaluate(data)
    assert outcome.passed
    assert outcome.reason == (
        "the candidate already is @champion; comparing it with itself is meaningless, "
        "so there is nothing to beat"
    )
    assert outcome.details["candidate_is_champion"] is True
    assert "no champion" not in outcome.reason


def test_beats_champion_fails_when_no_comparison_was_asked_for() -> None:
    """Issue 12 item 18a: champion=None is not "no champion yet"; the check cannot pass."""
    outcome = BeatsChampion("auc").evaluate(_data(champion_alias=None))
    assert not outcome.passed
    assert "compared the candidate with no champion (champion=None)" in outcome.reason


@pytest.mark.parametrize(
    "check",
    [
        BeatsChampion("accuracy"),
        BeatsChampion("auc"),
        BeatsChampion("accuracy", method="mcnemar"),
    ],
    ids=["bootstrap-accuracy", "bootstrap-auc", "mcnemar"],
)
def test_noise_only_gain_does_not_pass(check: BeatsChampion, sim: dict[str, np.ndarray]) -> None:
    outcome = check.evaluate(_versus(sim, "noise"))
    assert not outcome.passed, outcome.reason
    assert "not" in outcome.reason


@pytest.mark.parametrize(
    "check",
    [
        BeatsChampion("accuracy", margin=0.02),
        BeatsChampion("auc", margin=0.02),
        BeatsChampion("f1"),
        BeatsChampion("log_loss"),
        BeatsChampion("accuracy", margin=0.02, method="mcnemar"),
    ],
    ids=["bootstrap-accuracy", "bootstrap-auc", "bootstrap-f1", "bootstrap-log-loss", "mcnemar"],
)
def test_real_margin_passes(check: BeatsChampion, sim: dict[str, np.ndarray]) -> None:
    outcome = check.evaluate(_versus(sim, "better"))
    assert outcome.passed, outcome.reason
    assert outcome.details["improvement"] > 0


def test_noise_only_rarely_passes_over_many_seeds() -> None:
    # The tests are one-sided at 2.5% (bootstrap) / two-sided 5% with the right sign
    # (McNemar): over many noise-only trials only a few may pass by chance.
    passes = {"bootstrap": 0, "mcnemar": 0}
    checks = {
        "bootstrap": BeatsChampion("accuracy", n_resamples=500),
        "mcnemar": BeatsChampion("accuracy", method="mcnemar"),
    }
    for seed in range(40):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, ROWS)
        data = EvaluationData(
            y_true=y, candidate_pred=_flip(y, 0.8, rng), champion_pred=_flip(y, 0.8, rng)
        )
        for method, check in checks.items():
            passes[method] += check.evaluate(data).passed
    assert passes["bootstrap"] <= 4 and passes["mcnemar"] <= 4, passes


def test_bootstrap_reason_and_details(sim: dict[str, np.ndarray]) -> None:
    outcome = BeatsChampion("accuracy", margin=0.01).evaluate(_versus(sim, "better"))
    details = outcome.details
    assert details["low"] > 0.01 and details["difference"] == pytest.approx(0.1, abs=0.03)
    assert outcome.reason.startswith(
        f"accuracy improves on the champion by {details['improvement']:.4g} (improvement 95% CI "
    )
    assert outcome.reason.endswith("the lower bound is above the margin 0.01")
    too_much = BeatsChampion("accuracy", margin=0.3).evaluate(_versus(sim, "better"))
    assert not too_much.passed
    assert "not above the margin 0.3" in too_much.reason


def test_mcnemar_reasons(sim: dict[str, np.ndarray]) -> None:
    worse = BeatsChampion("accuracy", method="mcnemar").evaluate(
        EvaluationData(y_true=sim["y"], candidate_pred=sim["champion"], champion_pred=sim["better"])
    )
    assert not worse.passed and "the candidate is not more accurate" in worse.reason
    assert worse.details["b"] < worse.details["c"]
    small_gain = BeatsChampion("accuracy", margin=0.2, method="mcnemar")
    outcome = small_gain.evaluate(_versus(sim, "better"))
    assert not outcome.passed and "not above the margin 0.2" in outcome.reason
    assert outcome.details["p_value"] < 0.05


def test_mcnemar_refuses_other_metrics() -> None:
    with pytest.raises(InvalidParameter, match="only works with metric='accuracy'"):
        BeatsChampion("auc", method="mcnemar")


def test_lower_is_better_metric_needs_a_lower_value() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(0, 1, 800)
    good, bad = y + rng.normal(0, 0.5, 800), y + rng.normal(0, 1.0, 800)
    check = BeatsChampion("rmse", margin=0.1)
    better = check.evaluate(EvaluationData(y_true=y, candidate_pred=good, champion_pred=bad))
    assert better.passed, better.reason
    assert better.details["difference"] < 0 < better.details["improvement"]
    assert better.details["improvement_low"] == -better.details["high"]
    assert better.reason.startswith("rmse (lower is better) improves on the champion by 0.")
    worse = check.evaluate(EvaluationData(y_true=y, candidate_pred=bad, champion_pred=good))
    assert not worse.passed
    assert worse.details["difference"] > 0 > worse.details["improvement"]
    assert worse.reason.startswith("rmse (lower is better) is worse than the champion by 0.")


def test_multiclass_auc_beats_champion() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 900)

    def proba(signal: float) -> np.ndarray:
        p = rng.dirichlet([1.0, 1.0, 1.0], len(y))
        p[np.arange(len(y)), y] += signal
        normalised: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return normalised

    data = EvaluationData(
        y_true=y,
        candidate_pred=y,
        candidate_proba=proba(0.6),
        champion_pred=y,
        champion_proba=proba(0.1),
    )
    outcome = BeatsChampion("auc", margin=0.05).evaluate(data)
    assert outcome.passed, outcome.reason
    swapped = EvaluationData(
        y_true=y,
        candidate_pred=y,
        candidate_proba=data.champion_proba,
        champion_pred=y,
        champion_proba=data.candidate_proba,
    )
    assert not BeatsChampion("auc").evaluate(swapped).passed


def test_beats_champion_fails_without_the_needed_predictions() -> None:
    only_metrics = _data(champion_metrics={"accuracy": 0.7})
    outcome = BeatsChampion("accuracy").evaluate(only_metrics)
    assert not outcome.passed
    assert outcome.reason == "the champion has no predictions on the evaluation data"
    no_proba = _data(champion_pred=np.array([0, 0, 1, 1]))
    outcome = BeatsChampion("auc").evaluate(no_proba)
    assert outcome.reason == "the candidate has no probabilities on the evaluation data"


def test_data_problems_fail_the_check_instead_of_raising() -> None:
    data = _data(
        y_true=np.zeros(4, int),
        candidate_proba=np.array([0.1, 0.2, 0.3, 0.4]),
        champion_pred=np.zeros(4, int),
        champion_proba=np.array([0.4, 0.3, 0.2, 0.1]),
    )
    outcome = BeatsChampion("auc", n_resamples=100).evaluate(data)
    assert not outcome.passed
    assert outcome.reason.startswith("could not be evaluated: ")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "auroc"}, "'metric' parameter must be one of"),
        ({"metric": "auc", "margin": -0.1}, "'margin'"),
        ({"metric": "auc", "confidence": 1.5}, "'confidence'"),
        ({"metric": "auc", "method": "t-test"}, "'method'"),
        ({"metric": "auc", "n_resamples": 10}, "'n_resamples'"),
        ({"metric": "auc", "seed": -1}, "'seed'"),
    ],
)
def test_beats_champion_validates_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        BeatsChampion(**kwargs)


_LABELS = st.lists(st.integers(0, 1), min_size=2, max_size=40)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    metric=st.sampled_from(["accuracy", "auc", "f1", "log_loss", "rmse", "r2", "mae"]),
    margin=st.floats(0.0, 0.5),
    method=st.sampled_from(["bootstrap", "mcnemar"]),
)
def test_identical_candidate_and_champion_never_pass(
    data: st.DataObject, metric: str, margin: float, method: str
) -> None:
    y = np.array(data.draw(_LABELS))
    n = len(y)
    if metric in ("rmse", "r2", "mae"):
        pred = np.array(data.draw(st.lists(st.floats(-100, 100), min_size=n, max_size=n)))
    else:
        pred = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    proba = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    method = method if metric == "accuracy" else "bootstrap"
    check = BeatsChampion(metric, margin=margin, method=method, n_resamples=100)  # type: ignore[arg-type]
    same = EvaluationData(
        y_true=y,
        candidate_pred=pred,
        candidate_proba=proba,
        champion_pred=pred,
        champion_proba=proba,
    )
    assert not check.evaluate(same).passed


# --- data quality, fairness, latency ---------------------------------------------------


@pytest.mark.parametrize(
    ("state", "passed", "reason"),
    [
        (True, True, "the training data passed its data-quality report"),
        (False, False, "the training data failed its data-quality report"),
        (None, False, "no data-quality report for the training data"),
    ],
)
def test_data_quality(state: bool | None, passed: bool, reason: str) -> None:
    outcome = DataQuality().evaluate(_data(training_data_passed=state))
    assert (outcome.passed, outcome.reason, outcome.kind) == (passed, reason, "data_quality")


def test_fairness_passes_and_fails_on_demographic_parity() -> None:
    data = _data(
        y_true=np.zeros(8, int),
        candidate_pred=np.array([1, 1, 0, 0, 1, 0, 0, 0]),
        groups={"sex": np.array(["f", "f", "f", "f", "m", "m", "m", "m"])},
    )
    within = Fairness("sex", max=0.25).evaluate(data)
    assert within.passed
    assert within.details["value"] == 0.25
    assert within.details["per_group"] == {"f": 0.5, "m": 0.25}
    assert within.reason == (
        "demographic parity difference on 'sex' is 0.25 (f: 0.5, m: 0.25), within 0.25"
    )
    beyond = Fairness("sex").evaluate(data)
    assert not beyond.passed and beyond.reason.endswith("above the bound 0.1")


def test_fairness_fails_when_the_sensitive_column_is_missing() -> None:
    outcome = Fairness("age_band").evaluate(_data(groups={"sex": ["f", "m", "f", "m"]}))
    assert not outcome.passed
    assert (
        outcome.reason
        == "the sensitive column 'age_band' is not in the evaluation data (have ['sex'])"
    )


def test_fairness_counts_a_chosen_positive_label() -> None:
    data = _data(
        candidate_pred=np.array(["yes", "no", "yes", "yes"]),
        groups={"region": np.array([1, 1, 2, 2])},
    )
    assert not Fairness("region", positive="yes", max=0.4).evaluate(data).passed
    assert Fairness("region", positive="yes", max=0.5).evaluate(data).passed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sensitive": ""}, "'sensitive'"),
        ({"sensitive": "sex", "metric": "equalized_odds"}, "'metric'"),
        ({"sensitive": "sex", "max": 2}, "'max'"),
        ({"sensitive": "sex", "positive": 1.5}, "'positive'"),
    ],
)
def test_fairness_validates_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        Fairness(**kwargs)


def test_latency() -> None:
    check = Latency(50)
    assert check.name == "p95 latency <= 50 ms"
    fast = check.evaluate(_data(latency_p95_ms=12.5))
    assert fast.passed and fast.reason == "p95 single-row predict time is 12.5 ms, within 50 ms"
    slow = check.evaluate(_data(latency_p95_ms=75))
    assert not slow.passed
    assert slow.reason == "p95 single-row predict time is 75 ms, over the budget of 50 ms"
    unmeasured = check.evaluate(_data())
    assert not unmeasured.passed and unmeasured.reason == "the p95 predict latency was not measured"
    with pytest.raises(InvalidParameter, match="'p95_ms'"):
        Latency(0)


# --- approvals ------------------------------------------------------------------------------


def test_approvals_count_distinct_identities_with_the_role() -> None:
    check = Approvals(count=2, role="reviewer")
    twice = _data(approvals=[("bob", "reviewer"), ("bob", "reviewer"), ("carol", "intern")])
    outcome = check.evaluate(twice)
    assert not outcome.passed
    assert outcome.reason == "1 of 2 required approval(s) with role 'reviewer' (bob)"
    enough = check.evaluate(_data(approvals=[("bob", "reviewer"), ("dan", "reviewer")]))
    assert enough.passed and enough.details["approvers"] == ["bob", "dan"]
    assert Approvals().evaluate(_data(approvals=[("carol", None)])).passed
    assert not Approvals().evaluate(_data()).passed


def test_separation_of_duties_discounts_the_registering_identity() -> None:
    approvals = [("alice", "reviewer"), ("bob", "reviewer")]
    data = _data(approvals=approvals, registered_by="alice")
    assert Approvals(count=2).evaluate(data).passed  # without separation alice counts
    outcome = Approvals(count=2, separation_of_duties=True).evaluate(data)
    assert not outcome.passed
    assert outcome.reason == (
        "1 of 2 required approval(s) (bob); the approval by 'alice' does not count: "
        "that identity registered the version (separation of duties); another identity "
        "must approve, or the policy's owner sets separation_of_duties: false"
    )
    self_only = _data(approvals=[("alice", "admin")], registered_by="alice")
    assert not Approvals(separation_of_duties=True).evaluate(self_only).passed
    assert (
        Approvals(separation_of_duties=True)
        .evaluate(_data(approvals=[("bob", "admin")], registered_by="alice"))
        .passed
    )


def test_separation_of_duties_fails_when_the_registrar_is_unknown() -> None:
    outcome = Approvals(separation_of_duties=True).evaluate(_data(approvals=[("bob", None)]))
    assert not outcome.passed
    assert "who registered the version is unknown" in outcome.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "'count'"),
        ({"count": True}, "'count'"),
        ({"role": ""}, "'role'"),
        ({"separation_of_duties": "yes"}, "'separation_of_duties'"),
    ],
)
def test_approvals_validates_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        Approvals(**kwargs)


# --- evaluation data and the policy --------------------------------------------------------


def test_evaluation_data_checks_row_counts() -> None:
    with pytest.raises(InvalidParameter, match="'champion_pred' parameter"):
        _data(champion_pred=[0, 1])
    with pytest.raises(InvalidParameter, match=r"'groups\['sex'\]' parameter"):
        _data(groups={"sex": ["f"]})
    assert not _data().has_champion
    assert _data(champion_metrics={"auc": 0.8}).has_champion


def test_evaluation_data_for_approvals_alone() -> None:
    data = EvaluationData.for_approvals([("bob", "risk")], registered_by="alice")
    check = Approvals(role="risk", separation_of_duties=True)
    assert check.evaluate(data).passed
    assert not MetricThreshold("accuracy", ">=", 0.5).evaluate(data).passed


def test_check_kinds_are_pinned() -> None:
    assert sorted(CHECK_KINDS) == [
        "approvals",
        "beats_champion",
        "data_quality",
        "fairness",
        "latency",
        "metric_threshold",
    ]
    assert all(isinstance(cls(**_REQUIRED.get(k, {})), Check) for k, cls in CHECK_KINDS.items())


_REQUIRED: dict[str, dict[str, Any]] = {
    "metric_threshold": {"metric": "auc", "op": ">=", "value": 0.8},
    "beats_champion": {"metric": "auc"},
    "fairness": {"sensitive": "sex"},
    "latency": {"p95_ms": 10},
}


def test_policy_evaluates_every_check_in_order(sim: dict[str, np.ndarray]) -> None:
    policy = Policy(
        [
            MetricThreshold.parse("auc >= 0.85"),
            BeatsChampion("auc", margin=0.01),
            Approvals(count=1, separation_of_duties=True),
        ]
    )
    data = _versus(sim, "better", approvals=[("bob", "reviewer")], registered_by="alice")
    outcomes = policy.evaluate(data)
    assert [o.kind for o in outcomes] == ["metric_threshold", "beats_champion", "approvals"]
    assert Policy.passed(outcomes)
    assert not Policy.passed(policy.evaluate(_versus(sim, "noise", registered_by="alice")))
    assert Policy.passed([]) and Policy([]).evaluate(data) == []
    assert outcomes[0].to_dict()["name"] == "auc >= 0.85"


def test_policy_rejects_duplicate_names_and_non_checks() -> None:
    with pytest.raises(InvalidParameter, match="named 'latency'"):
        Policy([Latency(10, name="latency"), Latency(20, name="latency")])
    with pytest.raises(InvalidParameter, match="'checks' parameter"):
        Policy(["auc >= 0.85"])  # type: ignore[list-item]


EVERY_KIND = Policy(
    [
        MetricThreshold("auc", ">=", 0.85),
        BeatsChampion("rmse", margin=0.5, confidence=0.9, n_resamples=500, seed=3),
        BeatsChampion("accuracy", method="mcnemar", name="more accurate"),
        DataQuality(),
        Fairness("sex", max=0.2, positive="yes"),
        Latency(p95_ms=25.5),
        Approvals(count=2, role="risk", separation_of_duties=True),
    ]
)


def test_yaml_and_dict_round_trip() -> None:
    text = EVERY_KIND.to_yaml()
    assert Policy.from_yaml(text) == EVERY_KIND
    assert Policy.from_dict(EVERY_KIND.to_dict()) == EVERY_KIND
    assert text.startswith("- kind: metric_threshold\n  metric: auc\n  op: '>='\n  value: 0.85\n")
    assert "name: more accurate" in text and "name: auc" not in text  # default names not saved
    entry = EVERY_KIND.to_dict()["checks"][-1]
    assert entry == {
        "kind": "approvals",
        "count": 2,
        "role": "risk",
        "separation_of_duties": True,
    }


def test_numpy_scalars_become_plain_values() -> None:
    policy = Policy([Latency(np.float64(20.0)), Approvals(count=np.int64(2))])  # type: ignore[arg-type]
    assert Policy.from_yaml(policy.to_yaml()) == Policy([Latency(20.0), Approvals(count=2)])
    assert type(policy.checks[1].to_dict()["count"]) is int


def test_yaml_accepts_threshold_strings_a_checks_mapping_and_empty_text() -> None:
    text = "checks:\n  - auc >= 0.85\n  - {kind: approvals, separation_of_duties: true}\n"
    assert Policy.from_yaml(text) == Policy(
        [MetricThreshold("auc", ">=", 0.85), Approvals(separation_of_duties=True)]
    )
    assert Policy.from_yaml("") == Policy([])
    assert Policy.from_dict([{"kind": "data_quality"}]) == Policy([DataQuality()])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {kind: latency, p95_ms: 10\n", r"does not parse at line 2"),
        ("auc >= 0.85\n", r"must be a list of checks .* Got str"),
        ("rules: []\n", r"holds only 'checks'; got the keys \['rules'\]"),
        ("- {kind: data_quality}\n- [1, 2]\n", r"Policy entry #2 \(line 2\) must be a mapping"),
        (
            "- {kind: data_quality}\n- {metric: auc}\n",
            r"entry #2 \(line 2\) must be a mapping with",
        ),
        ("- {kind: canary}\n", r"entry #1 \(line 1\) has unknown kind 'canary'; expected one of"),
        (
            "- {kind: latency, p95: 10}\n",
            r"#1 \(line 1\) \(latency\) has unknown field\(s\) \['p95'\]",
        ),
        (
            "- {kind: fairness, max: 0.1}\n",
            r"#1 \(line 1\) \(fairness\) is missing .*\['sensitive'\]",
        ),
        (
            "- {kind: latency, p95_ms: fast}\n",
            r"#1 \(line 1\) \(latency\) is invalid: The 'p95_ms'",
        ),
        (
            "- {kind: beats_champion, metric: auc, method: mcnemar}\n",
            r"#1 \(line 1\) \(beats_champion\) is invalid: .*only works with metric='accuracy'",
        ),
        ("- data_quality\n", r"#1 \(line 1\): The 'threshold' parameter"),
        ("- {kind: latency, p95_ms: 1}\n- {kind: latency, p95_ms: 1}\n", r"named 'p95 latency"),
        ("checks:\n  - {kind: data_quality}\n  - 7\n", r"entry #2 \(line 3\) must be a mapping"),
    ],
    ids=[
        "syntax",
        "scalar",
        "unknown-top-key",
        "list-entry",
        "no-kind",
        "unknown-kind",
        "unknown-field",
        "missing-field",
        "bad-value",
        "bad-method",
        "bad-threshold-string",
        "duplicate-names",
        "nested-line",
    ],
)
def test_bad_yaml_raises_model_error_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        Policy.from_yaml(text)
