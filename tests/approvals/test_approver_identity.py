"""Who approves: always the current identity; approver roles come from configuration.

Registry tests run on SQLite and PostgreSQL. People are simulated with the test
helper :func:`identity_support.act_as`, which loopml itself does not offer.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import loopml.registry
from identity_support import act_as, give_roles
from loopml import _identity
from loopml.approvals import ApprovalClient, load_roles, roles_file
from loopml.artifacts import ArtifactStore
from loopml.data import DataClient
from loopml.errors import ApprovalError, PromotionRefused, RoleNotHeld, SettingError
from loopml.registry import Approvals, Policy, RegistryClient
from loopml.store import open_store

P = "p"


@pytest.fixture
def registry(store_uri: str, tmp_path: Path) -> Iterator[RegistryClient]:
    store = open_store(store_uri)
    yield RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    return X.assign(y=(X["a"] > 0).astype("int64"))


def _register(registry: RegistryClient) -> None:
    frame = _frame()
    X = frame.drop(columns=["y"])
    model = LogisticRegression().fit(X, frame["y"])
    registry.register(model, "credit", project=P, input_example=X.head(3))


def _evaluate(registry: RegistryClient) -> None:
    data = DataClient(registry.store, registry.artifacts).register("eval", _frame(), project=P)
    registry.evaluate("credit/1", data.ref, project=P, target="y")


def _state(registry: RegistryClient) -> object:
    version = registry.get_version("credit/1", project=P)
    return version, registry.approvals_of(version), ApprovalClient(registry.store).list()


_DECIDING_CALLS: list[Callable[..., Any]] = [
    loopml.registry.approve,
    loopml.registry.reject,
    RegistryClient.approve,
    RegistryClient.reject,
    ApprovalClient.decide,
]


@pytest.mark.parametrize("call", _DECIDING_CALLS, ids=lambda c: c.__qualname__)
def test_no_public_call_decides_in_someone_elses_name(call: Callable[..., Any]) -> None:
    """Issue 12 item 9: no approving or rejecting call takes the name of who decides."""
    taken = set(inspect.signature(call).parameters)
    assert not taken & {"identity", "decided_by", "user", "actor", "as_", "approver"}, taken


def test_one_person_cannot_give_two_approvals(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 9: one person cannot satisfy "two approvals, separation of duties"."""
    act_as(monkeypatch, "carol")
    _register(registry)
    check = Approvals(count=2, separation_of_duties=True)
    registry.set_policy("credit", Policy([check]), project=P)
    _evaluate(registry)
    act_as(monkeypatch, "alice")
    registry.approve("credit/1", project=P)
    before = _state(registry)
    with pytest.raises(TypeError, match="identity"):
        registry.approve("credit/1", project=P, identity="bob")  # type: ignore[call-arg]
    with pytest.raises(ApprovalError, match="alice already approved credit/1"):
        registry.approve("credit/1", project=P)
    assert _state(registry) == before
    with pytest.raises(PromotionRefused, match=r"1 of 2 required approval\(s\) \(alice\)"):
        registry.promote("credit/1", project=P)
    act_as(monkeypatch, "bob")  # a second person, as the OS would report them
    registry.approve("credit/1", project=P)
    assert registry.promote("credit/1", project=P).aliases == ("champion",)


def test_an_approval_role_must_be_held_by_configuration(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch, loopml_home: Path
) -> None:
    """Issue 12 item 9: approve(role=...) is accepted only when the roles file gives the role."""
    act_as(monkeypatch, "carol")
    _register(registry)
    registry.set_policy("credit", Policy([Approvals(count=1, role="risk")]), project=P)
    _evaluate(registry)
    act_as(monkeypatch, "alice")
    before = _state(registry)
    path = roles_file()
    assert path == loopml_home / "approver-roles.yaml"

    with pytest.raises(RoleNotHeld, match="does not exist") as missing:
        registry.approve("credit/1", project=P, role="risk")
    assert (missing.value.identity, missing.value.role) == ("alice", "risk")
    assert "'alice' does not hold the approver role 'risk'" in str(missing.value)
    assert "LOOPML_APPROVER_ROLES" in str(missing.value)
    assert isinstance(missing.value, PermissionError)

    give_roles(loopml_home, {"risk": ["bob"]})
    with pytest.raises(RoleNotHeld, match=f"{path} does not list 'alice' under 'risk'"):
        registry.approve("credit/1", project=P, role="risk")
    give_roles(loopml_home, {"engineering": ["alice"]})
    with pytest.raises(RoleNotHeld, match="defines no role 'risk'"):
        registry.approve("credit/1", project=P, role="risk")
    assert _state(registry) == before  # nothing recorded by a refused approval

    give_roles(loopml_home, {"risk": ["alice", "bob"]})
    registry.approve("credit/1", project=P, role="risk")
    version = registry.get_version("credit/1", project=P)
    assert registry.approvals_of(version) == [("alice", "risk")]
    assert registry.promote("credit/1", project=P).aliases == ("champion",)


