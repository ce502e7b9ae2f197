"""Promotion policies, through ``evaluate`` then ``promote``: each check passing and failing.

Models are small scikit-learn classifiers on generated data; the evaluation data
is a registered dataset version, as in production. SQLite only (the lifecycle
contract runs on every back-end in ``test_registry_lifecycle.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from identity_support import act_as, give_roles
from loopml.approvals import current_identity
from loopml.data import DataClient, expect
from loopml.errors import (
    ApprovalError,
    DataValidationError,
    InvalidParameter,
    ModelError,
    ModelNotFound,
    PromotionRefused,
)
from loopml.registry import (
    Approvals,
    BeatsChampion,
    DataQuality,
    Fairness,
    Latency,
    MetricThreshold,
    ModelVersion,
    Policy,
    RegistryClient,
)
from loopml.tracking import TrackingClient

P = "p"
FEATURES = ["x0", "x1", "x2", "group"]
TARGET = "label"


@pytest.fixture
def data(tracking: TrackingClient) -> DataClient:
    return DataClient(tracking.store, tracking.artifacts)


def _frame(rows: int, seed: int, *, biased: bool = False) -> pd.DataFrame:
    """x0 decides the label, x1 helps a little, x2 is noise; ``biased``: so does group."""
    rng = np.random.default_rng(seed)
    x0, x1, x2 = rng.normal(size=(3, rows))
    group = rng.integers(0, 2, rows)
    logit = 3.0 * x0 + 1.0 * x1 + (6.0 * (group - 0.5) if biased else 0.0)
    label = (logit + rng.logistic(size=rows) > 0).astype("int64")
    return pd.DataFrame({"x0": x0, "x1": x1, "x2": x2, "group": group, TARGET: label})


def _fit(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=5000).fit(frame[FEATURES], frame[TARGET])


def _register(
    registry: RegistryClient, model: LogisticRegression, run_id: str | None = None
) -> ModelVersion:
    example = _frame(5, seed=99)[FEATURES]
    return registry.register(model, "credit", project=P, input_example=example, run_id=run_id)


def _test_data(data: DataClient, *, biased: bool = False) -> str:
    return data.register("credit-test", _frame(400, seed=7, biased=biased), project=P).ref


def _promote_refused(registry: RegistryClient, ref: str) -> list[str]:
    """Promote must refuse ``ref`` and change nothing; return the failing checks' names."""
    before = (registry.get_model("credit", project=P), registry.alias_history("credit", project=P))
    with pytest.raises(PromotionRefused, match=f"Cannot promote {ref} to @champion") as refused:
        registry.promote(ref, project=P)
    after = (registry.get_model("credit", project=P), registry.alias_history("credit", project=P))
    assert after == before
    assert registry.get_version(ref, project=P).status == "candidate"
    return [name for name, _ in refused.value.failures]


# --- the policy itself ---------------------------------------------------------------------


def test_a_policy_round_trips_and_a_bad_one_is_refused_without_change(
    registry: RegistryClient,
) -> None:
    _register(registry, _fit(_frame(300, seed=1)))
    policy = Policy(
        [
            MetricThreshold.parse("auc >= 0.8"),
            BeatsChampion("auc", margin=0.01),
            DataQuality(),
            Fairness("group", max=0.1),
            Latency(p95_ms=50.0),
            Approvals(count=1, separation_of_duties=True),
        ]
    )
    registry.set_policy("credit", policy, project=P)
    assert registry.get_policy("credit", project=P) == policy
    assert registry.get_policy("credit", project=P).to_yaml() == policy.to_yaml()

    with pytest.raises(ModelError, match="nope"):
        registry.set_policy("credit", "- {kind: nope}\n", project=P)
    with pytest.raises(ModelError):
        registry.set_policy("credit", "- accuracy >=\n", project=P)
    assert registry.get_policy("credit", project=P) == policy
    with pytest.raises(ModelNotFound):
        registry.set_policy("other", policy, project=P)


# --- metric threshold ----------------------------------------------------------------------


