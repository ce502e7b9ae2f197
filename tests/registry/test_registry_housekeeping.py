"""Archiving versions and the requirements every version carries (issue 13, housekeeping).

Every back-end (SQLite and PostgreSQL); real models, real artifact folders.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import loopml
from identity_support import act_as
from loopml.artifacts import ArtifactStore
from loopml.errors import ApprovalError, InvalidParameter, ModelError, ModelNotFound
from loopml.registry import ModelVersion, RegistryClient
from loopml.registry._requirements import model_requirements
from loopml.store import open_store

P = "p"


@pytest.fixture
def registry(store_uri: str, tmp_path: Path) -> Iterator[RegistryClient]:
    store = open_store(store_uri)
    yield RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _model(seed: int = 0) -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    return LogisticRegression().fit(X, (X["a"] > 0).astype("int64")), X


def _register(registry: RegistryClient, seed: int = 0, **kwargs: object) -> ModelVersion:
    model, X = _model(seed)
    return registry.register(model, "credit", project=P, input_example=X[:5], **kwargs)  # type: ignore[arg-type]


# --- archive ------------------------------------------------------------------------------


def test_archive_and_unarchive_are_recorded_and_restore_the_status(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "alice")
    for seed in range(3):
        _register(registry, seed)
    registry.promote("credit/2", project=P)
    registry.promote("credit/3", project=P)  # 2 is approved and free of aliases now
    archived = registry.archive("credit/2", project=P, reason="superseded by 3")
    assert archived.status == "archived"
    assert registry.archive("credit/1", project=P).status == "archived"
    with pytest.raises(ModelError, match="credit/2 is already archived"):
        registry.archive("credit/2", project=P)

    assert registry.unarchive("models:/credit/2", project=P).status == "approved"
    assert registry.unarchive("credit/1", project=P, reason="needed").status == "candidate"
    with pytest.raises(ModelError, match="credit/1 is candidate, not archived"):
        registry.unarchive("credit/1", project=P)
    events = registry.model_events("credit", project=P)
    assert [(e.action, e.version, e.status_before, e.reason, e.actor) for e in events] == [
        ("archive", 2, "approved", "superseded by 3", "alice"),
        ("archive", 1, "candidate", None, "alice"),
        ("unarchive", 2, "archived", None, "alice"),
        ("unarchive", 1, "archived", "needed", "alice"),
    ]
    assert registry.policy_history("credit", project=P) == []


def test_an_archived_version_cannot_be_promoted_approved_or_aliased(
    registry: RegistryClient,
) -> None:
    for seed in range(2):
        _register(registry, seed)
    registry.archive("credit/2", project=P)
    before = (registry.get_model("credit", project=P), registry.alias_history("credit", project=P))
    with pytest.raises(ModelError, match=r"credit/2 is archived; .* Unarchive it first"):
        registry.promote("credit/2", project=P)
    with pytest.raises(ModelError, match="unarchive credit/2"):
        registry.promote("credit/2", project=P, alias="staging", force=True, reason="try")
    with pytest.raises(ApprovalError, match="archived"):
        registry.approve("credit/2", project=P)
    assert (
        registry.get_model("credit", project=P),
        registry.alias_history("credit", project=P),
    ) == before
    # A bare name skips it; its number still finds and loads it.
    assert registry.get_version("credit", project=P).version == 1
    assert registry.load("credit/2", project=P).version.status == "archived"


def test_archive_refuses_an_aliased_version_naming_the_alias_to_move(
    registry: RegistryClient,
) -> None:
    _register(registry)
    registry.promote("credit/1", project=P)
    registry.promote("credit/1", project=P, alias="challenger")
    with pytest.raises(ModelError) as refused:
        registry.archive("credit@champion", project=P)
    message = str(refused.value)
    assert "Model credit/1 is @challenger, @champion; an archived version cannot hold" in message
    assert "Move @challenger first" in message
    assert "loopml models rollback credit --alias challenger" in message
    assert registry.get_version("credit/1", project=P).status == "approved"
    assert registry.model_events("credit", project=P) == []
    with pytest.raises(ModelNotFound):
        registry.archive("credit/9", project=P)
    with pytest.raises(InvalidParameter, match="at most 2000"):
        registry.archive("credit/1", project=P, reason="x" * 2001)


def test_the_sdk_archives_by_one_reference(
    fluent_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOOPML_ARTIFACT_URI", str(tmp_path / "sdk-artifacts"))
    model, X = _model()
    loopml.models.register(model, "credit", project=P, input_example=X[:5])
    assert loopml.models.archive("credit/1", reason="old", project=P).status == "archived"
    assert loopml.models.unarchive("credit/1", project=P).status == "candidate"


# --- requirements ------------------------------------------------------------------------


def test_a_version_carries_its_flavors_pinned_requirements_and_extras(
    registry: RegistryClient, tmp_path: Path
) -> None:
    version = _register(registry, extra_pip=["pandas>=2", "scipy<99"])
    sklearn = importlib.metadata.version("scikit-learn")
    skops = importlib.metadata.version("skops")
    assert version.requirements is not None
    assert f"scikit-learn=={sklearn}" in version.requirements
    assert f"skops=={skops}" in version.requirements
    assert "pandas>=2" in version.requirements
    assert "scipy<99" in version.requirements  # the user's line replaces the captured pin
    assert not any(line.startswith("scipy==") for line in version.requirements)
    assert list(version.requirements) == sorted(version.requirements, key=lambda line: line.lower())
    # Part of the model folder, so part of the version's content digest.
    folder = registry.artifacts.get_dir(version.digest, tmp_path / "m")
    stored = (folder / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert stored == list(version.requirements)
    assert registry.get_version("credit/1", project=P).requirements == version.requirements


def test_a_version_from_before_requirements_says_so(registry: RegistryClient) -> None:
    from loopml.registry._card import build_card
    from loopml.store import tables

    _register(registry)
    with registry.store.write() as conn:  # as a store migrated from 0006 holds it
        conn.execute(tables.MODEL_VERSION.update().values(requirements=None))
    version = registry.get_version("credit/1", project=P)
    assert version.requirements is None
    card = build_card(registry, "credit/1", P)
    assert "Not recorded: the version was registered before" in card.to_markdown()
    assert "Not recorded: the version was registered before" in card.to_html()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["not a requirement!"], "is not a pip requirement"),
        (["pandas>=2", ""], "must be a non-empty requirement"),
        (["x" * 501], "at most 500 characters"),
        ("pandas>=2", "must be a list of requirement lines"),
        ([f"p{i}" for i in range(201)], "at most 200"),
    ],
)
def test_bad_extra_pip_is_refused_and_nothing_is_registered(
    registry: RegistryClient, extra: object, message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        _register(registry, extra_pip=extra)
    assert registry.list_models(project=P) == []


def test_pyfunc_requirements_name_the_packages_of_the_objects_classes() -> None:
    class Wrapper:
        def __init__(self) -> None:
            self.inner = LogisticRegression()
            self.table = pd.DataFrame()

        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(frame))

    names = {line.partition("==")[0] for line in model_requirements("pyfunc", Wrapper())}
    assert {"cloudpickle", "scikit-learn", "pandas"} <= names


def test_xgboost_requirements_find_the_distribution_by_its_module() -> None:
    xgboost = pytest.importorskip("xgboost")
    lines = model_requirements("xgboost", xgboost.XGBClassifier())
    (line,) = [x for x in lines if x.startswith("xgboost")]
    dist = line.partition("==")[0]
    assert importlib.metadata.version(dist) == line.partition("==")[2]


_PEP508_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,18}[A-Za-z0-9])?"


@given(st.lists(st.from_regex(_PEP508_NAME, fullmatch=True), max_size=5))
def test_the_users_line_wins_and_each_package_appears_once(names: list[str]) -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = model_requirements("onnx", object(), names)
    by_name = {canonicalize_name(Requirement(line).name): line for line in lines}
    assert len(by_name) == len(lines)
    for name in names:
        assert "==" not in by_name[canonicalize_name(name)]
