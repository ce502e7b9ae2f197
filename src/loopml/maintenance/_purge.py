"""Purge: remove for good the runs and dataset versions soft-deleted long enough ago.

A run goes with every row that hangs off it: each table with a foreign key to
``run.id`` (params, tags, metrics, artifacts index, pipeline and step records,
step outputs), its notes, its approvals and the lineage edges at either end.
A dataset version goes with its lineage edges. The blobs only they referenced
are then unreferenced, and the blob pass of :func:`collect_garbage` deletes them.

What is kept although deleted long enough ago, and why:

* a run that is still active: running with a fresh heartbeat (its process would
  go on logging to a run that no longer exists), or waiting for approval;
* a run a model version names as its source run (the model's card and lineage
  lead to it);
* a run with a child run that stays (a child restored or deleted later), since
  the child would lose its parent;
* a step run of a pipeline run that stays (its step record and outputs are part
  of that pipeline run), and a run whose outputs a step that stays reuses
  (``step_run.cached_from``) or that a pipeline run that stays resumed from;
* a run that produced a dataset version that stays (its provenance);
* a dataset version linked by lineage to a run that stays (live or recently
  deleted) or to a model version, and one a version that stays was derived from
  (a derived version's parents stay for it; its own parents keep nothing).

Whether something stays depends on what else stays, so the rules are applied
until nothing changes. On PostgreSQL the candidates' rows are locked, so a run or
version restored while gc runs waits for it (or makes it skip that row), and the
final deletes check again that each row is still deleted long enough ago.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    delete,
    or_,
    select,
    update,
)

from loopml import settings
from loopml._html import when
from loopml.errors import StoreError
from loopml.store import now_ms, tables

__all__ = ["KeptItem", "PurgeReport", "purge_deleted"]

_run = tables.RUN
_dataset = tables.DATASET
_dataset_version = tables.DATASET_VERSION
_edge = tables.LINEAGE_EDGE
_note = tables.NOTE
_approval = tables.APPROVAL
_model = tables.MODEL
_model_version = tables.MODEL_VERSION
_step_run = tables.STEP_RUN
_pipeline_run = tables.PIPELINE_RUN
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

    Raises:
        StoreError: a candidate was restored or deleted again while gc ran (only
            possible without row locks); the transaction must be rolled back.
    """
    run_names = _candidate_runs(conn, deleted_before_ms)
    labels = _candidate_versions(conn, deleted_before_ms)
    links = _Links.read(conn, set(run_names), set(labels))
    run_reasons = _fixed_run_reasons(conn, sorted(run_names))
    version_reasons = links.fixed_version_reasons(conn)
    runs = set(run_names) - set(run_reasons)
    versions = set(labels) - set(version_reasons)
    changed = True
    while changed:  # keeping one thing can keep others: repeat to a fixpoint
        changed = False
        for run_id, reason in links.run_holds(runs, versions):
            if run_id in runs:
                runs.discard(run_id)
                run_reasons[run_id] = reason
                changed = True
        for version_id, reason in links.version_holds(runs, versions):
            if version_id in versions:
                versions.discard(version_id)
                version_reasons[version_id] = reason
                changed = True
    kept = [KeptItem("run", r, run_names[r], run_reasons[r]) for r in sorted(run_reasons)]
    kept.extend(
        KeptItem(_VERSION_KIND, v, labels[v], version_reasons[v])
        for v in sorted(version_reasons, key=int)
    )
    purged_versions = [(v, labels[v]) for v in sorted(versions, key=int)]
    _delete_runs(conn, sorted(runs), deleted_before_ms)
    _delete_versions(conn, [v for v, _ in purged_versions], deleted_before_ms)
    return PurgeReport(sorted(runs), purged_versions, kept)


# -- candidates ---------------------------------------------------------------------------


def _locked(conn: Connection, query: Select[Any], table: Table) -> Select[Any]:
    """``query`` holding its rows of ``table`` until the transaction ends (PostgreSQL).

    A concurrent restore then waits for gc, and gc's select waits for a restore
    already under way (and skips the row it brought back). SQLite's write
    transactions are exclusive already.
    """
    if conn.dialect.name == "postgresql":
        return query.with_for_update(of=table)
    return query


def _deleted_long_enough(column: Column[Any], before: int) -> ColumnElement[bool]:
    return and_(column.is_not(None), column <= before)


def _candidate_runs(conn: Connection, before: int) -> dict[str, str]:
    query = select(_run.c.id, _run.c.name).where(_deleted_long_enough(_run.c.deleted_at, before))
    return {row.id: row.name or "" for row in conn.execute(_locked(conn, query, _run))}


