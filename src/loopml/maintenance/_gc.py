"""Garbage collection: purge runs and dataset versions deleted long ago, then delete
blobs that no metadata refers to.

Soft-deleted runs and dataset versions older than the deleted-grace period
(``LOOPML_GC_DELETED_GRACE``) are removed first (see :mod:`._purge`), in the same
transaction that then finds the blob references, so what only they referenced
is garbage in the same pass (and a dry run, rolled back, reports exactly that).
A blob is referenced when any column marked ``info={"blob": True}`` holds its
digest, or when it is listed in a referenced directory manifest. Blobs younger
than the grace period are kept even when unreferenced: they may belong to a
write whose metadata is about to be committed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, column, select, table

from loopml import settings
from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.maintenance._purge import KeptItem, PurgeReport, purge_deleted
from loopml.store import Store, now_ms, tables

__all__ = ["GcReport", "KeptItem", "PurgeReport", "collect_garbage"]


class _RollBack(Exception):
    """Raised inside the transaction of a dry run to undo the purge it measured."""


@dataclass(frozen=True)
class GcReport:
    """What a garbage collection found and (unless a dry run) deleted.

    ``purged`` lists the deleted runs and dataset versions removed for good (or that
    would be), and those kept although deleted long enough ago, with why.
    """

    dry_run: bool
    referenced: int
    kept_young: int
    unreferenced: list[tuple[str, int]] = field(default_factory=list)
    purged: PurgeReport = field(default_factory=PurgeReport)
    deleted_grace_seconds: float = 0.0

    @property
    def reclaimable_bytes(self) -> int:
        """Bytes that the unreferenced blobs take."""
        return sum(size for _, size in self.unreferenced)


def collect_garbage(
    store: Store,
    artifacts: ArtifactStore,
    *,
    dry_run: bool = True,
    grace_seconds: float,
    deleted_grace_seconds: float | None = None,
) -> GcReport:
    """Purge long-deleted runs and dataset versions, then find (and delete) unreferenced blobs.

    Unless ``dry_run``, both happen for real: the purged rows are gone for good.

    Args:
        store: the metadata store whose references count.
        artifacts: the artifact store to clean.
        dry_run: only report; delete nothing.
        grace_seconds: never touch blobs younger than this.
        deleted_grace_seconds: purge runs and dataset versions deleted longer ago than
            this (default: ``LOOPML_GC_DELETED_GRACE``, 30 days).

    Raises:
        InvalidParameter: a negative grace period.

    Example:
        >>> report = collect_garbage(store, artifacts, dry_run=True, grace_seconds=3600)
        >>> report.purged.runs, report.reclaimable_bytes
        ([], 0)
    """
    for name, value in (
        ("grace_seconds", grace_seconds),
        ("deleted_grace_seconds", deleted_grace_seconds),
    ):
        if value is not None and not value >= 0:
            raise InvalidParameter(
                f"The {name!r} parameter of collect_garbage must be >= 0; got {value}."
            )
    if deleted_grace_seconds is None:
        deleted_grace_seconds = float(settings.get("LOOPML_GC_DELETED_GRACE"))
    deleted_before = now_ms() - int(deleted_grace_seconds * 1000)
    try:
        with store.write() as conn:
            purged = purge_deleted(conn, deleted_before)
            referenced = _referenced(conn, artifacts)
            if dry_run:
                raise _RollBack
    except _RollBack:
        pass
    cutoff = time.time() - grace_seconds
    unreferenced: list[tuple[str, int]] = []
    young = 0
    for digest, mtime in artifacts.iter_blobs():
        if digest in referenced:
            continue
        if mtime > cutoff:
            young += 1
            continue
        unreferenced.append((digest, artifacts.size(digest)))
    if not dry_run:
        for digest, _ in unreferenced:
            artifacts.delete(digest)
    return GcReport(
        dry_run, len(referenced), young, unreferenced, purged, float(deleted_grace_seconds)
    )


def _referenced(conn: Connection, artifacts: ArtifactStore) -> set[str]:
    digests: set[str] = set()
    for table_name, column_name in tables.blob_columns():
        query: Select[tuple[Any]] = (
            select(column(column_name)).select_from(table(table_name)).distinct()
        )
        digests.update(value for value in conn.execute(query).scalars() if value)
    pending = list(digests)
    while pending:
        digest = pending.pop()
        if artifacts.exists(digest) and artifacts.is_manifest(digest):
            for entry in artifacts.read_manifest(digest):
                if entry.digest not in digests:
                    digests.add(entry.digest)
                    pending.append(entry.digest)
    return digests
