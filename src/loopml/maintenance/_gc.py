"""Garbage collection: delete blobs that no metadata refers to.

A blob is referenced when any column marked ``info={"blob": True}`` holds its
digest, or when it is listed in a referenced directory manifest. Blobs younger
than the grace period are kept even when unreferenced: they may belong to a
write whose metadata is about to be committed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, column, select, table

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.store import Store, tables

__all__ = ["GcReport", "collect_garbage"]


@dataclass(frozen=True)
class GcReport:
    """What a garbage collection found and (unless a dry run) deleted."""

    dry_run: bool
    referenced: int
    kept_young: int
    unreferenced: list[tuple[str, int]] = field(default_factory=list)

    @property
    def reclaimable_bytes(self) -> int:
        """Bytes that the unreferenced blobs take."""
        return sum(size for _, size in self.unreferenced)


def collect_garbage(
    store: Store, artifacts: ArtifactStore, *, dry_run: bool = True, grace_seconds: float
) -> GcReport:
    """Find (and unless ``dry_run``, delete) blobs that nothing refers to.

    Args:
        store: the metadata store whose references count.
        artifacts: the artifact store to clean.
        dry_run: only report; delete nothing.
        grace_seconds: never touch blobs younger than this.

    Raises:
        InvalidParameter: a negative grace period.
    """
    if grace_seconds < 0:
        raise InvalidParameter(
            f"The 'grace_seconds' parameter of collect_garbage must be >= 0; got {grace_seconds}."
        )
    referenced = _referenced(store, artifacts)
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
    return GcReport(dry_run, len(referenced), young, unreferenced)


def _referenced(store: Store, artifacts: ArtifactStore) -> set[str]:
    digests: set[str] = set()
    with store.read() as conn:
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
