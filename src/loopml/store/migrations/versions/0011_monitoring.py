"""monitors, their results, checks, alerts and cached reference sketches

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:00:00.000000

``monitor`` holds a monitor's configuration; each run is a ``monitor_result`` (the whole
result as a JSON blob in the artifact store) whose checks are rows of ``monitor_check``,
the time series that ``loopml monitor history`` reads. ``monitor_alert`` keeps alert
state: ``open_key`` is unique while an alert fires, so a check has at most one open
alert. ``monitor_reference`` caches the sketch of a reference dataset version.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEY = 250


def upgrade() -> None:
    op.create_table(
        "monitor",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=_KEY), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.String(length=_KEY), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "monitor_result",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("monitor_id", _BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("current", sa.Text(), nullable=False),
        sa.Column("reference_rows", sa.BigInteger(), nullable=False),
        sa.Column("current_rows", sa.BigInteger(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitor.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_monitor_result_monitor", "monitor_result", ["monitor_id", "started_at"])
    op.create_table(
        "monitor_check",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("result_id", _BIG_ID, nullable=False),
        sa.Column("monitor_id", _BIG_ID, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("check", sa.String(length=32), nullable=False),
        sa.Column("column", sa.String(length=_KEY), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=_KEY), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["result_id"], ["monitor_result.id"]),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitor.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_monitor_check_series", "monitor_check", ["monitor_id", "check", "column", "at"]
    )
    op.create_index("ix_monitor_check_result", "monitor_check", ["result_id"])
    op.create_table(
        "monitor_alert",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("monitor_id", _BIG_ID, nullable=False),
        sa.Column("open_key", sa.String(length=64), nullable=True),
        sa.Column("check", sa.String(length=32), nullable=False),
        sa.Column("column", sa.String(length=_KEY), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=_KEY), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("first_result_id", _BIG_ID, nullable=False),
        sa.Column("last_result_id", _BIG_ID, nullable=False),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("acked_at", sa.BigInteger(), nullable=True),
        sa.Column("acked_by", sa.String(length=_KEY), nullable=True),
        sa.Column("ack_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitor.id"]),
        sa.ForeignKeyConstraint(["first_result_id"], ["monitor_result.id"]),
        sa.ForeignKeyConstraint(["last_result_id"], ["monitor_result.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index("ix_monitor_alert_monitor", "monitor_alert", ["monitor_id", "opened_at"])
    op.create_table(
        "monitor_reference",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("monitor_reference")
    op.drop_index("ix_monitor_alert_monitor", table_name="monitor_alert")
    op.drop_table("monitor_alert")
    op.drop_index("ix_monitor_check_result", table_name="monitor_check")
    op.drop_index("ix_monitor_check_series", table_name="monitor_check")
    op.drop_table("monitor_check")
    op.drop_index("ix_monitor_result_monitor", table_name="monitor_result")
    op.drop_table("monitor_result")
    op.drop_table("monitor")
