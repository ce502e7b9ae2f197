"""One evaluation of one trigger, written in one transaction: the exactly-once core.

An evaluation reads the trigger's new events (:func:`~loopml.automation._sources.poll`),
adds them to the events waiting in its state, applies the hygiene rules
(:func:`~loopml.automation._hygiene.decide`) and writes, **in one transaction**:

* the trigger's new state (cursor and waiting events), only if no one else wrote it
  since it was read (``state_version``);
* the firing, if it fires: ``INSERT … ON CONFLICT DO NOTHING`` on the unique
  ``(trigger_id, dedup_key)``, so a key that fired before never fires again;
* the evaluation's record, when it saw something new or its reason changed;
* the scheduler lease's check (:meth:`~loopml.automation._lease.Lease.fence`).

So a scheduler killed at any point either wrote all of it or none: restarted, it reads
the same events again from the old cursor and decides again; nothing seen is lost and
nothing fires twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.automation._hygiene import Decision, decide, dedup_key
from loopml.automation._sources import Event, GitPoll, Watched, poll
from loopml.automation._spec import TriggerSpec
from loopml.automation._triggers import UNFINISHED
from loopml.store import Node, Store, add_edge, tables

__all__ = ["MAX_WAITING", "Outcome", "evaluate", "event_node"]

MAX_WAITING = 1000
"""At most this many events wait in a trigger's state; older ones are folded into a count."""
_SHOWN_EVENTS = 20  # events kept in a firing's record (the newest), besides their count

_STATE_DEFAULTS: dict[str, Any] = {"last_fired_at": None, "last_reason": None, "dropped": 0}
_trigger = tables.TRIGGER
_firing = tables.TRIGGER_FIRING
_evaluation = tables.TRIGGER_EVALUATION


@dataclass(frozen=True)
class Outcome:
    """What one evaluation did (None fields: nothing of that kind happened)."""

    trigger_id: int
    decision: Decision | None
    firing_ids: tuple[int, ...] = ()
    duplicates: int = 0
    conflict: bool = False

    @property
    def firing_id(self) -> int | None:
        """The newest firing made, if any."""
        return self.firing_ids[-1] if self.firing_ids else None


