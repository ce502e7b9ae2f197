"""The scheduler (issue 15): one active per store through the lease, a standby that takes
over, and firings that happen exactly once while schedulers are killed with SIGKILL —
real ``loopml scheduler`` processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loopml.automation import Action, Hygiene, Lease, Scheduler, TriggerSpec, TriggerStore
from loopml.errors import LeaseLost
from loopml.store import Store, tables
from loopml.tracking import TrackingClient
from webhook_support import Delivery, webhook_receiver

pytestmark = pytest.mark.slow

LOOPML = Path(sys.executable).with_name("loopml")
DEADLINE = 120.0  # seconds: a busy CI machine is slow, never a wrong answer


def _wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[Delivery]]]:
    monkeypatch.setenv("LOOPML_WEBHOOK_ALLOW_PRIVATE", "1")
    with webhook_receiver() as found:
        yield found


def _firings(store: Store) -> list[Any]:
    with store.read() as connection:
        return list(connection.execute(select(tables.TRIGGER_FIRING)).all())


def _holder(store: Store) -> str | None:
    state = Lease(store, "reader").current()
    return None if state is None or state.expires_at < time.time() * 1000 else state.holder


class _Schedulers:
    """``loopml scheduler`` processes on one store, started and killed at will."""

    def __init__(self, client: TrackingClient, tmp_path: Path, lease: float) -> None:
        self.env = {
            **os.environ,
            "LOOPML_STORE_URI": client.store.uri,
            "LOOPML_ARTIFACT_URI": str(tmp_path / "artifacts"),
            "LOOPML_HOME": str(tmp_path / "home"),
            "LOOPML_WEBHOOK_ALLOW_PRIVATE": "1",
        }
        self.lease = lease
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with (self.tmp_path / f"scheduler-{len(self.processes)}.log").open("wb") as output:
            process = subprocess.Popen(
                [str(LOOPML), "scheduler", "--tick", "0.1", "--lease", str(self.lease)],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(30)


@pytest.fixture
def schedulers(client: TrackingClient, tmp_path: Path) -> Iterator[_Schedulers]:
    running = _Schedulers(client, tmp_path, lease=2.0)
    try:
        yield running
    finally:
        running.close()


def test_a_standby_takes_over_when_the_active_scheduler_is_killed(
    client: TrackingClient, schedulers: _Schedulers
) -> None:
    first = schedulers.start()
    _wait_for(lambda: _holder(client.store) is not None, "a first scheduler to take the lease")
    active = _holder(client.store)
    assert active is not None and active.split(":")[1] == str(first.pid)
    second = schedulers.start()
    time.sleep(1.0)  # the standby polls and stays standby while the lease is renewed
    assert _holder(client.store) == active
    killed_at = time.monotonic()
    os.kill(first.pid, signal.SIGKILL)
    _wait_for(
        lambda: (_holder(client.store) or "").split(":")[1:2] == [str(second.pid)],
        "the standby to take over",
    )
    took = time.monotonic() - killed_at
    # Documented: within the lease (2 s) plus one standby poll (lease / 3); generous here.
    assert took < DEADLINE, took


def test_firings_happen_exactly_once_while_schedulers_are_killed(
    client: TrackingClient,
    schedulers: _Schedulers,
    receiver: tuple[str, list[Delivery]],
) -> None:
    hook, received = receiver
    triggers = TriggerStore(client.store)
    triggers.create(
        TriggerSpec(
            name="each",
            kind="manual",
            action=Action(webhook=hook),
            hygiene=Hygiene(max_concurrent=1000),
        ),
        project="p",
    )
    triggers.create(
        TriggerSpec(
            name="cooled",
            kind="manual",
            action=Action(webhook=hook),
            hygiene=Hygiene(cooldown=3600, fold=True),
        ),
        project="p",
    )
    schedulers.start()
    schedulers.start()
    rng = random.Random(0)
    keys = [f"event-{i}" for i in range(100)]
    for index, key in enumerate(keys):
        triggers.fire("each", project="p", key=key)
        triggers.fire("cooled", project="p", key=key)
        if index == 0:  # the first event fires; the other 99 come inside its cooldown
            _wait_for(lambda: len(_firings(client.store)) == 2, "the first firings")
        if index % 10 == 9:  # kill a random scheduler at a random point, start another
            time.sleep(rng.uniform(0.0, 0.5))
            alive = [p for p in schedulers.processes if p.poll() is None]
            victim = rng.choice(alive)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(30)
            schedulers.start()

    each = client.store
    _wait_for(
        lambda: len([f for f in _firings(each) if f.trigger_id == 1]) == 100,
        "every event of 'each' to fire",
    )
    _wait_for(
        lambda: all(f.status == "succeeded" for f in _firings(each)), "every action to finish"
    )
    firings = _firings(each)
    fired = sorted(f.dedup_key for f in firings if f.trigger_id == 1)
    assert fired == sorted(f"manual:{k}" for k in keys)  # none lost, none twice
    cooled = [f for f in firings if f.trigger_id == 2]
    assert len(cooled) == 1  # 100 events inside one cooldown: one firing
    waiting = triggers.get("cooled", project="p").state.get("pending", [])
    shown = [e for e in cooled[0].events if "key" in e]
    folded = len(shown) + sum(e.get("folded", 0) for e in cooled[0].events)
    assert folded == 1 and len(waiting) == 99  # the rest wait for the cooldown's end
    assert {e["key"] for e in waiting}.isdisjoint({e["key"] for e in shown})
    delivered = {key for key, _ in received}
    assert delivered == {f"loopml-firing-{f.id}" for f in firings}  # at least once each
    history = triggers.evaluations("cooled", project="p", limit=1000)
    assert any(e.reason.startswith("cooldown until") for e in history)


def test_a_scheduler_that_lost_the_lease_writes_nothing(client: TrackingClient) -> None:
    triggers = TriggerStore(client.store)
    triggers.create(
        TriggerSpec(name="m", kind="manual", action=Action(webhook="https://example.com/h")),
        project="p",
    )
    old = Scheduler(client.store, holder="old", lease_ttl=1.0)
    assert old.tick().leader
    time.sleep(1.1)  # the lease expires: another scheduler takes it over
    new = Scheduler(client.store, holder="new", lease_ttl=60.0)
    assert new.tick().leader
    triggers.fire("m", project="p", key="k")
    with client.store.write() as connection, pytest.raises(LeaseLost):
        old.lease.fence(connection)
    report = old.tick()  # the old one is a standby now: evaluates nothing
    assert not report.leader and not _firings(client.store)
    assert new.tick().fired and len(_firings(client.store)) == 1
    new.close()
    old.close()
