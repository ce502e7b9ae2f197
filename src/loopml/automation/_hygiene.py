"""Whether a trigger's waiting events fire now: its hygiene rules, in one pure function.

The rules are applied in this order, and the first that holds the events back gives
the reason that is recorded:

1. **max concurrent**: as many of the trigger's firings as allowed are unfinished;
2. **cooldown**: the trigger fired less than ``cooldown`` seconds ago;
3. **catch-up** (schedules): ticks older than :data:`MISSED_AFTER_MS` were missed
   while no scheduler ran; ``skip`` drops them, ``once`` folds them into one firing,
   ``all`` fires them one by one;
4. **debounce**: the newest event is less than ``debounce`` seconds old;
5. **minimum evidence**: the events' evidence does not add up to ``min_evidence``.

What passes fires as one firing of all the waiting events (a burst of new dataset
versions retrains once), or — when ``fold`` is off, as for ``manual`` triggers, and
for ``catch_up: all`` ticks — one firing per event, as many as ``max_concurrent``
leaves room for; the others wait for the next evaluation.

Events held back wait in the trigger's state and fire together later: nothing seen
is dropped except what a rule drops on purpose (skipped ticks), and that is recorded.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from loopml.automation._sources import Event
from loopml.automation._spec import Hygiene

__all__ = ["MISSED_AFTER_MS", "Decision", "decide", "dedup_key"]

MISSED_AFTER_MS = 60_000
"""A schedule tick seen more than this after its time was missed (no scheduler ran)."""

_UNITS = {"dataset": "rows", "monitor_alert": "rows", "git": "commits"}


@dataclass(frozen=True)
class Decision:
    """What to do with a trigger's waiting events.

    Attributes:
        outcome: ``fired``, ``waiting`` (held back; they stay), or ``skipped``
            (dropped on purpose: missed schedule ticks).
        reason: why, for people ("cooldown until 14:05:00 UTC").
        fire: the firings to make, each the events it folds (empty unless ``fired``).
        keep: the events that go on waiting.
    """

    outcome: Literal["fired", "waiting", "skipped"]
    reason: str
    fire: tuple[tuple[Event, ...], ...] = ()
    keep: tuple[Event, ...] = ()

    @property
    def fired_events(self) -> int:
        """How many events the firings fold."""
        return sum(len(group) for group in self.fire)


def decide(
    kind: str,
    hygiene: Hygiene,
    waiting: Sequence[Event],
    *,
    last_fired_at: int | None,
    unfinished: int,
    now_ms: int,
) -> Decision:
    """Apply the hygiene rules (see the module docstring) to the ``waiting`` events.

    Args:
        kind: the trigger's kind (some defaults depend on it).
        hygiene: its rules.
        waiting: the events not fired yet, oldest first (at least one).
        last_fired_at: when it last fired (ms), None if never.
        unfinished: how many of its firings have not finished.
        now_ms: now.
    """
    events = tuple(waiting)
    if unfinished >= hygiene.max_concurrent:
        return Decision(
            "waiting",
            f"{unfinished} of at most {hygiene.max_concurrent} firing(s) still unfinished",
            keep=events,
        )
    cooldown_ms = int(hygiene.cooldown_for(kind) * 1000)
    if last_fired_at is not None and now_ms < last_fired_at + cooldown_ms:
        return Decision(
            "waiting", f"cooldown until {_clock(last_fired_at + cooldown_ms)}", keep=events
        )
    room = hygiene.max_concurrent - unfinished
    if kind == "schedule":
        return _schedule(hygiene, events, now_ms, room)
    debounce_ms = int(hygiene.debounce_for(kind) * 1000)
    newest = max(e.at for e in events)
    if now_ms < newest + debounce_ms:
        return Decision(
            "waiting",
            f"debounce: {len(events)} event(s), quiet until {_clock(newest + debounce_ms)}",
            keep=events,
        )
    evidence = sum(e.evidence for e in events)
    if evidence < hygiene.min_evidence:
        unit = _UNITS.get(kind, "events")
        return Decision(
            "waiting",
            f"only {evidence:,} of {hygiene.min_evidence:,} {unit} since the last firing",
            keep=events,
        )
    return _fire(events, fold=hygiene.fold_for(kind), room=room)


def _schedule(hygiene: Hygiene, events: tuple[Event, ...], now_ms: int, room: int) -> Decision:
    missed = tuple(e for e in events if e.at < now_ms - MISSED_AFTER_MS)
    recent = tuple(e for e in events if e not in missed)
    if missed and hygiene.catch_up == "skip":
        if not recent:
            return Decision("skipped", f"{len(missed)} missed tick(s) skipped (catch_up: skip)")
        decision = _fire(recent, fold=True, room=room)
        return Decision(
            "fired", decision.reason + f"; {len(missed)} missed tick(s) skipped", decision.fire
        )
    return _fire(events, fold=hygiene.catch_up != "all", room=room)


def _fire(events: tuple[Event, ...], *, fold: bool, room: int) -> Decision:
    """Fire ``events`` as one firing, or one each while ``room`` lasts."""
    if fold:
        groups: tuple[tuple[Event, ...], ...] = (events,)
        keep: tuple[Event, ...] = ()
    else:
        groups = tuple((e,) for e in events[:room])
        keep = events[room:]
    if len(groups) == 1:
        group = groups[0]
        reason = (
            f"fired on {group[0].summary}"
            if len(group) == 1
            else f"fired on {len(group)} events, the newest {group[-1].summary}"
        )
    else:
        reason = f"fired {len(groups)} times, once per event, the newest {groups[-1][0].summary}"
    if keep:
        reason += f"; {len(keep)} event(s) wait for room (max_concurrent)"
    return Decision("fired", reason, groups, keep)


def dedup_key(hygiene: Hygiene, fired: Sequence[Event]) -> str:
    """The firing's key: the template filled from the newest event's fields, or its key.

    A template naming a field the event does not have falls back to the event's key
    (``missing:<field>:<key>``), so a firing is never lost to a template.
    """
    newest = fired[-1]
    if hygiene.dedup_key is None:
        return newest.key[:250]
    values: dict[str, str] = {}
    for _, name, _, _ in string.Formatter().parse(hygiene.dedup_key):
        if name is None:
            continue
        if name not in newest.data:
            return f"missing:{name}:{newest.key}"[:250]
        values[name] = str(newest.data[name])
    return hygiene.dedup_key.format_map(values)[:250]


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
