"""triggers, their events, evaluations and firings, and the scheduler's lease

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 23:30:00.000000

``trigger`` holds a trigger's configuration and its evaluation state (``state``: the
cursor into its source and the events waiting for hygiene rules, versioned by
``state_version`` so two writers cannot both advance it). ``trigger_event`` is the
inbox of manual firings. ``trigger_evaluation`` records every evaluation that saw an
event, fired or not, with the reason. ``trigger_firing`` is one firing: ``dedup_key``
is unique per trigger, so one event fires at most once. ``scheduler_lease`` names
the one active scheduler; ``epoch`` grows at every change of holder (a fencing token).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEY = 250


def upgrade() -> None:
    op.create_table(
        "trigger",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=_KEY), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=_KEY), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "trigger_event",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("trigger_id", _BIG_ID, nullable=False),
        sa.Column("key", sa.String(length=_KEY), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=_KEY), nullable=True),
        sa.ForeignKeyConstraint(["trigger_id"], ["trigger.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trigger_id", "key"),
    )
    op.create_table(
        "trigger_firing",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("trigger_id", _BIG_ID, nullable=False),
        sa.Column("dedup_key", sa.String(length=_KEY), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=_KEY), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["trigger_id"], ["trigger.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trigger_id", "dedup_key"),
    )
    op.create_index("ix_trigger_firing_status", "trigger_firing", ["status", "id"])
    op.create_table(
        "trigger_evaluation",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("trigger_id", _BIG_ID, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("firing_id", _BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(["trigger_id"], ["trigger.id"]),
        sa.ForeignKeyConstraint(["firing_id"], ["trigger_firing.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_trigger_evaluation_trigger", "trigger_evaluation", ["trigger_id", "at"])
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=_KEY), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.BigInteger(), nullable=False),
        sa.Column("renewed_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
    op.drop_index("ix_trigger_evaluation_trigger", table_name="trigger_evaluation")
    op.drop_table("trigger_evaluation")
    op.drop_index("ix_trigger_firing_status", table_name="trigger_firing")
    op.drop_table("trigger_firing")
    op.drop_table("trigger_event")
    op.drop_table("trigger")
