"""Pipelines across processes: resume after SIGKILL, and approval gates decided elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lp_project import flows

import loopml
from conftest import SCRIPT, Marks, run_script
from identity_support import act_as
from loopml.approvals import ApprovalClient
from loopml.errors import ApprovalError, InvalidParameter, StoreNotFound
from loopml.pipelines import PipelineRun, get_pipeline_run, list_pipeline_runs, resume
from loopml.tracking import get_client


def wait_for(predicate_run: str, step: str, status: str, process: subprocess.Popen[str]) -> str:
    """Poll the store until ``step`` of the only pipeline run has ``status``; its run id."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the pipeline process ended early: {process.communicate()}"
        try:
            runs = list_pipeline_runs(pipeline=predicate_run)
        except StoreNotFound:
            runs = []  # the pipeline process has not created the store yet
        if runs and runs[0].steps[step].status == status:
            return runs[0].id
        time.sleep(0.1)
    raise AssertionError(f"step {step!r} never became {status!r}")


def _wait_for_mark(step: str, process: subprocess.Popen[str]) -> None:
    """Wait until ``step``'s code has written its mark (when the test records marks)."""
    marks = os.environ.get("LP_PROJECT_MARKS")
    if marks is None:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the pipeline process ended early: {process.communicate()}"
        if Path(marks).exists() and step in Path(marks).read_text(encoding="utf-8").split():
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step!r} never wrote its mark")


def approvals() -> ApprovalClient:
    return ApprovalClient(get_client().store)


def gate_of(run: PipelineRun) -> int:
    approval_id = run.steps["approval"].approval_id
    assert approval_id is not None
    return approval_id


# -- SIGKILL ------------------------------------------------------------------------------


def kill_mid_step(project_env: dict[str, str]) -> PipelineRun:
    """Run ``holding`` in a child process, SIGKILL its process group while ``hold`` runs.

    Returns:
        The pipeline run as the store had it just before the kill.
    """
    env = {**project_env, "LP_PROJECT_HOLD": "60"}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "run", "lp_project.flows:holding", '{"n": 4}'],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the runner and its workers
    )
    try:
        run_id = wait_for("holding", "hold", "running", process)
        _wait_for_mark("hold", process)  # "running" is stored before the step's code starts
        killed = get_pipeline_run(run_id)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == -signal.SIGKILL
    return killed


@pytest.mark.slow
def test_a_run_killed_mid_step_resumes_reusing_the_finished_steps(
    marks: Marks, project_env: dict[str, str]
) -> None:
    killed = kill_mid_step(project_env)
    assert killed.steps["load"].status == "finished"
    assert killed.steps["hold"].status == "running"
    assert marks.counts() == {"load": 1, "hold": 1}

    resumed = resume(killed.id, max_workers=1)  # LP_PROJECT_HOLD is unset here: no sleep

    assert resumed.status == "finished"
    assert loopml.get_run(killed.id).status == "finished"
    assert resumed.steps["load"].run_id == killed.steps["load"].run_id
    assert resumed.steps["load"].outputs == killed.steps["load"].outputs
    assert resumed.steps["hold"].status == "finished"
    assert resumed.steps["hold"].run_id != killed.steps["hold"].run_id
    assert resumed.output("hold") == sum(range(4))
    assert marks.counts() == {"load": 1, "hold": 2}  # load was reused, not run again


@pytest.mark.slow
def test_resume_ends_the_child_run_of_a_step_killed_mid_run(
    project_env: dict[str, str],
) -> None:
    killed = kill_mid_step(project_env)

    resume(killed.id, max_workers=1)

    orphan = loopml.get_run(killed.steps["hold"].run_id or "")
    assert orphan.status in ("killed", "failed")
    assert orphan.end_time is not None


# -- approval gates ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_gate_approved_between_processes_lets_another_process_finish_the_run(
    marks: Marks, project_env: dict[str, str]
) -> None:
    started = run_script(["run", "lp_project.flows:gated", '{"n": 4}'], project_env)
    run_id = started["run_id"]
    assert started["status"] == "waiting_for_approval"
    waiting = get_pipeline_run(run_id)
    assert loopml.get_run(run_id).status == "waiting_for_approval"
    assert waiting.steps["load"].status == "finished"
    assert waiting.steps["approval"].status == "waiting_for_approval"
    assert waiting.steps["total"].status == "pending"
    requested = approvals().get(gate_of(waiting))
    assert (requested.status, requested.object_kind, requested.object_id) == (
        "pending",
        "pipeline_run",
        run_id,
    )
    assert requested.message == "Ship the total?"
    assert [a.id for a in approvals().list(status="pending")] == [requested.id]

    decided = approvals().decide(requested.id, "approved", comment="numbers look right")

    assert decided.status == "approved"
    assert decided.comment == "numbers look right"
    assert decided.decided_by is not None
    assert decided.decided_at is not None and decided.decided_at >= requested.requested_at

    finished = run_script(["resume", run_id], project_env)

    assert finished == {"run_id": run_id, "status": "finished"}
    run = get_pipeline_run(run_id)
    assert run.steps["approval"].status == "approved"
    assert run.steps["approval"].ended_at == decided.decided_at
    assert run.steps["load"].run_id == waiting.steps["load"].run_id
    assert run.output("total") == sum(range(4))
    assert marks.counts() == {"load": 1, "total": 1}


def test_a_rejected_gate_ends_the_run_as_rejected(
    marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = flows.gated.run(params={"n": 3}, max_workers=1)
    assert waiting.status == "waiting_for_approval"

    act_as(monkeypatch, "ana")
    approvals().decide(gate_of(waiting), "rejected", comment="not this week")
    rejected = resume(waiting.id, max_workers=1)

    assert rejected.status == "rejected"
    assert loopml.get_run(waiting.id).status == "rejected"
    assert rejected.steps["approval"].status == "rejected"
    assert rejected.steps["total"].status == "pending"
    assert marks.counts() == {"load": 1}
    with pytest.raises(InvalidParameter, match=r"is rejected"):
        resume(waiting.id)


def test_resuming_before_a_decision_keeps_the_run_waiting(marks: Marks) -> None:
    waiting = flows.gated.run(params={"n": 3}, max_workers=1)

    again = resume(waiting.id, max_workers=1)

    assert again.status == "waiting_for_approval"
    assert again.steps["approval"].approval_id == waiting.steps["approval"].approval_id
    assert len(approvals().list()) == 1  # asking again reuses the request
    assert marks.counts() == {"load": 1}


def test_deciding_twice_is_refused_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = flows.gated.run(params={"n": 3}, max_workers=1)
    approval_id = gate_of(waiting)
    act_as(monkeypatch, "ana")
    first = approvals().decide(approval_id, "approved", comment="yes")

    act_as(monkeypatch, "bo")
    with pytest.raises(ApprovalError, match=r"already approved by ana; a decision cannot be"):
        approvals().decide(approval_id, "approved", comment="yes again")
    with pytest.raises(ApprovalError, match=r"already approved by ana"):
        approvals().decide(approval_id, "rejected", comment="no")

    assert approvals().get(approval_id) == first


def test_an_unknown_approval_cannot_be_decided() -> None:
    flows.gated.run(params={"n": 1}, max_workers=1)
    with pytest.raises(ApprovalError, match=r"No approval with id 999"):
        approvals().decide(999, "approved")
