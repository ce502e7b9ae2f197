"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 04:05:37.197038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environment",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "lineage_edge",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("src_kind", sa.String(length=32), nullable=False),
        sa.Column("src_id", sa.String(length=250), nullable=False),
        sa.Column("dst_kind", sa.String(length=32), nullable=False),
        sa.Column("dst_id", sa.String(length=250), nullable=False),
        sa.Column("relation", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
    )
    with op.batch_alter_table("lineage_edge", schema=None) as batch_op:
        batch_op.create_index("ix_lineage_dst", ["dst_kind", "dst_id"], unique=False)

    op.create_table(
        "note",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("object_kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=250), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("note", schema=None) as batch_op:
        batch_op.create_index("ix_note_object", ["object_kind", "object_id"], unique=False)

    op.create_table(
        "project",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("user", sa.String(length=250), nullable=True),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("failure_type", sa.String(length=250), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("failure_traceback", sa.Text(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("environment_sha256", sa.String(length=64), nullable=True),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("tags_json", sa.Text(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=True),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_sha256"],
            ["environment.sha256"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["run.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index("ix_run_project_start", ["project_id", "start_time"], unique=False)

    op.create_table(
        "latest_metric",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "key"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("latest_metric", schema=None) as batch_op:
        batch_op.create_index("ix_latest_metric_key_value", ["key", "value"], unique=False)

    op.create_table(
        "metric",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.create_index("ix_metric_run_key_step", ["run_id", "key", "step"], unique=False)

    op.create_table(
        "param",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_artifact",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("is_dir", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "path"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tag",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "key"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("tag")
    op.drop_table("run_artifact")
    op.drop_table("param")
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_run_key_step")

    op.drop_table("metric")
    with op.batch_alter_table("latest_metric", schema=None) as batch_op:
        batch_op.drop_index("ix_latest_metric_key_value")

    op.drop_table("latest_metric")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_index("ix_run_project_start")
        batch_op.drop_index(batch_op.f("ix_run_parent_id"))

    op.drop_table("run")
    op.drop_table("project")
    with op.batch_alter_table("note", schema=None) as batch_op:
        batch_op.drop_index("ix_note_object")

    op.drop_table("note")
    with op.batch_alter_table("lineage_edge", schema=None) as batch_op:
        batch_op.drop_index("ix_lineage_dst")

    op.drop_table("lineage_edge")
    op.drop_table("environment")
