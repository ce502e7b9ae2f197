"""pipelines and approvals

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:46:18.574545
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("object_kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=250), nullable=False),
        sa.Column("gate", sa.String(length=250), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("approvers_role", sa.String(length=250), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=250), nullable=True),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_by", sa.String(length=250), nullable=True),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("object_kind", "object_id", "gate"),
    )
    with op.batch_alter_table("approval", schema=None) as batch_op:
        batch_op.create_index("ix_approval_status", ["status"], unique=False)

    op.create_table(
        "pipeline_run",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=250), nullable=False),
        sa.Column("reference", sa.String(length=1024), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("graph", sa.JSON(), nullable=False),
        sa.Column("executor", sa.String(length=32), nullable=False),
        sa.Column("use_cache", sa.Boolean(), nullable=False),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("resumed_from", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "step_output",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("materializer", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("type_name", sa.String(length=250), nullable=False),
        sa.Column("executable", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "position"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "step_run",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=250), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("cached_from", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["run.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id"),
        sa.UniqueConstraint("pipeline_run_id", "step"),
    )
    with op.batch_alter_table("step_run", schema=None) as batch_op:
        batch_op.create_index("ix_step_run_cache_key", ["cache_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("step_run", schema=None) as batch_op:
        batch_op.drop_index("ix_step_run_cache_key")

    op.drop_table("step_run")
    op.drop_table("step_output")
    op.drop_table("pipeline_run")
    with op.batch_alter_table("approval", schema=None) as batch_op:
        batch_op.drop_index("ix_approval_status")

    op.drop_table("approval")
