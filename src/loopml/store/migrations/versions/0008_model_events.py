"""model events and version requirements

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-07 06:20:00.000000

``model_event`` records every change to a model's promotion policy (set, with
the policy and its text; clear, with the reason it was removed on purpose) and
every archive/unarchive of a version (with the status an unarchive restores).
``model_version.requirements`` holds the pip requirement lines captured when a
version is registered (NULL for versions registered before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_event",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("model_id", _BIG_ID, nullable=False),
        sa.Column("version_id", _BIG_ID, nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("policy", sa.JSON(), nullable=True),
        sa.Column("policy_text", sa.Text(), nullable=True),
        sa.Column("status_before", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=250), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_event", schema=None) as batch_op:
        batch_op.create_index("ix_model_event_model", ["model_id", "id"], unique=False)
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requirements", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_column("requirements")
    with op.batch_alter_table("model_event", schema=None) as batch_op:
        batch_op.drop_index("ix_model_event_model")
    op.drop_table("model_event")