def _candidate_versions(conn: Connection, before: int) -> dict[str, str]:
    query = (
        select(_dataset_version.c.id, _dataset.c.name, _dataset_version.c.version)
        .join(_dataset, _dataset.c.id == _dataset_version.c.dataset_id)
        .where(_deleted_long_enough(_dataset_version.c.deleted_at, before))
    )
    rows = conn.execute(_locked(conn, query, _dataset_version))
    return {str(row.id): f"{row.name}:{row.version}" for row in rows}


def _fixed_run_reasons(conn: Connection, run_ids: Sequence[str]) -> dict[str, str]:
    """Reasons to keep a run that do not depend on what else is purged."""
    reasons: dict[str, str] = {}
    fresh = now_ms() - int(float(settings.get("LOOPML_HEARTBEAT_TIMEOUT")) * 1000)
    for chunk in _chunks(run_ids):
        for run_id, status, beat in conn.execute(
            select(_run.c.id, _run.c.status, _run.c.heartbeat_at).where(
                _run.c.id.in_(chunk), _run.c.status.in_(("running", "waiting_for_approval"))
            )
        ):
            if status == "waiting_for_approval":
                reasons[run_id] = "it is waiting for approval"
            elif beat is not None and beat >= fresh:
                reasons[run_id] = f"it is still running (last heartbeat {when(beat)})"
        for source_run, model, version in conn.execute(
            select(_model_version.c.source_run_id, _model.c.name, _model_version.c.version)
            .join(_model, _model.c.id == _model_version.c.model_id)
            .where(_model_version.c.source_run_id.in_(chunk))
        ):
            reasons.setdefault(source_run, f"model version {model}/{version} was trained by it")
    return reasons


@dataclass
class _Links:
    """What ties the candidates to other runs and versions, read once."""

    children: list[tuple[str, str]]  # (parent, child)
    steps: list[tuple[str, str, str | None]]  # (step run, pipeline run, cached from)
    resumed: list[tuple[str, str]]  # (pipeline run, resumed from)
    outputs: list[tuple[str, str]]  # (run, dataset version it produced)
    version_edges: list[
        tuple[str, str, str, str, bool]
    ]  # (version, kind, other, rel, other is src)
    labels: dict[str, str]  # dataset version id -> name:N, for every version named here
    linked_runs: set[str]  # the runs the versions' edges name that exist

    @classmethod
    def read(cls, conn: Connection, runs: set[str], versions: set[str]) -> _Links:
        run_ids, version_ids = sorted(runs), sorted(versions, key=int)
        links = cls([], [], [], [], [], {}, set())
        for chunk in _chunks(run_ids):
            links.children.extend(
                (parent, child)
                for child, parent in conn.execute(
                    select(_run.c.id, _run.c.parent_id).where(_run.c.parent_id.in_(chunk))
                )
            )
            links.steps.extend(
                (row.run_id, row.pipeline_run_id, row.cached_from)
                for row in conn.execute(
                    select(
                        _step_run.c.run_id, _step_run.c.pipeline_run_id, _step_run.c.cached_from
                    ).where(or_(_step_run.c.run_id.in_(chunk), _step_run.c.cached_from.in_(chunk)))
                )
            )
            links.resumed.extend(
                (row.run_id, row.resumed_from)
                for row in conn.execute(
                    select(_pipeline_run.c.run_id, _pipeline_run.c.resumed_from).where(
                        _pipeline_run.c.resumed_from.in_(chunk)
                    )
                )
            )
            links.outputs.extend(
                (edge.src_id, edge.dst_id)
                for edge in conn.execute(
                    select(_edge.c.src_id, _edge.c.dst_id).where(
                        _edge.c.src_kind == "run",
                        _edge.c.src_id.in_(chunk),
                        _edge.c.dst_kind == _VERSION_KIND,
                        _edge.c.relation == "output",
                    )
                )
            )
        for chunk in _chunks(version_ids):
            for edge in conn.execute(select(_edge).where(_edge_touches(_VERSION_KIND, chunk))):
                if edge.src_kind == _VERSION_KIND and edge.src_id in versions:
                    links.version_edges.append(
                        (edge.src_id, edge.dst_kind, edge.dst_id, edge.relation, False)
                    )
                if edge.dst_kind == _VERSION_KIND and edge.dst_id in versions:
                    links.version_edges.append(
                        (edge.dst_id, edge.src_kind, edge.src_id, edge.relation, True)
                    )
        named = {v for _, v in links.outputs}
        named |= {o for _, k, o, _, _ in links.version_edges if k == _VERSION_KIND}
        links.labels = _version_labels(conn, named | versions)
        linked = sorted({o for _, k, o, _, _ in links.version_edges if k == "run"})
        for chunk in _chunks(linked):
            links.linked_runs.update(
                conn.execute(select(_run.c.id).where(_run.c.id.in_(chunk))).scalars()
            )
        return links

    def fixed_version_reasons(self, conn: Connection) -> dict[str, str]:
        """Versions a model version was trained on."""
        models = _model_versions(
            conn, {o for _, k, o, _, _ in self.version_edges if k == "model_version"}
        )
        reasons: dict[str, str] = {}
        for version_id, kind, other, _, _ in self.version_edges:
            if kind == "model_version" and other in models:
                reasons.setdefault(version_id, f"model version {models[other]} was trained on it")
        return reasons

    def run_holds(self, runs: set[str], versions: set[str]) -> Iterable[tuple[str, str]]:
        """(candidate run, why it must stay) given the runs and versions still to purge."""

        def stays(version_id: str) -> bool:
            return version_id in self.labels and version_id not in versions

        for parent, child in self.children:
            if child not in runs:
                yield parent, f"its child run {child} is not being purged"
        for step, pipeline, cached_from in self.steps:
            if pipeline not in runs:
                yield step, f"it is a step of pipeline run {pipeline}, which is not being purged"
            if cached_from is not None and step not in runs:
                yield cached_from, f"step run {step}, which stays, reuses its outputs (cached)"
        for pipeline, resumed_from in self.resumed:
            if pipeline not in runs:
                yield resumed_from, f"pipeline run {pipeline}, which stays, resumed from it"
        for run_id, version_id in self.outputs:
            if stays(version_id):
                label = self.labels[version_id]
                yield run_id, f"it produced dataset version {label}, which stays (output)"

    def version_holds(self, runs: set[str], versions: set[str]) -> Iterable[tuple[str, str]]:
        """(candidate version, why it must stay) given the runs and versions still to purge."""
        for version_id, kind, other, relation, other_is_src in self.version_edges:
            if kind == "run" and other in self.linked_runs and other not in runs:
                yield version_id, f"run {other} still references it ({relation})"
            elif (
                kind == _VERSION_KIND
                and relation == "derived"
                and not other_is_src  # only a child derived from this version keeps it
                and other in self.labels
                and other not in versions
            ):
                label = self.labels[other]
                yield version_id, f"dataset version {label} stays and was derived from it"


