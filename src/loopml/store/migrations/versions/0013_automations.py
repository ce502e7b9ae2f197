"""continuous-training automations, their attempts and every step of an attempt

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00.000000

``automation`` holds a declared automation (model, endpoint, training pipeline, gate,
canary share, analysis policy). ``automation_attempt`` is one run of it as a stored
state machine: ``state`` and its JSON ``data``, ``key`` unique per automation (the firing
that started it), ``version`` growing at every transition. ``automation_step`` records
every transition with its reason, inputs and outcome.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEY = 250


def upgrade() -> None:
    op.create_table(
        "automation",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=_KEY), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=_KEY), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "automation_attempt",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("automation_id", _BIG_ID, nullable=False),
        sa.Column("key", sa.String(length=_KEY), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["automation_id"], ["automation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("automation_id", "key"),
    )
    op.create_index("ix_automation_attempt_state", "automation_attempt", ["state", "id"])
    op.create_table(
        "automation_step",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("attempt_id", _BIG_ID, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["automation_attempt.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_automation_step_attempt", "automation_step", ["attempt_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_automation_step_attempt", table_name="automation_step")
    op.drop_table("automation_step")
    op.drop_index("ix_automation_attempt_state", table_name="automation_attempt")
    op.drop_table("automation_attempt")
    op.drop_table("automation")
