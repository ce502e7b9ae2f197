"""soft delete of runs and dataset versions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:15:00.000000

``run.deleted_at`` and ``dataset_version.deleted_at`` hold when a run or a dataset
version was deleted (NULL while it is live). A deleted row keeps everything it had
and can be restored; garbage collection removes what only deleted rows still
reference once they have been deleted for longer than the grace period.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("dataset_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_version", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
