"""Automation: triggers that act when something happens, and the scheduler that runs them.

A trigger (:class:`TriggerSpec`, stored with :class:`TriggerStore`) watches one source —
a cron schedule, new versions of a dataset, a monitor's alerts, a git branch, finished
pipeline runs, model versions registered or promoted, or a hand on ``loopml triggers
fire`` — and, when its hygiene rules (:class:`Hygiene`: cooldown, debounce, minimum
evidence, dedup key, catch-up, max concurrent) allow, fires its :class:`Action`: run a
pipeline or call a webhook. :class:`Scheduler` (``loopml scheduler``) evaluates every
trigger each tick while it holds the store's scheduler lease; a firing and the
evaluation that made it are one transaction, so each fires exactly once.

Example:
    >>> from loopml.automation import Action, Hygiene, TriggerSpec
    >>> spec = TriggerSpec(
    ...     name="retrain-on-new-data",
    ...     kind="dataset",
    ...     source={"dataset": "credit"},
    ...     action=Action(pipeline="training.pipelines:train", params={"data": "{event.ref}"}),
    ...     hygiene=Hygiene(min_evidence=10_000),
    ... )
    >>> spec.hygiene.debounce_for(spec.kind)
    30.0
"""

from __future__ import annotations

from loopml.automation._lease import DEFAULT_TTL, Lease
from loopml.automation._scheduler import DEFAULT_TICK, Scheduler, TickReport
from loopml.automation._sources import Event
from loopml.automation._spec import CATCH_UP, KINDS, Action, Hygiene, TriggerSpec
from loopml.automation._triggers import Evaluation, Firing, Trigger, TriggerStore

__all__ = [
    "CATCH_UP",
    "DEFAULT_TICK",
    "DEFAULT_TTL",
    "KINDS",
    "Action",
    "Evaluation",
    "Event",
    "Firing",
    "Hygiene",
    "Lease",
    "Scheduler",
    "TickReport",
    "Trigger",
    "TriggerSpec",
    "TriggerStore",
]