def evaluate(
    store: Store,
    row: Any,
    now_ms: int,
    *,
    fence: Callable[[Connection], None] | None = None,
    git: GitPoll | None = None,
    quiet: bool = False,
    unfinished: int | None = None,
) -> Outcome:
    """Evaluate the trigger of ``row`` (a ``trigger`` table row) once.

    Args:
        store: the metadata store.
        row: the trigger's row as read (its ``state_version`` guards the write).
        now_ms: now.
        fence: called in the write transaction; raises to abort it (the lease check).
        git: reads a git source's new commits.
        quiet: the caller found nothing after the trigger's cursor
            (:func:`~loopml.automation._changes.changed`): the source is not polled.
        unfinished: its unfinished firings, as the caller read them this tick (None:
            read here). A count read earlier can only be too high, as only this
            evaluation adds firings of this trigger: at worst a firing waits a tick.

    Returns:
        The outcome; ``conflict`` when another writer changed the trigger meanwhile
        (nothing was written: the next tick evaluates it again).
    """
    state: dict[str, Any] = dict(row.state or {})
    cursor = dict(state.get("cursor") or {})
    # Parsing (validating) the spec is most of a quiet trigger's cost: only when needed.
    spec = None if quiet and not state.get("pending") else TriggerSpec.from_dict(row.spec)
    events: list[Event] = []
    after = cursor
    if spec is not None and not quiet:
        watched = Watched(int(row.id), int(row.project_id), spec.kind, spec.source)
        events, after = poll(store, watched, cursor, now_ms, git=git)
    waiting = [Event.from_dict(e) for e in state.get("pending", [])]
    seen = {e.key for e in waiting}
    fresh = [e for e in events if e.key not in seen]
    waiting += fresh
    dropped = int(state.get("dropped", 0))
    if len(waiting) > MAX_WAITING:
        dropped += len(waiting) - MAX_WAITING
        waiting = waiting[-MAX_WAITING:]
    decision: Decision | None = None
    if waiting and spec is not None:
        if unfinished is None:
            with store.read() as connection:
                unfinished = _unfinished(connection, int(row.id))
        decision = decide(
            spec.kind,
            spec.hygiene,
            waiting,
            last_fired_at=state.get("last_fired_at"),
            unfinished=unfinished,
            now_ms=now_ms,
        )
    new_state: dict[str, Any] = {
        "cursor": after,
        "pending": [e.to_dict() for e in (decision.keep if decision else ())],
        "last_fired_at": state.get("last_fired_at"),
        "last_reason": decision.reason if decision else state.get("last_reason"),
        "dropped": 0 if decision and decision.outcome == "fired" else dropped,
    }
    if decision is not None and decision.outcome == "fired":
        new_state["last_fired_at"] = now_ms
    # A new trigger's state lacks the keys read with these defaults: no write for that.
    if new_state == {**_STATE_DEFAULTS, **state}:
        return Outcome(int(row.id), decision)
    record = decision is not None and (
        bool(fresh) or decision.reason != state.get("last_reason") or decision.outcome != "waiting"
    )
    with store.write() as connection:
        if fence is not None:
            fence(connection)
        changed = connection.execute(
            update(_trigger)
            .where(_trigger.c.id == row.id, _trigger.c.state_version == row.state_version)
            .values(state=new_state, state_version=row.state_version + 1)
        ).rowcount
        if not changed:
            return Outcome(int(row.id), decision, conflict=True)
        firing_ids: list[int] = []
        duplicates = 0
        if spec is not None and decision is not None and decision.outcome == "fired":
            for index, group in enumerate(decision.fire):
                made = _insert_firing(
                    connection, row.id, spec, group, dropped if index == 0 else 0, now_ms
                )
                if made is None:
                    duplicates += 1
                else:
                    firing_ids.append(made)
        if record and decision is not None:
            reason = decision.reason
            if duplicates:
                reason += f"; {duplicates} key(s) had fired before, so did not fire again"
            connection.execute(
                _evaluation.insert().values(
                    trigger_id=row.id,
                    at=now_ms,
                    outcome="skipped" if duplicates and not firing_ids else decision.outcome,
                    reason=reason[:4000],
                    events=decision.fired_events + len(decision.keep),
                    firing_id=firing_ids[-1] if firing_ids else None,
                )
            )
    return Outcome(int(row.id), decision, tuple(firing_ids), duplicates=duplicates)


def _unfinished(connection: Connection, trigger_id: int) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(_firing)
            .where(_firing.c.trigger_id == trigger_id, _firing.c.status.in_(UNFINISHED))
        ).scalar_one()
    )


def _insert_firing(
    connection: Connection,
    trigger_id: int,
    spec: TriggerSpec,
    events: tuple[Event, ...],
    dropped: int,
    now_ms: int,
) -> int | None:
    """Insert the firing of ``events`` unless its key fired before; its id, or None."""
    key = dedup_key(spec.hygiene, events)
    shown = [e.to_dict() for e in events[-_SHOWN_EVENTS:]]
    folded = len(events) + dropped
    if folded > len(shown):
        shown.insert(0, {"folded": folded - len(shown)})
    factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    inserted = connection.execute(
        factory(_firing)
        .values(
            trigger_id=trigger_id,
            dedup_key=key,
            fired_at=now_ms,
            events=shown,
            action=spec.action.to_dict(),
            status="pending",
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["trigger_id", "dedup_key"])
        .returning(_firing.c.id)
    ).scalar()
    if inserted is None:
        return None
    firing = Node("trigger_firing", str(inserted))
    for event in events[-_SHOWN_EVENTS:]:
        source = event_node(event.key)
        if source is not None:
            add_edge(connection, source, firing, "triggered", now_ms)
    return int(inserted)


_EVENT_KINDS = {
    "dataset": "dataset_version",
    "alert": "monitor_alert",
    "version": "model_version",
    "alias": "alias_event",
    "run": "run",
    "commit": "git_commit",
}


def event_node(key: str) -> Node | None:
    """The lineage node of the object an event key names (``dataset:42`` → a dataset
    version), or None for events that name no stored object (ticks, manual requests)."""
    kind, _, ident = key.partition(":")
    found = _EVENT_KINDS.get(kind)
    return None if found is None or not ident else Node(found, ident)