def test_metric_threshold_passes_a_good_model_and_fails_a_weak_one(
    registry: RegistryClient, data: DataClient
) -> None:
    train = _frame(600, seed=1)
    weak_train = train.assign(x0=np.random.default_rng(2).permutation(train["x0"]))
    _register(registry, _fit(weak_train))
    _register(registry, _fit(train))
    registry.set_policy("credit", Policy([MetricThreshold.parse("accuracy >= 0.8")]), project=P)
    test = _test_data(data)

    weak = registry.evaluate("credit/1", test, project=P, target=TARGET)
    assert not weak.passed
    assert weak.metrics["accuracy"] < 0.8
    assert {"accuracy", "f1", "auc"} <= set(weak.metrics)
    [(name, reason)] = weak.failures
    assert name == "accuracy >= 0.8"
    assert "needs >= 0.8" in reason
    assert _promote_refused(registry, "credit/1") == ["accuracy >= 0.8"]

    good = registry.evaluate("credit/2", test, project=P, target=TARGET)
    assert good.passed, good.failures
    [result] = good.results
    assert (result.kind, result.dataset, result.evaluation) == ("metric_threshold", test, 1)
    assert result.details["value"] == pytest.approx(good.metrics["accuracy"])
    assert registry.policy_results(good.version) == good.results
    assert registry.promote("credit/2", project=P).aliases == ("champion",)

    again = registry.evaluate("credit/2", test, project=P, target=TARGET)
    assert again.evaluation == 2  # every evaluation is kept; the latest one decides


def test_evaluate_refuses_a_target_or_sensitive_column_the_data_lacks(
    registry: RegistryClient, data: DataClient
) -> None:
    version = _register(registry, _fit(_frame(300, seed=1)))
    test = _test_data(data)
    with pytest.raises(InvalidParameter, match="Column 'outcome' is not in dataset"):
        registry.evaluate("credit/1", test, project=P, target="outcome")
    with pytest.raises(InvalidParameter, match="Column 'gender' is not in dataset"):
        registry.evaluate("credit/1", test, project=P, target=TARGET, sensitive=["gender"])
    assert registry.policy_results(version) == []


def test_evaluate_gives_a_version_without_signature_the_columns_it_was_fitted_on(
    registry: RegistryClient, data: DataClient
) -> None:
    """The dataset's extra column (an id) is not passed to a model that names its features."""
    model = _fit(_frame(300, seed=1))
    registry.register(model, "credit", project=P)  # no input_example: no signature
    test = data.register("credit-ids", _frame(200, seed=7).assign(id=range(200)), project=P)
    result = registry.evaluate("credit/1", test.ref, project=P, target=TARGET)
    assert result.metrics["accuracy"] > 0.7
    lacking = data.register("credit-lacking", _frame(200, seed=8).drop(columns="x2"), project=P)
    with pytest.raises(InvalidParameter, match=r"fitted on columns \['x2'\] that the evaluation"):
        registry.evaluate("credit/1", lacking.ref, project=P, target=TARGET)


def test_evaluate_explains_a_model_that_cannot_predict_on_the_data(
    registry: RegistryClient, data: DataClient
) -> None:
    frame = _frame(300, seed=1)
    model = LogisticRegression(max_iter=5000).fit(frame[FEATURES].to_numpy(), frame[TARGET])
    registry.register(model, "credit", project=P)  # fitted on an array: no names, no signature
    test = data.register("credit-ids", _frame(200, seed=7).assign(id=range(200)), project=P)
    with pytest.raises(ModelError, match=r"could not predict.*no signature.*input_example="):
        registry.evaluate("credit/1", test.ref, project=P, target=TARGET)


