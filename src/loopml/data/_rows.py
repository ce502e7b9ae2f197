"""The data tables as the data modules read them: queries, rows and the records made of them.

Every module of the data service asks for datasets, versions and schema
revisions the same way; the helpers here take an open connection so that the
caller decides the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from loopml._urls import redact_url
from loopml.data._expect import expectations_from_yaml
from loopml.data._expectations import Expectation
from loopml.data._profile import Profile
from loopml.data._records import DatasetVersion
from loopml.data._schema import DatasetSchema
from loopml.errors import DatasetNotFound
from loopml.store import tables

__all__ = [
    "NODE_KIND",
    "dataset_row",
    "parsed_schema",
    "require_dataset",
    "schema_row",
    "version_record",
    "versions_query",
]

PROJECT = tables.PROJECT
DATASET = tables.DATASET
VERSION = tables.DATASET_VERSION
SCHEMA = tables.DATASET_SCHEMA

NODE_KIND = "dataset_version"
"""The kind of a dataset version's node in the lineage graph (its id is the row id)."""


def versions_query() -> Any:
    """``SELECT`` of version rows with their dataset and project names."""
    return (
        select(VERSION, DATASET.c.name.label("dataset_name"), PROJECT.c.name.label("project_name"))
        .join(DATASET, DATASET.c.id == VERSION.c.dataset_id)
        .join(PROJECT, PROJECT.c.id == DATASET.c.project_id)
    )


def version_record(row: Row[Any]) -> DatasetVersion:
    """The record of a row of :func:`versions_query`."""
    return DatasetVersion(
        id=row.id,
        name=row.dataset_name,
        version=row.version,
        project=row.project_name,
        status=row.status,
        content_hash=row.content_hash,
        digest=row.digest,
        row_count=row.row_count,
        column_count=row.column_count,
        size_bytes=row.size_bytes,
        columns=tuple((name, kind) for name, kind in row.columns),
        profile=Profile.from_dict(row.profile),
        parents=tuple(row.parents),
        # Rows stored before sources were redacted may still hold credentials.
        source=None if row.source is None else redact_url(row.source),
        description=row.description,
        report_passed=row.report_passed,
        report_digest=row.report_digest,
        schema_revision=row.schema_revision,
        creator=row.creator,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def dataset_row(conn: Connection, name: str, project: str) -> Row[Any] | None:
    """The ``dataset`` row of ``name`` in ``project``, or None."""
    return conn.execute(
        select(DATASET)
        .join(PROJECT, PROJECT.c.id == DATASET.c.project_id)
        .where(PROJECT.c.name == project, DATASET.c.name == name)
    ).first()


def require_dataset(conn: Connection, name: str, project: str) -> Row[Any]:
    """The ``dataset`` row of ``name`` in ``project``.

    Raises:
        DatasetNotFound: there is none.
    """
    row = dataset_row(conn, name, project)
    if row is None:
        raise DatasetNotFound(f"No dataset named {name!r} in project {project!r}.")
    return row


def schema_row(conn: Connection, dataset_id: int) -> Row[Any] | None:
    """The newest schema revision of a dataset, or None before it has one."""
    return conn.execute(
        select(SCHEMA)
        .where(SCHEMA.c.dataset_id == dataset_id)
        .order_by(SCHEMA.c.revision.desc())
        .limit(1)
    ).first()


def parsed_schema(row: Row[Any]) -> tuple[int, DatasetSchema, list[Expectation]]:
    """``(revision, schema, expectations)`` of a ``dataset_schema`` row."""
    expectations = expectations_from_yaml(row.expectations_yaml) if row.expectations_yaml else []
    return row.revision, DatasetSchema.from_yaml(row.schema_yaml), expectations
