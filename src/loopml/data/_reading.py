"""Reading datasets: resolve references, list datasets and versions, load a version's data.

Resolving ``name`` or ``name@latest`` gives the newest *ready*, live version.
A version named by number is found even when deleted: its metadata stays
readable (``show``, ``diff``, its report and schema); only its data is refused
(:func:`require_live`) until it is restored.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, func, select

from loopml.artifacts import ArtifactStore
from loopml.data._lineage import record_lineage
from loopml.data._records import Dataset, DatasetVersion
from loopml.data._refs import DatasetRef, check_dataset_name, parse_ref
from loopml.data._report import ValidationReport
from loopml.data._rows import (
    DATASET,
    PROJECT,
    VERSION,
    require_dataset,
    version_record,
    versions_query,
)
from loopml.data._snapshot import read_snapshot
from loopml.errors import DatasetNotFound, DatasetVersionDeleted, InvalidParameter
from loopml.store import Store

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DeletedFilter",
    "get_version",
    "list_datasets",
    "list_versions",
    "load_table",
    "read_report",
    "require_live",
    "restore_hint",
]

DeletedFilter = Literal["hide", "show", "only"]
"""Which versions a listing gives: live ones (``hide``), all (``show``), deleted ones (``only``)."""

_DELETED_FILTERS = ("hide", "show", "only")


def get_version(store: Store, ref: str, *, project: str) -> DatasetVersion:
    """Resolve ``name``/``name@latest`` (newest ready, live version) or ``name:N`` (any).

    Raises:
        DatasetNotFound: no such dataset or version, or (for the latest) none usable.
    """
    parsed = parse_ref(ref)
    query = versions_query().where(PROJECT.c.name == project, DATASET.c.name == parsed.name)
    if parsed.version is None:
        query = query.where(VERSION.c.status == "ready", VERSION.c.deleted_at.is_(None))
        query = query.order_by(VERSION.c.version.desc())
    else:
        query = query.where(VERSION.c.version == parsed.version)
    with store.read() as conn:
        row = conn.execute(query.limit(1)).first()
        if row is None:
            dataset = require_dataset(conn, parsed.name, project)
            raise DatasetNotFound(_missing_version_message(conn, parsed, project, dataset.id))
    return version_record(row)


def require_live(version: DatasetVersion) -> DatasetVersion:
    """Return ``version`` if its data may be used.

    Raises:
        DatasetVersionDeleted: it is deleted (the message says how to restore it).
    """
    if version.deleted_at is None:
        return version
    raise DatasetVersionDeleted(
        f"Dataset version {version.ref} in project {version.project!r} was deleted on "
        f"{_when(version.deleted_at)}; its data cannot be used. "
        f"Restore it with {restore_hint(version)}.",
        ref=version.ref,
        deleted_at=version.deleted_at,
    )


def restore_hint(version: DatasetVersion) -> str:
    """How to restore ``version``, from the shell and from Python."""
    return (
        f"'loopml data restore {version.ref} -p {version.project}' "
        f"(or loopml.data.restore({version.ref!r}))"
    )


def load_table(
    store: Store, artifacts: ArtifactStore, ref: str, *, project: str, run_id: str | None
) -> pa.Table:
    """The data of a live version, verified on read; inside a run, record it as an input.

    Raises:
        DatasetNotFound: no such version.
        DatasetVersionDeleted: the version is deleted.
    """
    version = require_live(get_version(store, ref, project=project))
    with snapshot_file(artifacts, version) as path:
        table = read_snapshot(path)
    if run_id is not None:
        record_lineage(store, version, (), run_id, produced=False)
    return table


@contextmanager
def snapshot_file(artifacts: ArtifactStore, version: DatasetVersion) -> Iterator[Path]:
    """The version's Parquet snapshot, in a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="loopml-data-") as folder:
        yield artifacts.get_file(version.digest, Path(folder) / "data.parquet")


