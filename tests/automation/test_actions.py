"""Actions (issue 15) run by an in-process :class:`Scheduler`: a pipeline in a child process
with a parameter taken from the event, refused when another account stored the trigger
unless trusted, failing with its error; a webhook to a local receiver, and refused to a
private address unless allowed — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

import loopml
from loopml.automation import Action, Firing, Scheduler, TriggerSpec, TriggerStore
from loopml.store import Store, tables
from loopml.tracking import TrackingClient
from webhook_support import Delivery, webhook_receiver

PIPELINE = """
import loopml


@loopml.step
def train(version: int, fail: bool) -> int:
    if fail:
        raise ValueError("training diverged")
    return version


@loopml.pipeline
def retrain(version: int = 0, fail: bool = False):
    train(version, fail)
"""


def _finished(store: Store, name: str) -> Firing:
    """One tick fires ``name`` and starts its action; closing the scheduler waits for it."""
    scheduler = Scheduler(store, holder=f"test-{name}", tick=0.1)
    try:
        report = scheduler.tick()
        assert report.leader and report.fired and report.started, report
    finally:
        scheduler.close()  # waits for the running actions
    (firing,) = TriggerStore(store).firings(name, project="p")
    return firing


def _manual(store: Store, name: str, action: Action, **data: Any) -> None:
    triggers = TriggerStore(store)
    triggers.create(TriggerSpec(name=name, kind="manual", action=action), project="p")
    triggers.fire(name, project="p", key="k1", data=data)


@pytest.fixture
def flows(tmp_path: Path, fluent_store: str) -> str:
    """A pipeline file under tmp_path, as ``path.py:retrain``; the fluent API and the
    scheduler's child processes use the test's store."""
    path = tmp_path / "retrain_flows.py"
    path.write_text(PIPELINE)
    return f"{path}:retrain"


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
@pytest.mark.slow
def test_pipeline_actions_run_with_event_params_or_fail_with_their_error(
    client: TrackingClient, flows: str
) -> None:
    store = client.store
    _manual(
        store, "retrain", Action(pipeline=flows, params={"version": "{event.version}"}), version=7
    )
    _manual(store, "broken", Action(pipeline=flows, params={"fail": True}))
    scheduler = Scheduler(store, holder="test", tick=0.1)
    try:  # one tick fires both and starts their child processes side by side
        report = scheduler.tick()
        assert report.leader and len(report.fired) == len(report.started) == 2, report
    finally:
        scheduler.close()  # waits for the running actions
    (firing,) = TriggerStore(store).firings("retrain", project="p")
    assert firing.status == "succeeded", firing.result
    result = firing.result or {}
    assert result["params"] == {"version": "7"} and result["status"] == "finished"
    run = loopml.get_run(result["run"])
    assert run.status == "finished" and dict(run.params)["version"] == "7"
    assert firing.attempts == 1 and firing.finished_at is not None
    (failed,) = TriggerStore(store).firings("broken", project="p")
    assert failed.status == "failed"
    error = (failed.result or {})["error"]
    assert error.startswith("The pipeline run ") and "ended failed" in error, error
    assert "failed at step 'train': ValueError: training diverged" in error, error


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
def test_a_pipeline_stored_by_another_account_runs_only_when_trusted(
    client: TrackingClient, tmp_path: Path
) -> None:
    store = client.store
    marker = tmp_path / "never.py"
    _manual(store, "theirs", Action(pipeline=f"{marker}:pipe"))
    with store.write() as connection:
        connection.execute(
            update(tables.TRIGGER)
            .where(tables.TRIGGER.c.name == "theirs")
            .values(created_by="someone-else")
        )
    firing = _finished(store, "theirs")
    assert firing.status == "failed"
    assert "start the scheduler with --trust" in (firing.result or {})["error"]
    assert not marker.exists()
    # Trusted, the action runs (and fails here only because the file does not exist).
    with store.write() as connection:
        connection.execute(update(tables.TRIGGER_FIRING).values(status="pending", holder=None))
    trusting = Scheduler(store, holder="trusting", tick=0.1, trust=True)
    try:
        assert trusting.tick().started
    finally:
        trusting.close()
    (again,) = TriggerStore(store).firings("theirs", project="p")
    error = (again.result or {})["error"]
    assert again.attempts == 2 and "--trust" not in error and "could not run" in error, error


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    with webhook_receiver() as found:
        yield found


def test_a_webhook_action_posts_the_firing(
    client: TrackingClient, receiver: tuple[str, list[Delivery]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_WEBHOOK_ALLOW_PRIVATE", "1")
    hook, received = receiver
    _manual(client.store, "notify", Action(webhook=hook), why="drift")
    firing = _finished(client.store, "notify")
    assert firing.status == "succeeded", firing.result
    assert firing.result == {"webhook": hook.removesuffix("hook") + "…", "delivered": True}
    ((key, body),) = received
    assert key == f"loopml-firing-{firing.id}"
    assert body["kind"] == "loopml.trigger.firing" and body["trigger"] == "notify"
    assert body["dedup_key"] == "manual:k1" and body["firing"] == firing.id
    assert body["events"][-1]["data"]["why"] == "drift"


def test_a_webhook_to_a_private_address_is_refused_and_sends_nothing(
    client: TrackingClient, receiver: tuple[str, list[Delivery]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPML_WEBHOOK_ALLOW_PRIVATE", raising=False)
    hook, received = receiver
    _manual(client.store, "notify", Action(webhook=hook))
    firing = _finished(client.store, "notify")
    assert firing.status == "failed"
    assert "127.0.0.1" in (firing.result or {})["error"], firing.result
    assert received == []
