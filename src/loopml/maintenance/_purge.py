"""Purge: remove for good the runs and dataset versions soft-deleted long enough ago.

A run goes with every row that hangs off it: each table with a foreign key to
``run.id`` (params, tags, metrics, artifacts index, pipeline and step records,
step outputs), its notes, its approvals and the lineage edges at either end.
A dataset version goes with its lineage edges. The blobs only they referenced
are then unreferenced, and the blob pass of :func:`collect_garbage` deletes them.

What is kept although deleted long enough ago, and why:

* a run with a child run that is not purged with it (a child restored or deleted
  later), since the child would lose its parent;
* a run that a model version names as its source run (the model's card and
  lineage lead to it);
* a dataset version linked by lineage to a run that stays (live or recently
  deleted), to a model version, or to a dataset version that stays (derived data).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Column, ColumnElement, Connection, Table, and_, delete, or_, select, update

from loopml.store import tables

__all__ = ["KeptItem", "PurgeReport", "purge_deleted"]

_run = tables.RUN
_dataset = tables.DATASET
_dataset_version = tables.DATASET_VERSION
_edge = tables.LINEAGE_EDGE
_note = tables.NOTE
_approval = tables.APPROVAL
_model = tables.MODEL
_model_version = tables.MODEL_VERSION
_CHUNK = 500
_RUN_OBJECT_KINDS = ("run", "pipeline_run")
_VERSION_KIND = "dataset_version"
_T = TypeVar("_T")


@dataclass(frozen=True)
class KeptItem:
    """A deleted run or dataset version old enough to purge, kept, and why."""

    kind: str
    id: str
    label: str
    reason: str


@dataclass(frozen=True)
class PurgeReport:
    """The runs and dataset versions removed (or, in a dry run, to be removed)."""

    runs: list[str] = field(default_factory=list)
    dataset_versions: list[tuple[str, str]] = field(default_factory=list)
    kept: list[KeptItem] = field(default_factory=list)


def purge_deleted(conn: Connection, deleted_before_ms: int) -> PurgeReport:
    """Delete the rows of runs and dataset versions deleted before ``deleted_before_ms``.

    Runs in the caller's transaction (roll it back for a dry run).

    Args:
        conn: a connection inside a write transaction.
        deleted_before_ms: epoch milliseconds; only what was deleted at or before it goes.

    Returns:
        What was removed and what was kept although old enough, with why.
    """
    kept: list[KeptItem] = []
    runs = _purgeable_runs(conn, deleted_before_ms, kept)
    versions = _purgeable_versions(conn, deleted_before_ms, set(runs), kept)
    _delete_runs(conn, runs)
    _delete_versions(conn, [version_id for version_id, _ in versions])
    return PurgeReport(runs, versions, kept)


# -- runs -------------------------------------------------------------------------------


def _purgeable_runs(conn: Connection, before: int, kept: list[KeptItem]) -> list[str]:
    rows = conn.execute(
        select(_run.c.id, _run.c.parent_id, _run.c.name).where(
            _run.c.deleted_at.is_not(None), _run.c.deleted_at <= before
        )
    ).all()
    names = {row.id: row.name or "" for row in rows}
    candidates = set(names)
    reasons: dict[str, str] = {}
    for chunk in _chunks(sorted(candidates)):
        for source_run, model, version in conn.execute(
            select(_model_version.c.source_run_id, _model.c.name, _model_version.c.version)
            .join(_model, _model.c.id == _model_version.c.model_id)
            .where(_model_version.c.source_run_id.in_(chunk))
        ):
            reasons.setdefault(source_run, f"model version {model}/{version} was trained by it")
    candidates -= set(reasons)
    # A run whose child stays must stay too (repeat: keeping a child keeps its parents).
    changed = True
    while changed:
        changed = False
        children = _children(conn, sorted(candidates))
        for parent, child in children:
            if parent in candidates and child not in candidates:
                candidates.discard(parent)
                reasons[parent] = f"its child run {child} is not being purged"
                changed = True
    for run_id in sorted(reasons):
        kept.append(KeptItem("run", run_id, names.get(run_id, ""), reasons[run_id]))
    return sorted(candidates)


def _children(conn: Connection, run_ids: Sequence[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for chunk in _chunks(run_ids):
        found.extend(
            (parent, child)
            for child, parent in conn.execute(
                select(_run.c.id, _run.c.parent_id).where(_run.c.parent_id.in_(chunk))
            )
        )
    return found


def _delete_runs(conn: Connection, run_ids: Sequence[str]) -> None:
    if not run_ids:
        return
    referencing = _referencing_columns(_run)
    for chunk in _chunks(run_ids):
        ids = chunk
        # Parents and children go together; unlink them first so no order is needed.
        conn.execute(update(_run).where(_run.c.id.in_(ids)).values(parent_id=None))
        for table, columns in referencing.items():
            conn.execute(delete(table).where(or_(*(column.in_(ids) for column in columns))))
        conn.execute(delete(_note).where(_note.c.object_kind == "run", _note.c.object_id.in_(ids)))
        conn.execute(
            delete(_approval).where(
                _approval.c.object_kind.in_(_RUN_OBJECT_KINDS), _approval.c.object_id.in_(ids)
            )
        )
        conn.execute(delete(_edge).where(_edge_touches("run", ids)))
    for chunk in _chunks(run_ids):
        conn.execute(delete(_run).where(_run.c.id.in_(chunk)))


# -- dataset versions ---------------------------------------------------------------------


def _purgeable_versions(
    conn: Connection, before: int, purged_runs: set[str], kept: list[KeptItem]
) -> list[tuple[str, str]]:
    rows = conn.execute(
        select(_dataset_version.c.id, _dataset.c.name, _dataset_version.c.version)
        .join(_dataset, _dataset.c.id == _dataset_version.c.dataset_id)
        .where(_dataset_version.c.deleted_at.is_not(None), _dataset_version.c.deleted_at <= before)
        .order_by(_dataset_version.c.id)
    ).all()
    labels = {str(row.id): f"{row.name}:{row.version}" for row in rows}
    candidates = set(labels)
    links: list[tuple[str, str, str, str]] = []  # (version id, other kind, other id, relation)
    for chunk in _chunks(sorted(candidates)):
        ids = list(chunk)
        for edge in conn.execute(select(_edge).where(_edge_touches(_VERSION_KIND, ids))):
            if edge.src_kind == _VERSION_KIND and edge.src_id in candidates:
                links.append((edge.src_id, edge.dst_kind, edge.dst_id, edge.relation))
            if edge.dst_kind == _VERSION_KIND and edge.dst_id in candidates:
                links.append((edge.dst_id, edge.src_kind, edge.src_id, edge.relation))
    runs_staying = _existing(conn, _run.c.id, {i for _, k, i, _ in links if k == "run"})
    runs_staying -= purged_runs
    models = _model_versions(conn, {i for _, k, i, _ in links if k == "model_version"})
    linked_versions = {int(i) for _, k, i, _ in links if k == _VERSION_KIND and i.isdigit()}
    versions_staying = _existing(conn, _dataset_version.c.id, linked_versions) - candidates
    reasons: dict[str, str] = {}
    for version_id, kind, other, relation in links:
        if kind == "run" and other in runs_staying:
            reasons.setdefault(version_id, f"run {other} still references it ({relation})")
        elif kind == "model_version" and other in models:
            reasons.setdefault(version_id, f"model version {models[other]} was trained on it")
    # Derived data: a version linked to a version that stays, stays (to a fixpoint).
    changed = True
    while changed:
        changed = False
        for version_id, kind, other, relation in links:
            if kind != _VERSION_KIND or version_id in reasons:
                continue
            if other in versions_staying or other in reasons:
                label = labels.get(other) or f"id {other}"
                reasons[version_id] = f"dataset version {label} stays and is linked ({relation})"
                changed = True
    for version_id in sorted(reasons, key=int):
        kept.append(
            KeptItem("dataset_version", version_id, labels[version_id], reasons[version_id])
        )
    return [(v, labels[v]) for v in sorted(candidates - set(reasons), key=int)]


def _delete_versions(conn: Connection, version_ids: Sequence[str]) -> None:
    referencing = _referencing_columns(_dataset_version)
    for chunk in _chunks(version_ids):
        ids = list(chunk)
        numbers = [int(v) for v in ids]
        for table, columns in referencing.items():
            conn.execute(delete(table).where(or_(*(column.in_(numbers) for column in columns))))
        conn.execute(delete(_edge).where(_edge_touches(_VERSION_KIND, ids)))
        conn.execute(delete(_dataset_version).where(_dataset_version.c.id.in_(numbers)))


def _model_versions(conn: Connection, ids: set[str]) -> dict[str, str]:
    numbers = [int(i) for i in ids if i.isdigit()]
    found: dict[str, str] = {}
    for chunk in _chunks(numbers):
        for version_id, name, version in conn.execute(
            select(_model_version.c.id, _model.c.name, _model_version.c.version)
            .join(_model, _model.c.id == _model_version.c.model_id)
            .where(_model_version.c.id.in_(list(chunk)))
        ):
            found[str(version_id)] = f"{name}/{version}"
    return found


# -- helpers ------------------------------------------------------------------------------


def _existing(conn: Connection, key: Column[Any], ids: Iterable[Any]) -> set[str]:
    """The ``ids`` that ``key`` (a primary key column) holds, as text."""
    wanted = sorted(ids, key=str)
    found: set[str] = set()
    for chunk in _chunks(wanted):
        found.update(str(v) for v in conn.execute(select(key).where(key.in_(chunk))).scalars())
    return found


def _referencing_columns(target: Table) -> dict[Table, list[Column[Any]]]:
    """Every other table's columns with a foreign key to ``target`` (found, not listed)."""
    found: dict[Table, list[Column[Any]]] = {}
    for table in tables.Base.metadata.sorted_tables:
        if table is target:
            continue
        for column in table.columns:
            if any(fk.column.table is target for fk in column.foreign_keys):
                found.setdefault(table, []).append(column)
    return found


def _edge_touches(kind: str, ids: Sequence[str]) -> ColumnElement[bool]:
    return or_(
        and_(_edge.c.src_kind == kind, _edge.c.src_id.in_(ids)),
        and_(_edge.c.dst_kind == kind, _edge.c.dst_id.in_(ids)),
    )


def _chunks(items: Sequence[_T]) -> Iterable[list[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])