# --- beats the champion ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bootstrap", "mcnemar"])
def test_beats_champion_refuses_noise_and_accepts_a_real_margin(
    registry: RegistryClient, data: DataClient, method: str
) -> None:
    train = _frame(600, seed=1)
    # The champion never saw x0 (shuffled away), so it leans on the weak x1 alone.
    weak_train = train.assign(x0=np.random.default_rng(2).permutation(train["x0"]))
    champion = _fit(weak_train)
    same_model_other_sample = _fit(weak_train.sample(frac=0.9, random_state=3))
    better = _fit(train)
    for model in (champion, same_model_other_sample, better):
        _register(registry, model)
    check = BeatsChampion("accuracy", margin=0.02, method=method)  # type: ignore[arg-type]
    registry.set_policy("credit", Policy([check]), project=P)
    test = _test_data(data)

    first = registry.evaluate("credit/1", test, project=P, target=TARGET)
    assert first.passed
    assert "no @champion yet" in first.results[0].reason
    registry.promote("credit/1", project=P)

    noise = registry.evaluate("credit/2", test, project=P, target=TARGET)
    assert not noise.passed
    [(name, reason)] = noise.failures
    assert name == check.name
    assert {
        "bootstrap": "the lower bound is not above the margin 0.02",
        "mcnemar": "the candidate is not more accurate",
    }[method] in reason
    assert _promote_refused(registry, "credit/2") == [check.name]

    real = registry.evaluate("credit/3", test, project=P, target=TARGET)
    assert real.passed, real.failures
    assert real.results[0].details["improvement"] > 0.1
    registry.promote("credit/3", project=P)
    assert registry.get_version("credit@champion", project=P).version == 3


def test_evaluating_the_champion_says_it_is_the_champion(
    registry: RegistryClient, data: DataClient
) -> None:
    """Issue 12 item 18a: evaluate on the champion itself does not say "no champion yet"."""
    _register(registry, _fit(_frame(300, seed=1)))
    check = BeatsChampion("accuracy", margin=0.02)
    registry.set_policy("credit", Policy([check]), project=P)
    test = _test_data(data)
    registry.evaluate("credit/1", test, project=P, target=TARGET)
    registry.promote("credit/1", project=P)

    for ref in ("credit/1", "credit@champion"):
        again = registry.evaluate(ref, test, project=P, target=TARGET)
        assert again.passed
        [result] = again.results
        assert "no champion" not in result.reason
        assert result.reason.startswith("the candidate already is @champion; comparing it")
        assert result.details["candidate_is_champion"] is True
    assert registry.promote("credit/1", project=P).aliases == ("champion",)
    assert len(registry.alias_history("credit", project=P)) == 1  # nothing moved

    asked_for_none = registry.evaluate("credit/1", test, project=P, target=TARGET, champion=None)
    assert not asked_for_none.passed
    assert "champion=None" in asked_for_none.results[0].reason


def test_beats_champion_on_a_lower_is_better_metric(
    registry: RegistryClient, data: DataClient
) -> None:
    train = _frame(600, seed=1)
    weak_train = train.assign(x0=np.random.default_rng(2).permutation(train["x0"]))
    _register(registry, _fit(weak_train))
    _register(registry, _fit(train))
    registry.set_policy("credit", Policy([BeatsChampion("log_loss", margin=0.05)]), project=P)
    test = _test_data(data)
    registry.promote("credit/1", project=P, force=True, reason="first model")

    result = registry.evaluate("credit/2", test, project=P, target=TARGET)
    assert result.passed, result.failures
    assert "lower is better" in result.results[0].reason


# --- data quality ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("training", "passed", "reason"),
    [
        ("passed", True, "passed its data-quality report"),
        ("failed", False, "failed its data-quality report"),
        ("quarantined", False, "failed its data-quality report"),
        ("unchecked", False, "no data-quality report"),
        ("no datasets", False, "no data-quality report"),
    ],
)
def test_data_quality_follows_the_training_data_report(
    registry: RegistryClient,
    data: DataClient,
    tracking: TrackingClient,
    training: str,
    passed: bool,
    reason: str,
) -> None:
    run_id = None
    if training != "no datasets":
        first = _frame(300, seed=10)
        data.register("credit-train", first, project=P)
        data.save_schema("credit-train", project=P, expectations=[expect.between("x0", -50, 50)])
        # Rows of the first version: within the ranges of the schema inferred from it.
        second = first.iloc[:250].copy()
        if training in ("failed", "quarantined"):
            second.loc[:4, "x0"] = 1000.0
        ref = "credit-train:1"  # the first version is stored before any schema: no report
        if training != "unchecked":
            try:
                ref = data.register(
                    "credit-train", second, project=P, strict=training == "quarantined"
                ).ref
            except DataValidationError as exc:
                assert exc.version is not None
                ref = exc.version
        run_id = tracking.create_run(project=P, name="train", capture_context=False)
        model = _fit(data.load(ref, project=P, run_id=run_id))
        tracking.end_run(run_id)
    else:
        model = _fit(_frame(300, seed=10))
    version = _register(registry, model, run_id=run_id)
    assert len(version.datasets) == (0 if training == "no datasets" else 1)
    registry.set_policy("credit", Policy([DataQuality()]), project=P)

    result = registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET)
    [outcome] = result.results
    assert (outcome.kind, outcome.passed) == ("data_quality", passed)
    assert reason in outcome.reason
    if passed:
        assert registry.promote("credit/1", project=P).aliases == ("champion",)
    else:
        assert _promote_refused(registry, "credit/1") == ["training data quality"]