# -- deleting -----------------------------------------------------------------------------


def _delete_runs(conn: Connection, run_ids: Sequence[str], before: int) -> None:
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
        done = conn.execute(
            delete(_run).where(
                _run.c.id.in_(chunk), _deleted_long_enough(_run.c.deleted_at, before)
            )
        )
        _check_all_gone("run", done.rowcount, len(chunk))


def _delete_versions(conn: Connection, version_ids: Sequence[str], before: int) -> None:
    referencing = _referencing_columns(_dataset_version)
    for chunk in _chunks(version_ids):
        ids = list(chunk)
        numbers = [int(v) for v in ids]
        for table, columns in referencing.items():
            conn.execute(delete(table).where(or_(*(column.in_(numbers) for column in columns))))
        conn.execute(delete(_edge).where(_edge_touches(_VERSION_KIND, ids)))
        done = conn.execute(
            delete(_dataset_version).where(
                _dataset_version.c.id.in_(numbers),
                _deleted_long_enough(_dataset_version.c.deleted_at, before),
            )
        )
        _check_all_gone("dataset version", done.rowcount, len(numbers))


def _check_all_gone(kind: str, deleted: int, expected: int) -> None:
    """Refuse to go on when a candidate changed under gc (its rows are half deleted)."""
    if deleted != expected:
        raise StoreError(
            f"A {kind} gc was purging was restored or deleted again while gc ran; "
            "nothing was purged. Run gc again."
        )


def _version_labels(conn: Connection, ids: set[str]) -> dict[str, str]:
    return _labels(conn, ids, _dataset_version, _dataset, "dataset_id", ":")


def _model_versions(conn: Connection, ids: set[str]) -> dict[str, str]:
    return _labels(conn, ids, _model_version, _model, "model_id", "/")


def _labels(
    conn: Connection, ids: set[str], versions: Table, owners: Table, owner_key: str, sep: str
) -> dict[str, str]:
    """``{row id: "name{sep}version"}`` of the rows of ``versions`` among ``ids``."""
    numbers = sorted(int(i) for i in ids if i.isdigit())
    found: dict[str, str] = {}
    for chunk in _chunks(numbers):
        for version_id, name, version in conn.execute(
            select(versions.c.id, owners.c.name, versions.c.version)
            .join(owners, owners.c.id == versions.c[owner_key])
            .where(versions.c.id.in_(chunk))
        ):
            found[str(version_id)] = f"{name}{sep}{version}"
    return found


# -- helpers ------------------------------------------------------------------------------


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
