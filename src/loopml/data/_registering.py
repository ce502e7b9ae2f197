"""Registering data: snapshot a source, check it, and store it as the next version.

Identical data (same content hash) returns the existing live version. Version
numbers are never reused: the next one is one more than the highest ever given,
deleted versions included, so data identical to a deleted version only becomes a
new version.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from loopml._identity import current_identity
from loopml.artifacts import ArtifactStore
from loopml.data._expectations import Expectation
from loopml.data._hashing import ContentHasher
from loopml.data._lineage import record_lineage
from loopml.data._profile import Profile, build_profile
from loopml.data._reading import get_version, read_report, require_live
from loopml.data._records import DatasetVersion
from loopml.data._refs import check_dataset_name
from loopml.data._report import ValidationReport
from loopml.data._rows import (
    DATASET,
    PROJECT,
    VERSION,
    dataset_row,
    parsed_schema,
    schema_row,
    version_record,
    versions_query,
)
from loopml.data._schema import DatasetSchema, infer_schema
from loopml.data._schema_revisions import insert_schema
from loopml.data._snapshot import SnapshotWriter, read_snapshot_batches
from loopml.data._sources import Source, open_source
from loopml.data._validate import validate_batches
from loopml.errors import DataValidationError, InvalidParameter
from loopml.store import Store, next_number, now_ms

__all__ = ["failing_checks", "register"]


def register(
    store: Store,
    artifacts: ArtifactStore,
    name: str,
    source: object,
    *,
    project: str,
    description: str | None = None,
    parents: Sequence[str] = (),
    key: Sequence[str] | None = None,
    strict: bool = False,
    format: str | None = None,
    run_id: str | None = None,
    trust: bool = False,
) -> DatasetVersion:
    """Snapshot ``source`` as the next version of dataset ``name`` (see ``DataClient.register``).

    Raises:
        DataSourceError: the source cannot be read.
        DataValidationError: ``strict`` and the data fails its checks.
        DatasetNotFound: a parent reference names no version.
        DatasetVersionDeleted: a parent reference names a deleted version.
        UntrustedCheckError: a stored custom check names an import path and
            ``trust`` is false (nothing is stored).
    """
    check_dataset_name(name)
    parent_versions = [require_live(get_version(store, p, project=project)) for p in parents]
    data = open_source(source, format=format)
    key_columns = _key_columns(store, name, project, key, data)
    with tempfile.TemporaryDirectory(prefix="loopml-data-") as folder:
        snapshot = Path(folder) / "data.parquet"
        content_hash, row_count, size = _snapshot(data, snapshot, key_columns)
        existing = _find_by_hash(store, name, project, content_hash)
        if existing is not None:
            record_lineage(store, existing, parent_versions, run_id, produced=True)
            if strict and existing.status == "quarantined":
                stored = read_report(artifacts, existing)
                raise DataValidationError(
                    f"{existing.ref} holds identical data and is quarantined: "
                    f"{failing_checks(stored)}",
                    report=stored,
                    version=existing.ref,
                    existing=True,
                )
            return existing
        profile = build_profile(lambda: read_snapshot_batches(snapshot), data.schema)
        schema_revision, schema, expectations = _checks(store, name, project)
        report = None
        if schema is not None or expectations:
            report = validate_batches(
                read_snapshot_batches(snapshot),
                schema,
                expectations,
                source=data.description,
                against=f"{name}@schema:{schema_revision}",
                trust=trust,
            )
        digest = artifacts.put_file(snapshot)
    report_digest = None if report is None else artifacts.put_bytes(report.to_json().encode())
    status = "quarantined" if strict and report is not None and not report.passed else "ready"
    values = {
        "status": status,
        "content_hash": content_hash,
        "digest": digest,
        "row_count": row_count,
        "column_count": len(data.schema),
        "size_bytes": size,
        "columns": [[f.name, str(f.type)] for f in data.schema],
        "profile": profile.to_dict(),
        "parents": [v.ref for v in parent_versions],
        "source": data.description,
        "description": description,
        "report_digest": report_digest,
        "report_passed": None if report is None else report.passed,
        "schema_revision": schema_revision,
        "creator": current_identity(),
    }
    version = _insert_version(store, name, project, description, key_columns, values, profile)
    record_lineage(store, version, parent_versions, run_id, produced=True)
    if status == "quarantined" and report is not None:
        failing = sum(not c.passed for c in report.checks)
        raise DataValidationError(
            f"{version.ref} failed {failing} check(s) and is quarantined: {failing_checks(report)}",
            report=report,
            version=version.ref,
        )
    return dataclasses.replace(version, is_new=True)


def _key_columns(
    store: Store, name: str, project: str, key: Sequence[str] | None, data: Source
) -> tuple[str, ...]:
    with store.read() as conn:
        row = dataset_row(conn, name, project)
    declared = tuple(row.key_columns) if row is not None else ()
    if key is not None:
        wanted = tuple(key)
        if row is not None and declared and wanted != declared:
            raise InvalidParameter(
                f"Dataset {name!r} is keyed on {list(declared)}; got key={list(wanted)}."
            )
        declared = wanted
    missing = [c for c in declared if c not in data.schema.names]
    if missing:
        raise InvalidParameter(
            f"The key column(s) {missing} of dataset {name!r} are not in the data "
            f"(columns: {data.schema.names})."
        )
    return declared


def _find_by_hash(
    store: Store, name: str, project: str, content_hash: str
) -> DatasetVersion | None:
    """The oldest live version holding this data (a deleted twin is not reused)."""
    with store.read() as conn:
        row = conn.execute(
            versions_query()
            .where(PROJECT.c.name == project, DATASET.c.name == name)
            .where(VERSION.c.content_hash == content_hash, VERSION.c.deleted_at.is_(None))
            .order_by(VERSION.c.version)
        ).first()
    return None if row is None else version_record(row)


def _checks(
    store: Store, name: str, project: str
) -> tuple[int | None, DatasetSchema | None, list[Expectation]]:
    with store.read() as conn:
        dataset = dataset_row(conn, name, project)
        if dataset is None:
            return None, None, []
        row = schema_row(conn, dataset.id)
    if row is None:
        return None, None, []
    return parsed_schema(row)


def _insert_version(
    store: Store,
    name: str,
    project: str,
    description: str | None,
    key_columns: tuple[str, ...],
    values: dict[str, Any],
    profile: Profile,
) -> DatasetVersion:
    for _attempt in range(5):
        try:
            with store.write() as conn:
                dataset_id = _ensure_dataset(store, conn, name, project, description, key_columns)
                # max + 1 over every version, deleted ones included: numbers are never reused.
                number = next_number(conn, VERSION.c.version, VERSION.c.dataset_id == dataset_id)
                version_id = conn.execute(
                    VERSION.insert()
                    .values(dataset_id=dataset_id, version=number, created_at=now_ms(), **values)
                    .returning(VERSION.c.id)
                ).scalar_one()
                if schema_row(conn, dataset_id) is None:
                    insert_schema(conn, dataset_id, infer_schema(profile, key_columns), [])
                row = conn.execute(versions_query().where(VERSION.c.id == version_id)).one()
                return version_record(row)
        except IntegrityError:
            continue  # another writer took the number (PostgreSQL); take the next
    raise InvalidParameter(f"Could not allocate a version number for dataset {name!r}.")


def _ensure_dataset(
    store: Store,
    conn: Connection,
    name: str,
    project: str,
    description: str | None,
    key_columns: tuple[str, ...],
) -> int:
    row = dataset_row(conn, name, project)
    if row is not None:
        return int(row.id)
    return int(
        conn.execute(
            DATASET.insert()
            .values(
                project_id=store.project_id(conn, project),
                name=name,
                description=description,
                key_columns=list(key_columns),
                created_at=now_ms(),
                creator=current_identity(),
            )
            .returning(DATASET.c.id)
        ).scalar_one()
    )


def _snapshot(data: Source, path: Path, key_columns: Sequence[str]) -> tuple[str, int, int]:
    hasher = ContentHasher(data.schema, key_columns)
    writer = SnapshotWriter(path, data.schema)
    try:
        for batch in data.batches():
            hasher.update(batch)
            writer.write(batch)
    finally:
        info = writer.close()
    return hasher.hexdigest(), info.row_count, info.size_bytes


def failing_checks(report: ValidationReport | None) -> str:
    """One line naming every failing check (and the schema differences)."""
    if report is None:
        return "no report stored"
    lines = "; ".join(f"{c.name}: {c.message}" for c in report.checks if not c.passed)
    if not report.schema_diff.empty:
        lines = f"schema differs ({_describe_diff(report)}); {lines}".rstrip("; ")
    return lines


def _describe_diff(report: ValidationReport) -> str:
    diff = report.schema_diff
    parts = []
    if diff.missing:
        parts.append(f"missing {list(diff.missing)}")
    if diff.extra:
        parts.append(f"extra {list(diff.extra)}")
    if diff.retyped:
        parts.append(
            "retyped "
            + ", ".join(f"{c}: {t['expected']} -> {t['got']}" for c, t in diff.retyped.items())
        )
    return "; ".join(parts)