# --- fairness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("biased", [False, True])
def test_fairness_bounds_the_demographic_parity_difference(
    registry: RegistryClient, data: DataClient, biased: bool
) -> None:
    _register(registry, _fit(_frame(600, seed=1, biased=biased)))
    registry.set_policy("credit", Policy([Fairness("group", max=0.2)]), project=P)
    test = _test_data(data, biased=biased)

    result = registry.evaluate("credit/1", test, project=P, target=TARGET, sensitive=["group"])
    [outcome] = result.results
    assert outcome.kind == "fairness"
    assert set(outcome.details["per_group"]) == {"0", "1"}
    if biased:
        assert not outcome.passed
        assert outcome.details["value"] > 0.5
        assert "above the bound 0.2" in outcome.reason
        assert _promote_refused(registry, "credit/1") == [outcome.name]
    else:
        assert outcome.passed, outcome.reason
        assert outcome.details["value"] <= 0.2
        registry.promote("credit/1", project=P)


def test_fairness_fails_when_the_sensitive_column_was_not_given(
    registry: RegistryClient, data: DataClient
) -> None:
    _register(registry, _fit(_frame(300, seed=1)))
    registry.set_policy("credit", Policy([Fairness("group")]), project=P)
    result = registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET)
    assert not result.passed
    assert "'group' is not in the evaluation data" in result.results[0].reason


# --- latency -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("budget_ms", "passed"), [(1e-6, False), (60_000.0, True)])
def test_latency_budget(
    registry: RegistryClient, data: DataClient, budget_ms: float, passed: bool
) -> None:
    _register(registry, _fit(_frame(300, seed=1)))
    registry.set_policy("credit", Policy([Latency(p95_ms=budget_ms)]), project=P)
    result = registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET)
    [outcome] = result.results
    assert outcome.passed is passed
    assert outcome.details["p95_ms"] > 0
    if passed:
        registry.promote("credit/1", project=P)
    else:
        assert "over the budget" in outcome.reason
        assert _promote_refused(registry, "credit/1") == [outcome.name]


# --- approvals ---------------------------------------------------------------------------------


def test_approvals_count_distinct_identities_and_separate_duties(
    registry: RegistryClient, data: DataClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "carol")
    version = _register(registry, _fit(_frame(300, seed=1)))
    assert version.registered_by == "carol" == current_identity()
    check = Approvals(count=2, separation_of_duties=True)
    registry.set_policy("credit", Policy([check]), project=P)
    result = registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET)
    assert not result.passed
    assert "0 of 2 required approval(s)" in result.results[0].reason

    with pytest.raises(ApprovalError, match=r"carol registered credit/1.*separation of duties"):
        registry.approve("credit/1", project=P)  # the registering identity itself
    assert registry.approvals_of(version) == []

    act_as(monkeypatch, "alice")
    registry.approve("credit/1", project=P)
    assert _promote_refused(registry, "credit/1") == [check.name]
    with pytest.raises(ApprovalError, match="already approved"):
        registry.approve("credit/1", project=P)
    assert _promote_refused(registry, "credit/1") == [check.name]

    act_as(monkeypatch, "bob")
    registry.approve("credit/1", project=P)
    assert sorted(registry.approvals_of(version)) == [("alice", None), ("bob", None)]
    # Approvals given after the evaluation count: promote re-counts them.
    assert registry.promote("credit/1", project=P).aliases == ("champion",)


