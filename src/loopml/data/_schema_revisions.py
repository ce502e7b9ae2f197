"""Stored schema revisions of a dataset, and validating data against them.

Each dataset has numbered revisions of its schema and expectations; a version
records the revision it was checked against. Reading a deleted version's
revision is allowed (it is metadata).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from loopml._identity import current_identity
from loopml.data._expect import (
    check_expectation_columns,
    expectations_from_yaml,
    expectations_to_yaml,
)
from loopml.data._expectations import Expectation
from loopml.data._reading import get_version
from loopml.data._refs import check_dataset_name, parse_ref
from loopml.data._report import ValidationReport
from loopml.data._rows import SCHEMA, VERSION, parsed_schema, require_dataset, schema_row
from loopml.data._schema import DatasetSchema
from loopml.data._sources import open_source
from loopml.data._validate import validate_batches
from loopml.errors import DatasetNotFound
from loopml.store import Store, next_number, now_ms

__all__ = ["get_schema", "insert_schema", "save_schema", "schema_of_version", "validate"]


def get_schema(
    store: Store, name: str, *, project: str
) -> tuple[int, DatasetSchema, list[Expectation]]:
    """The latest schema revision, schema and expectations of a dataset.

    Raises:
        DatasetNotFound: no dataset ``name``, or it has no schema yet.
    """
    with store.read() as conn:
        dataset = require_dataset(conn, check_dataset_name(name), project)
        row = schema_row(conn, dataset.id)
    if row is None:
        raise DatasetNotFound(f"Dataset {name!r} has no schema yet.")
    return parsed_schema(row)


def schema_of_version(
    store: Store, ref: str, *, project: str
) -> tuple[int, DatasetSchema, list[Expectation]]:
    """The schema revision in force for version ``ref`` (see ``DataClient.schema_of_version``).

    Raises:
        DatasetNotFound: no such version, or its dataset has no schema.
    """
    version = get_version(store, ref, project=project)
    with store.read() as conn:
        dataset = require_dataset(conn, version.name, project)
        query = select(SCHEMA).where(SCHEMA.c.dataset_id == dataset.id)
        if version.schema_revision is not None:
            query = query.where(SCHEMA.c.revision == version.schema_revision)
            row = conn.execute(query).first()
        else:
            row = (
                conn.execute(
                    query.where(SCHEMA.c.created_at <= version.created_at)
                    .order_by(SCHEMA.c.revision.desc())
                    .limit(1)
                ).first()
                or conn.execute(query.order_by(SCHEMA.c.revision).limit(1)).first()
            )
    if row is None:
        raise DatasetNotFound(f"Dataset {version.name!r} has no schema for {version.ref}.")
    return parsed_schema(row)


def save_schema(
    store: Store,
    name: str,
    *,
    project: str,
    schema: DatasetSchema | str | None = None,
    expectations: Sequence[Expectation] | str | None = None,
) -> int:
    """Store a new schema revision (see ``DataClient.save_schema``); returns its number.

    Raises:
        SchemaError: the YAML does not parse or is not a valid schema/expectation list.
        UnknownColumnError: an expectation names a column the dataset does not have.
        DatasetNotFound: no dataset ``name``.
    """
    new_schema = DatasetSchema.from_yaml(schema) if isinstance(schema, str) else schema
    new_expectations = (
        expectations_from_yaml(expectations) if isinstance(expectations, str) else expectations
    )
    with store.write() as conn:
        dataset = require_dataset(conn, check_dataset_name(name), project)
        current = schema_row(conn, dataset.id)
        if new_schema is None:
            if current is None:
                raise DatasetNotFound(f"Dataset {name!r} has no schema to keep.")
            new_schema = DatasetSchema.from_yaml(current.schema_yaml)
        if new_expectations is None:
            new_expectations = (
                expectations_from_yaml(current.expectations_yaml)
                if current is not None and current.expectations_yaml
                else []
            )
        newest = conn.execute(
            select(VERSION.c.columns)
            .where(VERSION.c.dataset_id == dataset.id)
            .order_by(VERSION.c.version.desc())
            .limit(1)
        ).scalar()
        columns = [*new_schema.columns]
        columns += [c for c, _ in newest or () if c not in new_schema.columns]
        check_expectation_columns(new_expectations, columns)
        return insert_schema(conn, dataset.id, new_schema, list(new_expectations))


def insert_schema(
    conn: Connection,
    dataset_id: int,
    schema: DatasetSchema,
    expectations: list[Expectation],
) -> int:
    """Insert the next schema revision of a dataset; returns its number."""
    revision = next_number(conn, SCHEMA.c.revision, SCHEMA.c.dataset_id == dataset_id)
    conn.execute(
        SCHEMA.insert().values(
            dataset_id=dataset_id,
            revision=revision,
            schema_yaml=schema.to_yaml(),
            expectations_yaml=expectations_to_yaml(expectations) if expectations else None,
            author=current_identity(),
            created_at=now_ms(),
        )
    )
    return revision


def validate(
    store: Store,
    source: object,
    *,
    against: str,
    project: str,
    expectations: Sequence[Expectation] = (),
    format: str | None = None,
    trust: bool = False,
) -> ValidationReport:
    """Check ``source`` against a dataset's checks (see ``DataClient.validate``).

    Raises:
        DatasetNotFound: ``against`` names no dataset or version.
        DataSourceError: the source cannot be read.
        SchemaError: a custom check names a function not registered in this process.
        UntrustedCheckError: a custom check names an import path and ``trust`` is false.
    """
    parsed = parse_ref(against)
    if parsed.version is None:
        revision, schema, stored = get_schema(store, parsed.name, project=project)
    else:
        revision, schema, stored = schema_of_version(store, against, project=project)
    data = open_source(source, format=format)
    return validate_batches(
        data.batches(),
        schema,
        [*stored, *expectations],
        source=data.description,
        against=f"{parsed.name}@schema:{revision}",
        trust=trust,
    )
