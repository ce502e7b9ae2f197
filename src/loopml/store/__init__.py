"""The metadata store: SQLAlchemy engine, tables, migrations and lineage edges.

Embedded default: SQLite in WAL mode under ``LOOPML_HOME``; multi-user:
PostgreSQL via ``postgresql+psycopg://``. Both pass the same contract tests.
"""

from __future__ import annotations

from loopml.store import _tables as tables
from loopml.store._engine import NUMBER_PATTERN, redacted
from loopml.store._lineage import Edge, Node, add_edge, walk
from loopml.store._migrate import HEAD_REVISION, current_revision
from loopml.store._store import (
    Store,
    defer_store,
    next_number,
    now_ms,
    open_store,
    read_only,
)

__all__ = [
    "HEAD_REVISION",
    "NUMBER_PATTERN",
    "Edge",
    "Node",
    "Store",
    "add_edge",
    "current_revision",
    "defer_store",
    "next_number",
    "now_ms",
    "open_store",
    "read_only",
    "redacted",
    "tables",
    "walk",
]