def test_approvals_by_role_count_only_that_role(
    registry: RegistryClient, data: DataClient, monkeypatch: pytest.MonkeyPatch, loopml_home: Path
) -> None:
    give_roles(loopml_home, {"engineering": ["alice"], "risk": ["bob"]})
    _register(registry, _fit(_frame(300, seed=1)))
    registry.set_policy("credit", Policy([Approvals(count=1, role="risk")]), project=P)
    registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET)
    act_as(monkeypatch, "alice")
    registry.approve("credit/1", project=P, role="engineering")
    assert _promote_refused(registry, "credit/1") == ["1 approval by risk"]
    act_as(monkeypatch, "bob")
    registry.approve("credit/1", project=P, role="risk")
    registry.promote("credit/1", project=P)


def test_every_failing_check_is_listed_and_a_later_evaluation_decides(
    registry: RegistryClient, data: DataClient
) -> None:
    _register(registry, _fit(_frame(300, seed=1)))
    test = _test_data(data)
    registry.set_policy(
        "credit",
        "- accuracy >= 0.99\n- {kind: latency, p95_ms: 0.000001}\n- accuracy >= 0.5\n",
        project=P,
    )
    result = registry.evaluate("credit/1", test, project=P, target=TARGET)
    failing = [name for name, _ in result.failures]
    assert failing == ["accuracy >= 0.99", "p95 latency <= 1e-06 ms"]
    assert _promote_refused(registry, "credit/1") == failing

    registry.set_policy("credit", "- accuracy >= 0.5\n", project=P)
    assert registry.evaluate("credit/1", test, project=P, target=TARGET).passed
    registry.promote("credit/1", project=P)


# --- regressions: stale evaluations and the training data's lineage --------------------------


def test_a_check_added_after_the_evaluation_is_not_skipped_by_promote(
    registry: RegistryClient, data: DataClient
) -> None:
    _register(registry, _fit(_frame(300, seed=1)))
    registry.set_policy("credit", Policy([MetricThreshold.parse("accuracy >= 0.5")]), project=P)
    assert registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET).passed
    strict = Policy([MetricThreshold.parse("accuracy >= 0.5"), Latency(p95_ms=1e-6)])
    registry.set_policy("credit", strict, project=P)
    assert _promote_refused(registry, "credit/1") == ["p95 latency <= 1e-06 ms"]


def test_data_quality_fails_when_one_training_dataset_is_unchecked(
    registry: RegistryClient, data: DataClient, tracking: TrackingClient
) -> None:
    first = _frame(300, seed=10)
    data.register("credit-train", first, project=P)
    checked = data.register("credit-train", first.iloc[:250], project=P)
    assert checked.report_passed is True
    unchecked = data.register("credit-extra", _frame(50, seed=3), project=P)
    assert unchecked.report_passed is None
    run_id = tracking.create_run(project=P, name="train", capture_context=False)
    model = _fit(data.load(checked.ref, project=P, run_id=run_id))
    data.load(unchecked.ref, project=P, run_id=run_id)
    tracking.end_run(run_id)
    version = _register(registry, model, run_id=run_id)
    assert set(version.datasets) == {checked.ref, unchecked.ref}
    registry.set_policy("credit", Policy([DataQuality()]), project=P)
    result = registry.evaluate("credit/1", _test_data(data), project=P, target=TARGET)
    assert not result.passed
    assert "no data-quality report" in result.results[0].reason


def test_only_the_datasets_the_run_loaded_are_recorded_as_training_data(
    registry: RegistryClient, data: DataClient, tracking: TrackingClient
) -> None:
    raw = _frame(100, seed=1)
    data.register("credit-raw", raw, project=P)
    derived = data.register("credit-train", raw.iloc[:80], project=P, parents=["credit-raw:1"])
    run_id = tracking.create_run(project=P, name="train", capture_context=False)
    model = _fit(data.load(derived.ref, project=P, run_id=run_id))
    tracking.end_run(run_id)
    version = _register(registry, model, run_id=run_id)
    assert version.datasets == ("credit-train:1",)
