"""``loopml approvals …`` with a pipeline waiting at its gate: list, approve, reject, resume."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cli_support import Cli

from identity_support import act_as, give_roles
from loopml.approvals import current_identity

GATED = """
import loopml


@loopml.step
def make(n: int) -> list:
    return list(range(n))


@loopml.step
def total(xs: list) -> int:
    return sum(xs)


@loopml.pipeline
def gated(n: int = 3):
    xs = make(n)
    loopml.approval_gate("Ship the total?")
    total(xs)
"""


@pytest.fixture
def waiting(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The id of a pipeline run waiting at its gate (approval 1)."""
    module = f"lp_gated_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(GATED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    result = cli("pipelines", "run", f"{module}:gated")
    assert result.exit_code == 0, result.output
    run_id = json.loads(cli("pipelines", "list", "--json").stdout)[0]["id"]
    out = result.stdout
    assert "⏸ approval  waiting_for_approval  approval 1" in out
    assert f"Pipeline run {run_id} waits for approval 1 at gate 'approval': Ship the total?" in out
    assert "loopml approvals approve 1" in out
    assert f"loopml pipelines resume {run_id}" in out
    yield run_id
    sys.modules.pop(module, None)


@pytest.fixture
def waiting_for_risk(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The id of a pipeline run waiting at a gate only the role ``risk`` may decide."""
    module = f"lp_gated_{uuid.uuid4().hex[:8]}"
    gated = GATED.replace('"Ship the total?"', '"Ship the total?", approvers_role="risk"')
    (tmp_path / f"{module}.py").write_text(gated)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    result = cli("pipelines", "run", f"{module}:gated")
    assert result.exit_code == 0, result.output
    yield json.loads(cli("pipelines", "list", "--json").stdout)[0]["id"]
    sys.modules.pop(module, None)


def _one_error_line(result: object, starts: str) -> None:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {starts}"), lines[0]


def test_list_shows_the_pending_approval(cli: Cli, waiting: str) -> None:
    (approval,) = json.loads(cli("approvals", "list", "--json").stdout)
    assert approval["id"] == 1
    assert approval["status"] == "pending"
    assert approval["object_kind"] == "pipeline_run"
    assert approval["object_id"] == waiting
    assert approval["message"] == "Ship the total?"
    assert approval["decided_by"] is None

    table = cli("approvals", "list").stdout
    assert "Approvals, newest first" in table
    assert f"run {waiting[:8]}" in table
    assert "Ship the total?" in table
    assert "No approved approvals." in cli("approvals", "list", "--status", "approved").stdout
    shown = json.loads(cli("pipelines", "show", waiting, "--json").stdout)
    assert shown["status"] == "waiting_for_approval"
    assert shown["steps"]["approval"]["approval_id"] == 1
    assert shown["steps"]["total"]["status"] == "pending"


def test_approve_then_resume_goes_past_the_gate(cli: Cli, waiting: str) -> None:
    result = cli("approvals", "approve", "1", "--comment", "numbers look right")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Approved approval 1 by ")
    assert f"To continue past the gate: loopml pipelines resume {waiting}" in result.stdout
    (approval,) = json.loads(cli("approvals", "list", "--status", "approved", "--json").stdout)
    assert approval["comment"] == "numbers look right"
    assert approval["decided_by"]
    assert approval["decided_at"] >= approval["requested_at"]

    resumed = cli("pipelines", "resume", waiting)
    assert resumed.exit_code == 0, resumed.output
    assert "✓ approval  approved" in resumed.stdout
    assert "✓ total " in resumed.stdout
    shown = json.loads(cli("pipelines", "show", waiting, "--json").stdout)
    assert shown["status"] == "finished"
    assert shown["steps"]["total"]["status"] == "finished"


def test_reject_then_resume_ends_the_run_as_rejected(cli: Cli, waiting: str) -> None:
    result = cli("approvals", "reject", "1", "--comment", "not this week")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Rejected approval 1 by ")
    assert "To end it as rejected" in result.stdout

    resumed = cli("pipelines", "resume", waiting)
    assert resumed.exit_code == 0, resumed.output
    assert f"Pipeline run {waiting} stopped: its approval was rejected" in resumed.stdout
    shown = json.loads(cli("pipelines", "show", waiting, "--json").stdout)
    assert shown["status"] == "rejected"
    assert shown["steps"]["total"]["status"] == "pending"
    _one_error_line(cli("pipelines", "resume", waiting), f"Pipeline run {waiting} is rejected")


def test_deciding_twice_is_refused_and_changes_nothing(cli: Cli, waiting: str) -> None:
    assert cli("approvals", "approve", "1").exit_code == 0
    _one_error_line(
        cli("approvals", "reject", "1", "--comment", "changed my mind"),
        "Approval 1 was already approved by ",
    )
    _one_error_line(cli("approvals", "approve", "1"), "Approval 1 was already approved by ")
    (approval,) = json.loads(cli("approvals", "list", "--json").stdout)
    assert approval["status"] == "approved"
    assert approval["comment"] is None


def test_unknown_approval_and_empty_list(cli: Cli) -> None:
    _one_error_line(cli("approvals", "approve", "99"), "No approval with id 99.")
    assert "No approvals." in cli("approvals", "list").stdout
    assert json.loads(cli("approvals", "list", "--json").stdout) == []
    assert cli("approvals", "list", "--status", "maybe").exit_code == 2  # a usage error


def test_a_gate_for_a_role_is_decided_only_by_an_identity_holding_it(
    cli: Cli, waiting_for_risk: str, loopml_home: Path
) -> None:
    """Issue 12 item 9: a gate's approvers' role is checked against the roles file."""
    me = current_identity()
    path = loopml_home / "approver-roles.yaml"
    for decision in ("approve", "reject"):
        _one_error_line(
            cli("approvals", decision, "1"), f"{me!r} does not hold the approver role 'risk'"
        )
    (approval,) = json.loads(cli("approvals", "list", "--json").stdout)
    assert (approval["status"], approval["approvers_role"]) == ("pending", "risk")
    assert str(path) in cli("approvals", "roles").stdout

    give_roles(loopml_home, {"risk": ["someone-else"]})
    refused = cli("approvals", "approve", "1")
    _one_error_line(refused, f"{me!r} does not hold the approver role 'risk'")
    assert f"{path} does not list {me!r} under 'risk'" in refused.stderr

    give_roles(loopml_home, {"risk": ["someone-else", str(me)]})
    listed = json.loads(cli("approvals", "roles", "--json").stdout)
    assert listed == {"file": str(path), "roles": {"risk": sorted(["someone-else", str(me)])}}
    table = cli("approvals", "roles").stdout
    assert f"You are {me}." in table
    assert "risk" in table
    assert ", ".join(sorted(["someone-else", str(me)])) in table
    approved = cli("approvals", "approve", "1", "--comment", "risk signed off")
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.startswith(f"Approved approval 1 by {me}")
    resumed = cli("pipelines", "resume", waiting_for_risk)
    assert resumed.exit_code == 0, resumed.output
    assert "✓ total " in resumed.stdout


def test_models_approve_with_a_role_needs_it_by_configuration(
    cli: Cli, loopml_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 9: 'loopml models approve --role' is checked; there is no '--as'."""
    from sklearn.linear_model import LogisticRegression

    from loopml.registry import _api as sdk

    act_as(monkeypatch, "carol")
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    sdk.register(LogisticRegression().fit(X, [0, 0, 1, 1]), "clf", project="proj")
    act_as(monkeypatch, "alice")

    _one_error_line(
        cli("models", "approve", "clf/1", "--role", "risk", "-p", "proj"),
        "'alice' does not hold the approver role 'risk'",
    )
    assert cli("models", "approve", "clf/1", "--as", "bob", "-p", "proj").exit_code == 2
    assert (
        json.loads(cli("models", "show", "clf/1", "-p", "proj", "--json").stdout)["approvals"] == []
    )

    give_roles(loopml_home, {"risk": ["alice"]})
    approved = cli("models", "approve", "clf/1", "--role", "risk", "-p", "proj")
    assert approved.exit_code == 0, approved.output
    assert "Approved clf/1 as alice (role risk)" in approved.stdout
    assert json.loads(cli("models", "show", "clf/1", "-p", "proj", "--json").stdout)[
        "approvals"
    ] == [{"identity": "alice", "role": "risk"}]


def test_decisions_print_the_approval_as_json(cli: Cli, waiting: str) -> None:
    result = cli("approvals", "approve", "1", "--comment", "fine", "--json")
    assert result.exit_code == 0, result.output
    decided = json.loads(result.stdout)
    assert decided["id"] == 1 and decided["status"] == "approved"
    assert (decided["object_kind"], decided["object_id"]) == ("pipeline_run", waiting)
    assert decided["comment"] == "fine" and decided["decided_by"]
