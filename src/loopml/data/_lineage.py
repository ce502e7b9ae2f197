"""Lineage of dataset versions: the edges registering and loading record, and who refers to one.

A version is the node ``("dataset_version", id)``. Registering records
``run --output--> version`` and ``parent --derived--> version``; loading inside a
run records ``version --input--> run``; the registry records
``version --trained_on--> model_version`` and pipeline steps their inputs and
outputs like runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, or_, select

from loopml.data._records import DatasetVersion, VersionReference
from loopml.data._rows import NODE_KIND, versions_query
from loopml.store import Node, Store, add_edge, now_ms, tables

__all__ = ["live_references", "record_lineage"]

_edge = tables.LINEAGE_EDGE
_run = tables.RUN
_model = tables.MODEL
_model_version = tables.MODEL_VERSION
_version = tables.DATASET_VERSION


def record_lineage(
    store: Store,
    version: DatasetVersion,
    parents: Sequence[DatasetVersion],
    run_id: str | None,
    *,
    produced: bool,
) -> None:
    """Record that ``version`` was derived from ``parents`` and produced (or used) by a run."""
    if not parents and run_id is None:
        return
    node = Node(NODE_KIND, str(version.id))
    with store.write() as conn:
        for parent in parents:
            add_edge(conn, Node(NODE_KIND, str(parent.id)), node, "derived", now_ms())
        if run_id is not None:
            if produced:
                add_edge(conn, Node("run", run_id), node, "output", now_ms())
            else:
                add_edge(conn, node, Node("run", run_id), "input", now_ms())


def live_references(conn: Connection, version_id: int) -> list[VersionReference]:
    """What live refers to a version through one lineage edge, in a stable order.

    Live means: a run (or pipeline step) that is not deleted, any model version,
    and a dataset version derived from it that is not deleted. The version's own
    parents are not references to it.
    """
    me = str(version_id)
    rows = conn.execute(
        select(_edge).where(
            or_(
                and_(_edge.c.src_kind == NODE_KIND, _edge.c.src_id == me),
                and_(_edge.c.dst_kind == NODE_KIND, _edge.c.dst_id == me),
            )
        )
    ).all()
    found: list[VersionReference] = []
    for row in rows:
        if row.src_kind == NODE_KIND and row.src_id == me:
            other_kind, other_id = row.dst_kind, row.dst_id
        else:
            other_kind, other_id = row.src_kind, row.src_id
        if other_kind == NODE_KIND and row.relation == "derived" and row.dst_id == me:
            continue  # a parent of this version
        label = _label(conn, other_kind, other_id)
        if label is not None:
            found.append(VersionReference(other_kind, other_id, row.relation, label))
    return sorted(set(found), key=lambda r: (r.kind, r.label, r.relation))


def _label(conn: Connection, kind: str, ident: str) -> str | None:
    """How to name a live referrer, or None when it is gone or deleted."""
    if kind == "run":
        run = conn.execute(
            select(_run.c.name, _run.c.kind).where(_run.c.id == ident, _run.c.deleted_at.is_(None))
        ).first()
        if run is None:
            return None
        what = "pipeline step" if run.kind == "step" else run.kind
        named = f" {run.name}" if run.name else ""
        return f"{what}{named} (run {ident})"
    if not ident.isdigit():
        return None
    if kind == "model_version":
        model = conn.execute(
            select(_model.c.name, _model_version.c.version, _model_version.c.status)
            .join(_model, _model.c.id == _model_version.c.model_id)
            .where(_model_version.c.id == int(ident))
        ).first()
        if model is None:
            return None
        return f"model version {model.name}/{model.version} ({model.status})"
    if kind == NODE_KIND:
        child = conn.execute(
            versions_query().where(_version.c.id == int(ident), _version.c.deleted_at.is_(None))
        ).first()
        return None if child is None else f"dataset version {child.dataset_name}:{child.version}"
    return None
