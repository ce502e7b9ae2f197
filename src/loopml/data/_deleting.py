"""Soft delete and restore of dataset versions.

Deleting sets ``dataset_version.deleted_at``; nothing else changes, so restoring
(clearing it) gives back exactly what was there. A deleted version is never the
latest, is hidden from listings unless asked for, and its data is refused; its
metadata stays readable. Garbage collection, not this module, removes the data of
versions deleted long enough that nothing live refers to.
"""

from __future__ import annotations

import warnings

from sqlalchemy import update

from loopml.data._lineage import live_references
from loopml.data._reading import get_version, require_live
from loopml.data._records import DatasetDeletion, DatasetVersion, VersionReference
from loopml.data._refs import parse_ref
from loopml.data._rows import VERSION
from loopml.errors import DatasetVersionNotDeleted, DatasetVersionReferenced, InvalidParameter
from loopml.store import Store, now_ms

__all__ = ["delete", "references", "restore", "version_ref"]


def version_ref(ref: str, version: int | None, *, action: str) -> str:
    """``name:N`` from ``"name:N"`` or ``("name", version=N)``; one version, by number.

    Raises:
        InvalidParameter: no version number, ``@latest``, or a number given twice.
    """
    parsed = parse_ref(ref)
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidParameter(
                f"The 'version' parameter of {action} must be a positive int; got {version!r}."
            )
        if parsed.version is not None or ref.strip() != parsed.name:
            raise InvalidParameter(
                f"Give the version of {action} once: {ref!r} already names one; "
                f"drop version={version}."
            )
        return f"{parsed.name}:{version}"
    if parsed.version is None:
        raise InvalidParameter(
            f"{action} needs a version number: {ref!r} names a dataset, not one version; "
            f"write '{parsed.name}:N' (see 'loopml data versions {parsed.name}')."
        )
    return str(parsed)


def references(store: Store, ref: str, *, project: str) -> list[VersionReference]:
    """What live refers to version ``ref`` through lineage (runs, steps, models, derived data)."""
    version = get_version(store, ref, project=project)
    with store.read() as conn:
        return live_references(conn, version.id)


def delete(store: Store, ref: str, *, project: str) -> DatasetDeletion:
    """Mark version ``ref`` (``name:N``) deleted and report what live still refers to it.

    Raises:
        DatasetNotFound: no such dataset or version.
        DatasetVersionDeleted: the version is already deleted.
    """
    version = require_live(get_version(store, ref, project=project))
    with store.write() as conn:
        done = conn.execute(
            update(VERSION)
            .where(VERSION.c.id == version.id, VERSION.c.deleted_at.is_(None))
            .values(deleted_at=now_ms())
        )
        found = live_references(conn, version.id)
    if done.rowcount == 0:  # deleted by someone else since we read it
        require_live(get_version(store, version.ref, project=project))
    deleted = get_version(store, version.ref, project=project)
    if found:
        warnings.warn(
            f"Dataset version {deleted.ref} is deleted but still referred to by "
            f"{_listing(found)}; garbage collection keeps its data while they live.",
            DatasetVersionReferenced,
            stacklevel=3,
        )
    return DatasetDeletion(deleted, tuple(found))


def restore(store: Store, ref: str, *, project: str) -> DatasetVersion:
    """Bring a deleted version ``ref`` (``name:N``) back, as it was.

    Raises:
        DatasetNotFound: no such dataset or version (or ``loopml gc`` purged it while
            this waited for gc's lock on it).
        DatasetVersionNotDeleted: the version is not deleted.
    """
    version = get_version(store, ref, project=project)
    with store.write() as conn:
        done = conn.execute(
            update(VERSION)
            .where(VERSION.c.id == version.id, VERSION.c.deleted_at.is_not(None))
            .values(deleted_at=None)
        )
    if done.rowcount == 0:
        get_version(store, version.ref, project=project)  # purged by gc meanwhile: not found
        raise DatasetVersionNotDeleted(
            f"Dataset version {version.ref} in project {project!r} is not deleted; "
            "there is nothing to restore.",
            ref=version.ref,
        )
    return get_version(store, version.ref, project=project)


def _listing(found: list[VersionReference]) -> str:
    shown = ", ".join(r.label for r in found[:5])
    more = len(found) - 5
    return f"{shown} and {more} more" if more > 0 else shown
