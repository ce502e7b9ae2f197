"""widen run.status to hold every status

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 15:45:00.000000

``run.status`` was VARCHAR(16): PostgreSQL refused ``waiting_for_approval`` (20
characters), so a pipeline paused at an approval gate failed there. SQLite does not
enforce the width, so its stores already hold such rows; widening keeps them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.alter_column(
            "status", existing_type=sa.String(length=16), type_=sa.String(length=32)
        )


def downgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.alter_column(
            "status", existing_type=sa.String(length=32), type_=sa.String(length=16)
        )
