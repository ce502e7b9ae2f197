"""Lineage: directed edges between any two objects, asked in both directions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, and_, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.store._tables import LINEAGE_EDGE

__all__ = ["Edge", "Node", "add_edge", "walk"]

_edges = LINEAGE_EDGE


@dataclass(frozen=True)
class Node:
    """An object in the lineage graph, e.g. ``Node("run", run_id)``."""

    kind: str
    id: str


@dataclass(frozen=True)
class Edge:
    """``src`` --relation--> ``dst``; ``depth`` is its distance from the start node."""

    src: Node
    dst: Node
    relation: str
    depth: int


def add_edge(connection: Connection, src: Node, dst: Node, relation: str, created_at: int) -> None:
    """Record ``src --relation--> dst`` (idempotent)."""
    values = {
        "src_kind": src.kind,
        "src_id": src.id,
        "dst_kind": dst.kind,
        "dst_id": dst.id,
        "relation": relation,
        "created_at": created_at,
    }
    factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(factory(_edges).values(**values).on_conflict_do_nothing())


def walk(
    connection: Connection,
    start: Node,
    direction: Literal["upstream", "downstream"],
    max_depth: int | None = None,
) -> list[Edge]:
    """Return every edge reachable from ``start``, breadth first.

    ``upstream`` follows edges backwards (what produced or was used by this?),
    ``downstream`` forwards (what was made from this?). Cycles are safe.
    """
    edges: list[Edge] = []
    seen = {start}
    frontier = [start]
    depth = 0
    while frontier and (max_depth is None or depth < max_depth):
        depth += 1
        rows = connection.execute(select(_edges).where(_frontier_clause(frontier, direction)))
        next_frontier: list[Node] = []
        for row in rows:
            src, dst = Node(row.src_kind, row.src_id), Node(row.dst_kind, row.dst_id)
            edges.append(Edge(src, dst, row.relation, depth))
            reached = src if direction == "upstream" else dst
            if reached not in seen:
                seen.add(reached)
                next_frontier.append(reached)
        frontier = next_frontier
    return edges


def _frontier_clause(frontier: list[Node], direction: str):  # type: ignore[no-untyped-def]
    kind, ident = (
        (_edges.c.dst_kind, _edges.c.dst_id)
        if direction == "upstream"
        else (_edges.c.src_kind, _edges.c.src_id)
    )
    if len(frontier) == 1:
        return and_(kind == frontier[0].kind, ident == frontier[0].id)
    return or_(tuple_(kind, ident).in_([(node.kind, node.id) for node in frontier]))
