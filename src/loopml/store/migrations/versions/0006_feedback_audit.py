"""feedback audit and serving secret

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:50:00.000000

``feedback_event`` keeps every label accepted for a request (corrections replace the
label in ``feedback`` and are audited here); existing labels are copied in as their
first event. ``serving_secret`` holds the key of the MAC in answered request ids.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("endpoint", sa.String(length=250), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feedback_event", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_event_request", ["endpoint", "request_id"], unique=False)
    op.execute(
        "INSERT INTO feedback_event (endpoint, request_id, label, received_at, source) "
        "SELECT endpoint, request_id, label, received_at, 'before-audit' FROM feedback "
        "ORDER BY id"
    )
    op.create_table(
        "serving_secret",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("serving_secret")
    with op.batch_alter_table("feedback_event", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_event_request")
    op.drop_table("feedback_event")
