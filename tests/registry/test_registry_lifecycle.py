"""The model registry's lifecycle contract: every test runs on SQLite and on PostgreSQL.

Register → load → reference → approve/reject → promote → roll back → archive, the
errors each step raises on bad input, and registration from a run's logged model
with its params, metrics and lineage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
import loopml.data
from identity_support import act_as, give_roles
from loopml.approvals import current_identity
from loopml.artifacts import ArtifactStore
from loopml.errors import (
    ApprovalError,
    InvalidParameter,
    ModelError,
    ModelNotFound,
    PromotionRefused,
    RunNotFound,
    UntrustedModelError,
)
from loopml.registry import ModelVersion, RegistryClient
from loopml.store import Node, open_store, walk
from loopml.tracking import _fluent

P = "p"


@pytest.fixture
def registry(store_uri: str, tmp_path: Path) -> Iterator[RegistryClient]:
    store = open_store(store_uri)
    yield RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _data(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(0.0, 1.0, rows),
            "debt": rng.normal(0.0, 1.0, rows),
        }
    )
    logit = 2.0 * frame["income"] - 1.5 * frame["debt"] + 0.02 * (frame["age"] - 50)
    target = pd.Series((logit + rng.logistic(size=rows) > 0).astype("int64"), name="default")
    return frame, target


def _model(seed: int = 0, c: float = 1.0) -> tuple[LogisticRegression, pd.DataFrame]:
    X, y = _data(seed=seed)
    return LogisticRegression(C=c, max_iter=5000).fit(X, y), X


def _register(registry: RegistryClient, name: str = "credit", seed: int = 0) -> ModelVersion:
    model, X = _model(seed)
    return registry.register(model, name, project=P, input_example=X.head(5))


def _state(registry: RegistryClient, name: str = "credit") -> object:
    """Everything a refused call must leave unchanged."""
    return (
        registry.list_versions(name, project=P),
        registry.get_model(name, project=P),
        registry.alias_history(name, project=P),
    )


# --- register and load -----------------------------------------------------------------


def test_register_records_the_version_and_load_predicts_like_the_original(
    registry: RegistryClient,
) -> None:
    model, X = _model()
    version = registry.register(
        model,
        "credit",
        project=P,
        input_example=X.head(5),
        description="baseline",
        tags={"team": "risk"},
    )
    assert (version.ref, version.version, version.status) == ("credit/1", 1, "candidate")
    assert (version.flavor, version.executable) == ("sklearn", False)
    assert version.registered_by == current_identity()
    assert (version.description, version.tags) == ("baseline", {"team": "risk"})
    assert version.source_run_id is None and version.datasets == ()
    assert version.signature is not None
    assert [(c.name, c.type) for c in version.signature.inputs] == [
        ("age", "integer"),
        ("income", "float"),
        ("debt", "float"),
    ]

    loaded = registry.load("credit/1", project=P)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=0, atol=0)
    assert loaded.version == registry.get_version("credit/1", project=P)
    pd.testing.assert_frame_equal(
        registry.input_example("credit/1", project=P), X.head(5), check_dtype=False
    )

    with pytest.raises(RunNotFound):
        registry.register(model, "credit", project=P, run_id="0" * 32)
    second = registry.register(model, "credit", project=P)
    assert second.version == 2
    assert [v.version for v in registry.list_versions("credit", project=P)] == [1, 2]
    [listed] = registry.list_models(project=P)
    assert (listed.name, listed.latest_version, listed.aliases) == ("credit", 2, {})
    assert registry.list_models(project="elsewhere") == []


def test_a_deleted_run_cannot_be_a_model_versions_source(registry: RegistryClient) -> None:
    from loopml.errors import RunStateError
    from loopml.tracking import TrackingClient

    tracking = TrackingClient.over(registry.store, registry.artifacts)
    run_id = tracking.create_run(project=P, capture_context=False)
    tracking.end_run(run_id)
    tracking.delete_run(run_id)
    model, _ = _model()

    with pytest.raises(RunStateError, match=r"deleted.*loopml runs restore"):
        registry.register(model, "credit", project=P, run_id=run_id)
    assert registry.list_models(project=P) == []

    tracking.restore_run(run_id)
    assert registry.register(model, "credit", project=P, run_id=run_id).version == 1


def test_references_by_name_number_alias_and_models_uri(registry: RegistryClient) -> None:
    for seed in range(3):
        _register(registry, seed=seed)
    registry.promote("credit/1", project=P)  # no policy: nothing to pass

    def number(ref: str) -> int:
        return registry.get_version(ref, project=P).version

    assert number("credit") == 3  # the newest usable version
    assert number("credit/2") == 2
    assert number("models:/credit/2") == 2
    assert number("credit@champion") == 1
    assert number("models:/credit@champion") == 1
    assert registry.get_version("credit@champion", project=P).aliases == ("champion",)

    registry.reject("credit/3", project=P)
    assert number("credit") == 2  # rejected versions are skipped by the bare name
    registry.archive("credit/2", project=P)
    assert number("credit") == 1  # archived ones too; approved (promoted) ones are usable
    assert number("credit/3") == 3  # but stay reachable by number


def test_unknown_model_version_or_alias_is_a_clear_model_not_found(
    registry: RegistryClient,
) -> None:
    with pytest.raises(ModelNotFound, match="No model named 'nope' in project 'p'"):
        registry.load("nope", project=P)
    assert registry.list_models(project=P) == []  # looking did not create it

    _register(registry)
    registry.promote("credit/1", project=P, alias="staging")
    with pytest.raises(ModelNotFound, match="has no version 7") as missing:
        registry.load("credit/7", project=P)
    assert isinstance(missing.value, KeyError)  # callers' except KeyError keeps working
    with pytest.raises(ModelNotFound, match=r"no alias 'champion' \(aliases: @staging → 1\)"):
        registry.load("credit@champion", project=P)
    with pytest.raises(ModelNotFound):
        registry.load("models:/credit/7", project=P)
    with pytest.raises(InvalidParameter, match="not a model reference"):
        registry.get_version("credit/1/2", project=P)
    assert [v.version for v in registry.list_versions("credit", project=P)] == [1]


# --- aliases: promote, history, rollback ---------------------------------------------------


def test_alias_history_records_every_move_and_rollback_moves_back(
    registry: RegistryClient,
) -> None:
    for seed in range(2):
        _register(registry, seed=seed)
    with pytest.raises(ModelError, match="no earlier version"):
        registry.rollback("credit", project=P)  # nothing to roll back yet

    promoted = registry.promote("credit/1", project=P)
    assert (promoted.aliases, promoted.status) == (("champion",), "approved")
    registry.promote("credit/2", project=P)
    assert registry.get_model("credit", project=P).aliases == {"champion": 2}
    assert registry.get_version("credit/1", project=P).aliases == ()

    back = registry.rollback("credit", project=P)
    assert (back.version, back.aliases) == (1, ("champion",))
    assert registry.get_version("credit@champion", project=P).version == 1

    history = registry.alias_history("credit", project=P)
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
    ]
    assert all(e.alias == "champion" and not e.forced for e in history)
    assert all(e.actor == current_identity() for e in history)
    assert [e.at for e in history] == sorted(e.at for e in history)

    registry.promote("credit/2", project=P, alias="challenger")
    assert len(registry.alias_history("credit", project=P)) == 4
    challenger = registry.alias_history("credit", project=P, alias="challenger")
    assert [e.to_version for e in challenger] == [2]
    with pytest.raises(ModelError, match="no earlier version"):
        registry.rollback("credit", project=P, alias="challenger")


def test_rollback_refuses_to_move_an_alias_onto_an_archived_version(
    registry: RegistryClient,
) -> None:
    for seed in range(2):
        _register(registry, seed=seed)
    registry.promote("credit/1", project=P)
    registry.promote("credit/2", project=P)
    registry.archive("credit/1", project=P)  # allowed: no alias points at it any more
    before = _state(registry)
    with pytest.raises(ModelError, match="pointed at credit/1 before, which is now archived"):
        registry.rollback("credit", project=P)
    assert _state(registry) == before


def test_promoting_the_current_version_again_does_not_break_rollback(
    registry: RegistryClient,
) -> None:
    for seed in range(2):
        _register(registry, seed=seed)
    registry.promote("credit/1", project=P)
    registry.promote("credit/2", project=P)
    registry.promote("credit/2", project=P)  # e.g. a retried deployment job: not a move
    assert registry.rollback("credit", project=P).version == 1
    history = registry.alias_history("credit", project=P)
    assert [(e.from_version, e.to_version) for e in history] == [(None, 1), (1, 2), (2, 1)]


def test_promote_without_an_evaluation_when_a_policy_exists_is_refused(
    registry: RegistryClient,
) -> None:
    _register(registry)
    registry.set_policy("credit", "- accuracy >= 0.5\n", project=P)
    before = _state(registry)
    with pytest.raises(PromotionRefused, match="has not been evaluated") as refused:
        registry.promote("credit/1", project=P)
    assert [name for name, _ in refused.value.failures] == ["evaluation"]
    assert _state(registry) == before


def test_forced_promotion_needs_a_reason_and_is_recorded(registry: RegistryClient) -> None:
    _register(registry)
    registry.set_policy("credit", "- accuracy >= 0.99\n", project=P)
    before = _state(registry)
    for reason in (None, "", "   "):
        with pytest.raises(ModelError, match="needs a reason"):
            registry.promote("credit/1", project=P, force=True, reason=reason)
    assert _state(registry) == before

    forced = registry.promote("credit/1", project=P, force=True, reason="hotfix INC-42")
    assert (forced.aliases, forced.status) == (("champion",), "approved")
    [event] = registry.alias_history("credit", project=P)
    assert (event.action, event.forced, event.reason, event.to_version) == (
        "promote",
        True,
        "hotfix INC-42",
        1,
    )


def test_bad_alias_names_are_refused(registry: RegistryClient) -> None:
    _register(registry)
    for alias in ("latest", "1st", "a b", ""):
        with pytest.raises(InvalidParameter, match="alias"):
            registry.promote("credit/1", project=P, alias=alias)
    assert registry.alias_history("credit", project=P) == []


# --- approvals, rejection, archive -------------------------------------------------------


def test_approving_twice_is_refused_and_counts_once(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch, loopml_home: Path
) -> None:
    version = _register(registry)
    give_roles(loopml_home, {"risk": ["bob"]})
    act_as(monkeypatch, "alice")
    registry.approve("credit/1", project=P, comment="looks good")
    assert registry.approvals_of(version) == [("alice", None)]
    with pytest.raises(ApprovalError, match="alice already approved credit/1"):
        registry.approve("credit/1", project=P)
    assert registry.approvals_of(version) == [("alice", None)]
    act_as(monkeypatch, "bob")
    registry.approve("credit/1", project=P, role="risk")
    assert sorted(registry.approvals_of(version)) == [("alice", None), ("bob", "risk")]


def test_a_rejected_version_cannot_be_promoted_approved_or_rejected_again(
    registry: RegistryClient,
) -> None:
    version = _register(registry)
    rejected = registry.reject("credit/1", project=P, comment="leaks the target")
    assert rejected.status == "rejected"
    before = _state(registry)
    with pytest.raises(ModelError, match="credit/1 is rejected; it cannot be promoted"):
        registry.promote("credit/1", project=P)
    with pytest.raises(ModelError, match="is rejected"):
        registry.promote("credit/1", project=P, force=True, reason="please")
    with pytest.raises(ApprovalError, match="is rejected; it cannot be approved"):
        registry.approve("credit/1", project=P)
    with pytest.raises(ApprovalError, match="already rejected"):
        registry.reject("credit/1", project=P)
    assert _state(registry) == before
    assert registry.approvals_of(version) == []


def test_reject_refuses_a_version_an_alias_points_at(registry: RegistryClient) -> None:
    _register(registry)
    registry.promote("credit/1", project=P)
    before = _state(registry)
    with pytest.raises(ApprovalError, match="@champion"):
        registry.reject("credit/1", project=P)
    assert _state(registry) == before


def test_archive_refuses_an_aliased_version(registry: RegistryClient) -> None:
    for seed in range(2):
        _register(registry, seed=seed)
    registry.promote("credit/1", project=P)
    before = _state(registry)
    with pytest.raises(ModelError, match=r"credit/1 is @champion; .* Move @champion first"):
        registry.archive("credit/1", project=P)
    assert _state(registry) == before

    archived = registry.archive("credit/2", project=P)
    assert archived.status == "archived"
    with pytest.raises(ModelError, match="archived"):
        registry.promote("credit/2", project=P)
    with pytest.raises(ApprovalError, match="archived"):
        registry.approve("credit/2", project=P)


# --- registering a run's model -------------------------------------------------------------


def test_register_from_a_run_records_its_params_metrics_and_lineage(fluent_store: str) -> None:
    X, y = _data()
    train = pd.concat([X, y], axis=1)
    dataset = loopml.data.register("credit-train", train)
    loopml.autolog()
    try:
        with loopml.start_run(name="train") as run:
            loaded = loopml.data.load("credit-train:1")
            model = LogisticRegression(C=0.5, max_iter=5000).fit(
                loaded.drop(columns=["default"]), loaded["default"]
            )
    finally:
        loopml.autolog(disable=True)

    version = loopml.models.register(f"runs:/{run.id}/model", "credit")
    assert (version.ref, version.source_run_id) == ("credit/1", run.id)
    assert version.params["C"] == "0.5"
    assert version.params["max_iter"] == "5000"
    assert version.metrics["training_accuracy"] > 0.7
    assert version.datasets == ("credit-train:1",)

    with _fluent.get_client().store.read() as conn:
        produced = walk(conn, Node("run", run.id), "downstream", max_depth=1)
        trained = walk(conn, Node("dataset_version", str(dataset.id)), "downstream", max_depth=1)
    node = Node("model_version", str(version.id))
    assert any(e.dst == node and e.relation == "produced" for e in produced)
    assert any(e.dst == node and e.relation == "trained_on" for e in trained)

    reloaded = loopml.models.load("credit/1")
    np.testing.assert_array_equal(reloaded.predict(X), model.predict(X))
    assert loopml.models.get("credit").version == 1
    assert [v.ref for v in loopml.models.versions("credit")] == ["credit/1"]


def test_register_from_a_run_refuses_what_autolog_did_not_log(
    fluent_store: str, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    with loopml.start_run(name="empty") as run:
        loopml.log_artifact(folder, "model")
    with pytest.raises(UntrustedModelError, match=r"not logged by loopml\.autolog"):
        loopml.models.register(f"runs:/{run.id}/model", "credit")
    with pytest.raises(ModelError, match=r"no loopml-model\.json"):
        loopml.models.register(f"runs:/{run.id}/model", "credit", trust=True)
    with pytest.raises(ModelError, match="has no artifact 'elsewhere'"):
        loopml.models.register(f"runs:/{run.id}/elsewhere", "credit", trust=True)
    with pytest.raises(InvalidParameter, match="runs:/RUN_ID/PATH"):
        loopml.models.register(f"runs:/{run.id}", "credit")
    assert loopml.models.list_models() == []