def test_the_roles_file_setting_names_another_file(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 12 item 9: LOOPML_APPROVER_ROLES points at the roles file in force."""
    elsewhere = give_roles(tmp_path / "governed", {"risk": ["alice"]})
    monkeypatch.setenv("LOOPML_APPROVER_ROLES", str(elsewhere))
    act_as(monkeypatch, "carol")
    _register(registry)
    act_as(monkeypatch, "alice")
    assert roles_file() == elsewhere
    registry.approve("credit/1", project=P, role="risk")
    version = registry.get_version("credit/1", project=P)
    assert registry.approvals_of(version) == [("alice", "risk")]


def test_an_unknown_identity_cannot_approve_or_reject(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 9: without an OS user name, no decision is recorded under a placeholder."""
    _register(registry)
    before = _state(registry)

    monkeypatch.setattr(_identity, "_account_name", lambda: None)
    with pytest.raises(ApprovalError, match="Cannot tell who is deciding"):
        registry.approve("credit/1", project=P)
    with pytest.raises(ApprovalError, match="Cannot tell who is deciding"):
        registry.reject("credit/1", project=P)
    assert _state(registry) == before


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[alice, bob]\n", "must map role names to lists of identities"),
        ("risk: alice\n", "role 'risk' must list identities"),
        ("risk: [alice, 7]\n", "each identity under 'risk' must be a non-empty string"),
        ("risk: ['']\n", "each identity under 'risk' must be a non-empty string"),
        ("1: [alice]\n", "each role name must be a non-empty string"),
        ("risk: [alice\n", "does not parse"),
        ("risk: !!python/object:os.system [alice]\n", "does not parse"),
    ],
)
def test_a_malformed_roles_file_is_a_setting_error(
    registry: RegistryClient,
    monkeypatch: pytest.MonkeyPatch,
    loopml_home: Path,
    text: str,
    problem: str,
) -> None:
    """Issue 12 item 9: a bad roles file is reported by name, and no approval is recorded."""
    act_as(monkeypatch, "carol")
    _register(registry)
    before = _state(registry)
    loopml_home.mkdir(parents=True, exist_ok=True)
    path = loopml_home / "approver-roles.yaml"
    path.write_text(text, encoding="utf-8")
    act_as(monkeypatch, "alice")
    with pytest.raises(SettingError, match=str(path)) as raised:
        registry.approve("credit/1", project=P, role="risk")
    assert problem in str(raised.value)
    assert _state(registry) == before


def test_an_oversized_roles_file_is_refused(loopml_home: Path) -> None:
    """Issue 12 item 9: the roles file has an explicit size limit."""
    loopml_home.mkdir(parents=True)
    (loopml_home / "approver-roles.yaml").write_text(
        "risk: [" + ", ".join(f"user{i}" for i in range(200_000)) + "]\n", encoding="utf-8"
    )
    with pytest.raises(SettingError, match="larger than"):
        load_roles()


_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(lambda s: s.strip() != "")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dictionaries(_names, st.lists(_names, max_size=5), max_size=5))
def test_any_valid_roles_file_reads_back_exactly(
    loopml_home: Path, roles: dict[str, list[str]]
) -> None:
    """Issue 12 item 9: whatever names a roles file holds, they are read back as written."""
    give_roles(loopml_home, roles)
    assert load_roles() == {role: frozenset(who) for role, who in roles.items()}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200))
def test_any_bytes_in_the_roles_file_give_roles_or_a_setting_error(
    loopml_home: Path, raw: bytes
) -> None:
    """Issue 12 item 9: arbitrary file content never escapes as another error type."""
    loopml_home.mkdir(parents=True, exist_ok=True)
    (loopml_home / "approver-roles.yaml").write_bytes(raw)
    try:
        roles = load_roles()
    except SettingError:
        return
    assert all(isinstance(r, str) and isinstance(w, frozenset) for r, w in roles.items())


def test_the_user_environment_variables_do_not_choose_who_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12 item 9: ``USER=alice loopml models approve …`` does not approve as alice.

    The identity is the account the process runs as, looked up by user id.
    """
    import pwd

    account = pwd.getpwuid(os.getuid()).pw_name
    for variable in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, f"not-{account}")
    assert _identity.current_identity() == account
