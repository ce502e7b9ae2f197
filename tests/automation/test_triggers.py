"""Triggers (issue 15): specs refuse bad input by name, sources see what is new, the
hygiene rules decide, and an evaluation fires a key at most once — on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from loopml.automation import Action, Hygiene, TriggerSpec, TriggerStore
from loopml.automation._evaluate import evaluate
from loopml.automation._hygiene import decide
from loopml.automation._sources import Event
from loopml.data import DataClient
from loopml.errors import InvalidParameter, ProjectNotFound, TriggerNotFound
from loopml.store import Node, Store, now_ms, tables, walk
from loopml.tracking import TrackingClient

WEBHOOK = Action(webhook="https://hooks.example.com/x")


def _spec(name: str = "t", kind: str = "manual", **kwargs: Any) -> TriggerSpec:
    return TriggerSpec(name=name, kind=kind, action=kwargs.pop("action", WEBHOOK), **kwargs)


@pytest.fixture
def store(client: TrackingClient) -> Iterator[Store]:
    yield client.store


def _row(store: Store, name: str) -> Any:
    with store.read() as connection:
        return connection.execute(select(tables.TRIGGER).where(tables.TRIGGER.c.name == name)).one()


def _firings(store: Store) -> list[Any]:
    with store.read() as connection:
        return list(connection.execute(select(tables.TRIGGER_FIRING)).all())


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: _spec(kind="sometimes"), "unknown kind 'sometimes'"),
        (lambda: _spec(kind="schedule", source={"cron": "every day"}), "cron"),
        (
            lambda: _spec(kind="schedule", source={"cron": "0 6 * * 1", "timezone": "Mars/Base"}),
            "Unknown time zone 'Mars/Base'",
        ),
        (lambda: _spec(kind="dataset"), "needs the source option(s) dataset"),
        (lambda: _spec(kind="dataset", source={"dataset": "d", "rows": 3}), "unknown source"),
        (lambda: _spec(kind="dataset", source={"dataset": 3}), "'dataset' must be of type str"),
        (
            lambda: _spec(kind="dataset", source={"dataset": "d", "passed_only": "yes"}),
            "'passed_only' must be of type bool",
        ),
        (lambda: _spec(kind="model", source={"model": "m", "event": "born"}), "'event' must"),
        (lambda: _spec(hygiene=Hygiene(cooldown=-1)), "'cooldown'"),
        (lambda: _spec(hygiene=Hygiene(max_concurrent=0)), "'max_concurrent'"),
        (lambda: _spec(hygiene=Hygiene(catch_up="never")), "'catch_up'"),  # type: ignore[arg-type]
        (lambda: _spec(hygiene=Hygiene(dedup_key="{a.__class__}")), "may only name fields"),
        (lambda: _spec(action=Action()), "exactly one of 'pipeline'"),
        (lambda: _spec(action=Action(pipeline="train")), "MODULE:NAME"),
        (lambda: _spec(action=Action(webhook="file:///etc/passwd")), "http(s) URL"),
        (
            lambda: _spec(action=Action(pipeline="m:p", params={"x": "{event.__init__}"})),
            "{event.FIELD}",
        ),
        (lambda: _spec(action=Action(pipeline="m:p", params={"x": [1]})), "text, a number"),
        (lambda: _spec(name="../etc"), "trigger name"),
    ],
)
def test_bad_specs_are_refused_naming_what_is_wrong(make: Any, named: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(named)):
        make()


def test_a_spec_round_trips_and_unknown_fields_are_refused() -> None:
    spec = _spec(
        kind="dataset",
        source={"dataset": "credit", "passed_only": False},
        action=Action(pipeline="train:pipe", params={"data": "{event.ref}", "n": 3}),
        hygiene=Hygiene(cooldown=60, min_evidence=100, dedup_key="{dataset}-{version}"),
    )
    assert TriggerSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InvalidParameter, match=r"Unknown trigger field\(s\) \['when'\]"):
        TriggerSpec.from_dict({**spec.to_dict(), "when": 1})
    with pytest.raises(InvalidParameter, match="Unknown trigger hygiene field"):
        TriggerSpec.from_dict({**spec.to_dict(), "hygiene": {"cooldwn": 1}})


def test_the_store_creates_lists_pauses_and_deletes(store: Store) -> None:
    triggers = TriggerStore(store)
    made = triggers.create(_spec("nightly", "schedule", source={"cron": "@daily"}), project="p")
    assert made.name == "nightly" and not made.paused
    with pytest.raises(InvalidParameter, match="already has a trigger named 'nightly'"):
        triggers.create(_spec("nightly", "schedule", source={"cron": "@daily"}), project="p")
    triggers.create(_spec("by-hand"), project="p")
    assert [t.name for t in triggers.list(project="p")] == ["by-hand", "nightly"]
    assert triggers.set_paused("nightly", True, project="p").paused
    with pytest.raises(TriggerNotFound, match="did you mean 'nightly'"):
        triggers.get("nightly2", project="p")
    with pytest.raises(ProjectNotFound):
        triggers.list(project="nowhere")
    with pytest.raises(InvalidParameter, match="only manual triggers are fired by hand"):
        triggers.fire("nightly", project="p")
    triggers.delete("nightly", project="p")
    assert [t.name for t in triggers.list(project="p")] == ["by-hand"]


def test_a_manual_firing_fires_once_per_key(store: Store) -> None:
    triggers = TriggerStore(store)
    triggers.create(_spec("by-hand"), project="p")
    assert triggers.fire("by-hand", project="p", key="deploy-42", data={"why": "test"})
    assert not triggers.fire("by-hand", project="p", key="deploy-42")  # asked before
    outcome = evaluate(store, _row(store, "by-hand"), now_ms())
    assert outcome.firing_id is not None
    (firing,) = _firings(store)
    assert firing.dedup_key == "manual:deploy-42" and firing.status == "pending"
    assert firing.events[-1]["data"]["why"] == "test"
    again = evaluate(store, _row(store, "by-hand"), now_ms())  # nothing new: nothing written
    assert again.firing_id is None and len(_firings(store)) == 1
    (evaluation,) = triggers.evaluations("by-hand", project="p")
    assert evaluation.outcome == "fired" and evaluation.firing_id == firing.id


def test_a_stale_state_version_writes_nothing(store: Store) -> None:
    triggers = TriggerStore(store)
    triggers.create(_spec("by-hand"), project="p")
    triggers.fire("by-hand", project="p", key="a")
    stale = _row(store, "by-hand")
    assert evaluate(store, stale, now_ms()).firing_id is not None
    conflict = evaluate(store, stale, now_ms())  # another scheduler's older read
    assert conflict.conflict and len(_firings(store)) == 1


def test_new_dataset_versions_fire_with_cooldown_debounce_and_evidence(
    client: TrackingClient,
) -> None:
    store = client.store
    data = DataClient(store, client.artifacts)
    data.register("credit", pd.DataFrame({"x": [1, 2]}), project="p")  # before the trigger
    triggers = TriggerStore(store)
    triggers.create(
        _spec(
            "on-data",
            "dataset",
            source={"dataset": "credit"},
            hygiene=Hygiene(cooldown=3600, debounce=0, min_evidence=5, max_concurrent=5),
        ),
        project="p",
    )
    data.register("credit", pd.DataFrame({"x": [1, 2, 3]}), project="p")
    evaluate(store, _row(store, "on-data"), now_ms())
    (waiting,) = triggers.evaluations("on-data", project="p")
    assert waiting.outcome == "waiting" and waiting.reason == (
        "only 3 of 5 rows since the last firing"
    )
    data.register("credit", pd.DataFrame({"x": [1, 2, 3, 4]}), project="p")
    fired = evaluate(store, _row(store, "on-data"), now_ms())
    assert fired.firing_id is not None
    (firing,) = _firings(store)
    assert [e["data"]["version"] for e in firing.events] == [2, 3]  # folded, the first excluded
    with store.read() as connection:
        upstream = walk(connection, Node("trigger_firing", str(firing.id)), "upstream")
    assert {(e.src.kind, e.relation) for e in upstream} == {("dataset_version", "triggered")}
    assert len(upstream) == 2
    data.register("credit", pd.DataFrame({"x": list(range(10))}), project="p")
    held = evaluate(store, _row(store, "on-data"), now_ms())
    assert held.decision is not None and held.decision.reason.startswith("cooldown until")
    after = evaluate(store, _row(store, "on-data"), now_ms() + 3_600_001)
    assert after.firing_id is not None and len(_firings(store)) == 2


def test_a_schedule_catches_up_as_told(store: Store) -> None:
    triggers = TriggerStore(store)
    for policy in ("skip", "once", "all"):
        triggers.create(
            _spec(
                f"hourly-{policy}",
                "schedule",
                source={"cron": "0 * * * *"},
                hygiene=Hygiene(catch_up=policy, max_concurrent=100),  # type: ignore[arg-type]
            ),
            project="p",
        )
    hour = 3_600_000
    later = now_ms() // hour * hour + 5 * hour + hour // 2  # five ticks missed, the last 30 min ago
    counts = {}
    for policy in ("skip", "once", "all"):
        before = len(_firings(store))
        evaluate(store, _row(store, f"hourly-{policy}"), later)
        counts[policy] = len(_firings(store)) - before
    assert counts == {"skip": 0, "once": 1, "all": 5}  # "all": one firing per tick
    (skipped,) = triggers.evaluations("hourly-skip", project="p")
    assert skipped.outcome == "skipped" and skipped.reason == (
        "5 missed tick(s) skipped (catch_up: skip)"
    )
    (once,) = triggers.firings("hourly-once", project="p")
    assert len([e for e in once.events if "key" in e]) == 5
    evaluate(store, _row(store, "hourly-all"), later)  # nothing new: nothing more
    every = triggers.firings("hourly-all", project="p")
    assert len(every) == 5 and len({f.dedup_key for f in every}) == 5


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 10_000_000), min_size=1, max_size=50),
    cooldown=st.integers(0, 3600),
    unfinished=st.integers(0, 3),
)
def test_decisions_never_lose_an_event(times: list[int], cooldown: int, unfinished: int) -> None:
    events = [Event(f"e{i}", t, f"event {i}") for i, t in enumerate(sorted(times))]
    decision = decide(
        "dataset",
        Hygiene(cooldown=cooldown, max_concurrent=2),
        events,
        last_fired_at=max(times) - 1000,
        unfinished=unfinished,
        now_ms=max(times) + 60_000,
    )
    assert [e for group in decision.fire for e in group] + list(decision.keep) == events
    assert (decision.outcome == "fired") == bool(decision.fire)
    if unfinished >= 2 or cooldown * 1000 > 61_000:
        assert decision.outcome == "waiting"
