"""ORM tables of automation: triggers, their events, evaluations and firings, the scheduler
lease, and automations with their attempts and steps (re-exported by ``_tables``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store._tables import KEY_LENGTH, Base

__all__ = [
    "AUTOMATION",
    "AUTOMATION_ATTEMPT",
    "AUTOMATION_STEP",
    "SCHEDULER_LEASE",
    "TRIGGER",
    "TRIGGER_EVALUATION",
    "TRIGGER_EVENT",
    "TRIGGER_FIRING",
    "AutomationAttemptRow",
    "AutomationRow",
    "AutomationStepRow",
    "SchedulerLeaseRow",
    "TriggerEvaluationRow",
    "TriggerEventRow",
    "TriggerFiringRow",
    "TriggerRow",
]

# As in _tables: SQLite only aliases the rowid for INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class TriggerRow(Base):
    """A stored trigger: what it watches (``kind``, ``spec``), and where it is.

    ``state`` is its evaluation state as JSON: the cursor into its source, the events
    waiting for its hygiene rules, when it last fired. ``state_version`` grows with
    every write of ``state``: a writer that read an older version changes nothing.
    """

    __tablename__ = "trigger"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    paused: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    state_version: Mapped[int] = mapped_column(Integer)


class TriggerEventRow(Base):
    """A manual firing asked of a trigger (``loopml triggers fire``); ``key`` is unique
    per trigger, so asking twice with the same key fires once."""

    __tablename__ = "trigger_event"
    __table_args__ = (UniqueConstraint("trigger_id", "key"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("trigger.id"))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    at: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))


class TriggerFiringRow(Base):
    """One firing of a trigger and its action's progress.

    ``dedup_key`` is unique per trigger: whatever re-evaluates, one key fires once.
    ``status``: ``pending`` → ``running`` (``holder`` runs it) → ``succeeded`` or
    ``failed``; ``attempts`` counts the starts.
    """

    __tablename__ = "trigger_firing"
    __table_args__ = (
        UniqueConstraint("trigger_id", "dedup_key"),
        Index("ix_trigger_firing_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("trigger.id"))
    dedup_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    fired_at: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    action: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TriggerEvaluationRow(Base):
    """One evaluation of a trigger that saw an event: ``outcome`` ``fired`` or
    ``waiting`` (and why: "cooldown until 14:05", "only 312 of 1,000 rows")."""

    __tablename__ = "trigger_evaluation"
    __table_args__ = (Index("ix_trigger_evaluation_trigger", "trigger_id", "at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("trigger.id"))
    at: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    events: Mapped[int] = mapped_column(Integer)
    firing_id: Mapped[int | None] = mapped_column(ForeignKey("trigger_firing.id"))


class SchedulerLeaseRow(Base):
    """Who is the active scheduler, until when. ``epoch`` grows at every change of
    holder: a write made under an older epoch is refused (a fencing token)."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(KEY_LENGTH))
    epoch: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[int] = mapped_column(BigInteger)
    renewed_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class AutomationRow(Base):
    """A declared continuous-training automation (``spec``: model, endpoint, training
    pipeline, gate data, canary share and analysis policy); ``paused`` ones start no
    attempt and advance none."""

    __tablename__ = "automation"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    paused: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AutomationAttemptRow(Base):
    """One run of an automation: a stored state machine (``state``, its JSON ``data``).

    ``key`` is unique per automation (the firing that started it), so a firing starts
    one attempt whatever is retried. ``version`` grows at every transition: a writer
    that read an older version changes nothing.
    """

    __tablename__ = "automation_attempt"
    __table_args__ = (
        UniqueConstraint("automation_id", "key"),
        Index("ix_automation_attempt_state", "state", "id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    automation_id: Mapped[int] = mapped_column(ForeignKey("automation.id"))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)


class AutomationStepRow(Base):
    """One transition of an attempt: from, to, why, what it read and what it did."""

    __tablename__ = "automation_step"
    __table_args__ = (Index("ix_automation_step_attempt", "attempt_id", "id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("automation_attempt.id"))
    at: Mapped[int] = mapped_column(BigInteger)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON)


TRIGGER = cast(Table, TriggerRow.__table__)
TRIGGER_EVENT = cast(Table, TriggerEventRow.__table__)
TRIGGER_FIRING = cast(Table, TriggerFiringRow.__table__)
TRIGGER_EVALUATION = cast(Table, TriggerEvaluationRow.__table__)
SCHEDULER_LEASE = cast(Table, SchedulerLeaseRow.__table__)
AUTOMATION = cast(Table, AutomationRow.__table__)
AUTOMATION_ATTEMPT = cast(Table, AutomationAttemptRow.__table__)
AUTOMATION_STEP = cast(Table, AutomationStepRow.__table__)