def list_datasets(store: Store, *, project: str) -> list[Dataset]:
    """The datasets of a project by name, with their latest usable version."""
    live = VERSION.c.deleted_at.is_(None)
    latest = (
        select(func.max(VERSION.c.version))
        .where(VERSION.c.dataset_id == DATASET.c.id, VERSION.c.status == "ready", live)
        .scalar_subquery()
    )
    count = (
        select(func.count())
        .select_from(VERSION)
        .where(VERSION.c.dataset_id == DATASET.c.id, live)
        .scalar_subquery()
    )
    deleted = (
        select(func.count())
        .select_from(VERSION)
        .where(VERSION.c.dataset_id == DATASET.c.id, VERSION.c.deleted_at.is_not(None))
        .scalar_subquery()
    )
    query = (
        select(
            DATASET,
            PROJECT.c.name.label("project_name"),
            latest.label("latest"),
            count.label("n"),
            deleted.label("n_deleted"),
        )
        .join(PROJECT, PROJECT.c.id == DATASET.c.project_id)
        .where(PROJECT.c.name == project)
        .order_by(DATASET.c.name)
    )
    with store.read() as conn:
        return [
            Dataset(
                name=r.name,
                project=r.project_name,
                description=r.description,
                key_columns=tuple(r.key_columns),
                created_at=r.created_at,
                latest_version=r.latest,
                version_count=r.n,
                deleted_count=r.n_deleted,
            )
            for r in conn.execute(query)
        ]


def list_versions(
    store: Store, name: str, *, project: str, deleted: DeletedFilter = "hide"
) -> list[DatasetVersion]:
    """The versions of a dataset, oldest first (quarantined ones included).

    Raises:
        DatasetNotFound: no dataset ``name``.
        InvalidParameter: ``deleted`` is not ``hide``, ``show`` or ``only``.
    """
    if deleted not in _DELETED_FILTERS:
        raise InvalidParameter(
            f"The 'deleted' parameter of versions must be one of {list(_DELETED_FILTERS)}; "
            f"got {deleted!r}."
        )
    query = versions_query().where(PROJECT.c.name == project, DATASET.c.name == name)
    if deleted == "hide":
        query = query.where(VERSION.c.deleted_at.is_(None))
    elif deleted == "only":
        query = query.where(VERSION.c.deleted_at.is_not(None))
    with store.read() as conn:
        require_dataset(conn, check_dataset_name(name), project)
        rows = conn.execute(query.order_by(VERSION.c.version)).all()
    return [version_record(r) for r in rows]


def read_report(artifacts: ArtifactStore, version: DatasetVersion) -> ValidationReport | None:
    """The validation report stored with a version, if checks ran."""
    if version.report_digest is None:
        return None
    return ValidationReport.from_json(artifacts.get_bytes(version.report_digest).decode())


def _missing_version_message(
    conn: Connection, ref: DatasetRef, project: str, dataset_id: int
) -> str:
    if ref.version is not None:
        return f"Dataset {ref.name!r} in project {project!r} has no version {ref.version}."
    rows = conn.execute(
        select(VERSION.c.version, VERSION.c.status, VERSION.c.deleted_at)
        .where(VERSION.c.dataset_id == dataset_id)
        .order_by(VERSION.c.version)
    ).all()
    deleted = [r.version for r in rows if r.deleted_at is not None]
    quarantined = [r.version for r in rows if r.deleted_at is None and r.status != "ready"]
    if not deleted:
        return (
            f"Dataset {ref.name!r} in project {project!r} has no usable (non-quarantined) version."
        )
    message = f"Dataset {ref.name!r} in project {project!r} has no usable version"
    parts = [f"deleted: {_numbers(deleted)}"]
    if quarantined:
        parts.append(f"quarantined: {_numbers(quarantined)}")
    newest = f"{ref.name}:{deleted[-1]}"
    return (
        f"{message} ({'; '.join(parts)}). Restore one with "
        f"'loopml data restore {newest} -p {project}' (or loopml.data.restore({newest!r}))."
    )


def _numbers(versions: list[int]) -> str:
    return ", ".join(map(str, versions))


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
