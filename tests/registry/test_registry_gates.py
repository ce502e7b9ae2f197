"""Gates that cannot vanish silently: empty policies refused, clears recorded, typos warned.

Issue 13, "Gates that cannot vanish silently": an empty policy (an empty file, ``[]``,
only comments) used to be stored as zero checks, after which any version was
promoted. Every back-end (SQLite and PostgreSQL).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from identity_support import act_as
from loopml.artifacts import ArtifactStore
from loopml.errors import (
    ApprovalError,
    EmptyPolicyError,
    InvalidParameter,
    ModelError,
    ModelNotFound,
    PolicyWarning,
    PromotionRefused,
)
from loopml.registry import Approvals, MetricThreshold, ModelVersion, Policy, RegistryClient
from loopml.registry._policy_ops import unknown_metric_messages
from loopml.store import open_store

P = "p"
EMPTY_POLICIES = ["", "\n", "# only a comment\n# and another\n", "[]\n", "checks: []\n", "---\n"]


@pytest.fixture
def registry(store_uri: str, tmp_path: Path) -> Iterator[RegistryClient]:
    store = open_store(store_uri)
    yield RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _register(registry: RegistryClient, name: str = "credit") -> ModelVersion:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (X["a"] > 0).astype("int64")
    return registry.register(LogisticRegression().fit(X, y), name, project=P, input_example=X[:5])


def _state(registry: RegistryClient) -> object:
    return (
        registry.get_model("credit", project=P),
        registry.get_policy("credit", project=P),
        registry.policy_history("credit", project=P),
    )


@pytest.mark.parametrize("text", EMPTY_POLICIES)
def test_an_empty_policy_is_refused_and_changes_nothing(
    registry: RegistryClient, text: str
) -> None:
    _register(registry)
    registry.set_policy("credit", "- accuracy >= 0.9\n", project=P)
    before = _state(registry)
    with pytest.raises(EmptyPolicyError, match=r"has no checks .*clear_policy\('credit'"):
        registry.set_policy("credit", text, project=P)
    with pytest.raises(EmptyPolicyError):
        registry.set_policy("credit", Policy([]), project=P)
    assert _state(registry) == before
    # The gate still holds: an unevaluated version is not promoted.
    with pytest.raises(PromotionRefused, match="has not been evaluated"):
        registry.promote("credit/1", project=P)


def test_clearing_needs_a_reason_and_is_recorded(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(registry)
    act_as(monkeypatch, "alice")
    registry.set_policy("credit", "- accuracy >= 0.9  # the bar\n", project=P)
    before = _state(registry)
    for reason in (None, "", "   "):
        with pytest.raises(InvalidParameter, match="needs a reason"):
            registry.clear_policy("credit", project=P, reason=reason)
    with pytest.raises(InvalidParameter, match="at most 2000"):
        registry.clear_policy("credit", project=P, reason="x" * 2001)
    with pytest.raises(InvalidParameter, match="pass no policy"):
        registry.set_policy("credit", "- auc >= 0.5\n", project=P, clear=True, reason="r")
    assert _state(registry) == before

    act_as(monkeypatch, "bob")
    cleared = registry.set_policy("credit", project=P, clear=True, reason="gate moves to CI")
    assert cleared == Policy([]) == registry.get_policy("credit", project=P)
    model = registry.get_model("credit", project=P)
    assert model.policy is None
    assert model.policy_event is not None
    assert (model.policy_event.action, model.policy_event.actor) == ("policy_clear", "bob")
    assert model.policy_event.reason == "gate moves to CI"
    # A deliberate clear opens the gate, and says so in the history.
    assert registry.promote("credit/1", project=P).aliases == ("champion",)
    with pytest.raises(ModelError, match="has no promotion policy; there is nothing to clear"):
        registry.clear_policy("credit", project=P, reason="again")

    history = registry.policy_history("credit", project=P)
    assert [(e.action, e.revision, e.actor, e.reason) for e in history] == [
        ("policy_set", 1, "alice", None),
        ("policy_clear", 2, "bob", "gate moves to CI"),
    ]
    assert history[0].policy == Policy.from_yaml("- accuracy >= 0.9\n").to_dict()["checks"]
    assert history[0].policy_text == "- accuracy >= 0.9  # the bar\n"  # the text as given
    assert all(e.at > 0 for e in history)


def test_every_set_is_recorded_with_its_text(registry: RegistryClient) -> None:
    _register(registry)
    registry.set_policy("credit", "- accuracy >= 0.5\n", project=P, reason="first bar")
    registry.set_policy("credit", Policy([Approvals(count=1)]), project=P)
    history = registry.policy_history("credit", project=P)
    assert [(e.action, e.revision, e.reason) for e in history] == [
        ("policy_set", 1, "first bar"),
        ("policy_set", 2, None),
    ]
    assert history[1].policy_text == Policy([Approvals(count=1)]).to_yaml()
    assert registry.get_model("credit", project=P).policy_event == history[1]
    assert registry.model_events("credit", project=P) == history
    with pytest.raises(ModelNotFound):
        registry.policy_history("nope", project=P)


def test_an_over_long_policy_text_is_refused(registry: RegistryClient) -> None:
    _register(registry)
    with pytest.raises(ModelError, match="at most 262,144"):
        registry.set_policy("credit", "- accuracy >= 0.5\n" + "#" * 262_144, project=P)
    assert registry.policy_history("credit", project=P) == []


def test_unknown_metrics_are_warned_about_with_the_closest_known_one(
    registry: RegistryClient,
) -> None:
    _register(registry)
    with pytest.warns(PolicyWarning) as caught:
        registry.set_policy("credit", "- aucc >= 0.8\n- accuracy >= 0.5\n", project=P)
    assert len(caught) == 1
    assert caught[0].filename == __file__  # points at the caller, not at loopml
    message = str(caught[0].message)
    assert "names the metric 'aucc', which no version has reported" in message
    assert "Did you mean 'auc'?" in message
    assert "evaluation computes: accuracy, auc, f1, log_loss" in message
    # Stored all the same: the warning is advice, the policy is the user's.
    assert registry.get_policy("credit", project=P).checks[0].name == "aucc >= 0.8"


def test_known_metrics_warn_about_nothing(registry: RegistryClient) -> None:
    _register(registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.set_policy("credit", "- auc >= 0.8\n- rmse <= 3\n", project=P)


def test_a_run_metric_is_named_as_such() -> None:
    policy = Policy([MetricThreshold.parse("val_auc >= 0.8"), MetricThreshold.parse("AUC > 0.5")])
    first, second = unknown_metric_messages("credit", policy, ["custom"], ["val_auc", "loss"])
    assert "'val_auc', which the versions' training runs logged" in first
    assert "Metrics the versions report: custom, loss, val_auc" in first
    assert "Did you mean 'auc'?" in second  # case folded first
    assert (
        unknown_metric_messages(
            "credit", Policy([MetricThreshold.parse("custom > 1")]), ["custom"], []
        )
        == []
    )


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20))
def test_a_warning_names_every_unknown_metric(metric: str) -> None:
    from loopml.registry._stats import METRICS

    policy = Policy([MetricThreshold(metric, ">=", 0.5)])
    messages = unknown_metric_messages("m", policy, [], [])
    assert len(messages) == (0 if metric in METRICS else 1)
    assert all(repr(metric) in m for m in messages)


def test_a_self_approval_names_the_way_forward(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "alice")
    _register(registry)
    registry.set_policy(
        "credit", Policy([Approvals(count=1, separation_of_duties=True)]), project=P
    )
    with pytest.raises(ApprovalError) as refused:
        registry.approve("credit/1", project=P)
    message = str(refused.value)
    assert "alice registered credit/1" in message
    assert "check '1 approval'" in message
    assert "another identity approves it" in message
    assert "separation_of_duties: false" in message
    assert "loopml models policy credit --set FILE" in message
    assert registry.approvals_of(registry.get_version("credit/1", project=P)) == []


def test_the_sdk_clears_with_a_reason_and_warns_at_the_callers_line(
    fluent_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import loopml

    monkeypatch.setenv("LOOPML_ARTIFACT_URI", str(tmp_path / "sdk-artifacts"))
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40)})
    model = LogisticRegression().fit(X, (X["a"] > 0).astype("int64"))
    loopml.models.register(model, "credit", project=P, input_example=X[:5])
    with pytest.warns(PolicyWarning, match="'f1_score'") as caught:
        loopml.models.set_policy("credit", "- f1_score >= 0.5\n", project=P)
    assert caught[0].filename == __file__
    with pytest.raises(EmptyPolicyError):
        loopml.models.set_policy("credit", "[]", project=P)
    loopml.models.clear_policy("credit", reason="experiment over", project=P)
    history = loopml.models.policy_history("credit", project=P)
    assert [(e.action, e.reason) for e in history] == [
        ("policy_set", None),
        ("policy_clear", "experiment over"),
    ]
