"""The data service: register, load, version, validate, split and diff datasets.

Metadata lives in the store (``dataset``, ``dataset_version``, ``dataset_schema``);
the Parquet snapshots and validation reports live in the artifact store.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError

from loopml._identity import current_identity
from loopml._urls import redact_url
from loopml.artifacts import ArtifactStore
from loopml.data._diff import ProfileDiff, diff_profiles
from loopml.data._expect import (
    check_expectation_columns,
    expectations_from_yaml,
    expectations_to_yaml,
)
from loopml.data._expectations import Expectation
from loopml.data._hashing import ContentHasher
from loopml.data._profile import Profile, build_profile
from loopml.data._records import Dataset, DatasetVersion
from loopml.data._refs import DatasetRef, check_dataset_name, parse_ref
from loopml.data._report import ValidationReport
from loopml.data._schema import DatasetSchema, infer_schema
from loopml.data._snapshot import SnapshotWriter, read_snapshot, read_snapshot_batches
from loopml.data._sources import Source, open_source
from loopml.data._validate import validate_batches
from loopml.errors import DatasetNotFound, DataValidationError, InvalidParameter
from loopml.store import Node, Store, add_edge, next_number, now_ms, tables

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DataClient"]

_project = tables.PROJECT
_dataset = tables.DATASET
_version = tables.DATASET_VERSION
_schema = tables.DATASET_SCHEMA

NODE_KIND = "dataset_version"


class DataClient:
    """Datasets over one metadata store and one artifact store.

    Args:
        store: the metadata store.
        artifacts: where snapshots and reports are kept.
    """

    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    # -- registering -------------------------------------------------------------

    def register(
        self,
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
        """Snapshot ``source`` as the next version of dataset ``name``.

        Identical data (same content hash) returns the existing version. The data is
        checked against the dataset's schema and expectations; with ``strict`` a
        failing version is stored as *quarantined* and :class:`DataValidationError`
        names every failing check. ``trust`` lets stored custom checks that name a
        ``module:function`` path be imported (see :meth:`validate`).

        Raises:
            DataSourceError: the source cannot be read.
            DataValidationError: ``strict`` and the data fails its checks.
            DatasetNotFound: a parent reference names no version.
            UntrustedCheckError: a stored custom check names an import path and
                ``trust`` is false (nothing is stored).
        """
        check_dataset_name(name)
        parent_versions = [self.get_version(p, project=project) for p in parents]
        data = open_source(source, format=format)
        key_columns = self._key_columns(name, project, key, data)
        with tempfile.TemporaryDirectory(prefix="loopml-data-") as folder:
            snapshot = Path(folder) / "data.parquet"
            content_hash, row_count, size = _snapshot(data, snapshot, key_columns)
            existing = self._find_by_hash(name, project, content_hash)
            if existing is not None:
                self._record_lineage(existing, parent_versions, run_id, produced=True)
                if strict and existing.status == "quarantined":
                    stored = self.report(existing.ref, project=project)
                    raise DataValidationError(
                        f"{existing.ref} holds identical data and is quarantined: "
                        f"{_failing_checks(stored)}",
                        report=stored,
                        version=existing.ref,
                        existing=True,
                    )
                return existing
            profile = build_profile(lambda: read_snapshot_batches(snapshot), data.schema)
            schema_revision, schema, expectations = self._checks(name, project)
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
            digest = self.artifacts.put_file(snapshot)
        report_digest = (
            None if report is None else self.artifacts.put_bytes(report.to_json().encode())
        )
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
        version = self._insert_version(name, project, description, key_columns, values, profile)
        self._record_lineage(version, parent_versions, run_id, produced=True)
        if status == "quarantined" and report is not None:
            failing = sum(not c.passed for c in report.checks)
            raise DataValidationError(
                f"{version.ref} failed {failing} check(s) and is quarantined: "
                f"{_failing_checks(report)}",
                report=report,
                version=version.ref,
            )
        return dataclasses.replace(version, is_new=True)

    def _key_columns(
        self, name: str, project: str, key: Sequence[str] | None, data: Source
    ) -> tuple[str, ...]:
        with self.store.read() as conn:
            row = self._dataset_row(conn, name, project)
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

    def _find_by_hash(self, name: str, project: str, content_hash: str) -> DatasetVersion | None:
        with self.store.read() as conn:
            row = conn.execute(
                _versions_query()
                .where(_project.c.name == project, _dataset.c.name == name)
                .where(_version.c.content_hash == content_hash)
                .order_by(_version.c.version)
            ).first()
        return None if row is None else _version_record(row)

    def _checks(
        self, name: str, project: str
    ) -> tuple[int | None, DatasetSchema | None, list[Expectation]]:
        with self.store.read() as conn:
            dataset = self._dataset_row(conn, name, project)
            if dataset is None:
                return None, None, []
            row = self._schema_row(conn, dataset.id)
        if row is None:
            return None, None, []
        return _parsed_schema(row)

    def _insert_version(
        self,
        name: str,
        project: str,
        description: str | None,
        key_columns: tuple[str, ...],
        values: dict[str, Any],
        profile: Profile,
    ) -> DatasetVersion:
        for _attempt in range(5):
            try:
                with self.store.write() as conn:
                    dataset_id = self._ensure_dataset(conn, name, project, description, key_columns)
                    number = next_number(
                        conn, _version.c.version, _version.c.dataset_id == dataset_id
                    )
                    version_id = conn.execute(
                        _version.insert()
                        .values(
                            dataset_id=dataset_id, version=number, created_at=now_ms(), **values
                        )
                        .returning(_version.c.id)
                    ).scalar_one()
                    if self._schema_row(conn, dataset_id) is None:
                        self._insert_schema(
                            conn, dataset_id, infer_schema(profile, key_columns), []
                        )
                    row = conn.execute(_versions_query().where(_version.c.id == version_id)).one()
                    return _version_record(row)
            except IntegrityError:
                continue  # another writer took the number (PostgreSQL); take the next
        raise InvalidParameter(f"Could not allocate a version number for dataset {name!r}.")

    def _ensure_dataset(
        self,
        conn: Connection,
        name: str,
        project: str,
        description: str | None,
        key_columns: tuple[str, ...],
    ) -> int:
        row = self._dataset_row(conn, name, project)
        if row is not None:
            return int(row.id)
        return int(
            conn.execute(
                _dataset.insert()
                .values(
                    project_id=self.store.project_id(conn, project),
                    name=name,
                    description=description,
                    key_columns=list(key_columns),
                    created_at=now_ms(),
                    creator=current_identity(),
                )
                .returning(_dataset.c.id)
            ).scalar_one()
        )

    def _record_lineage(
        self,
        version: DatasetVersion,
        parents: Sequence[DatasetVersion],
        run_id: str | None,
        produced: bool,
    ) -> None:
        if not parents and run_id is None:
            return
        node = Node(NODE_KIND, str(version.id))
        with self.store.write() as conn:
            for parent in parents:
                add_edge(conn, Node(NODE_KIND, str(parent.id)), node, "derived", now_ms())
            if run_id is not None:
                if produced:
                    add_edge(conn, Node("run", run_id), node, "output", now_ms())
                else:
                    add_edge(conn, node, Node("run", run_id), "input", now_ms())

    # -- reading -------------------------------------------------------------------

    def get_version(self, ref: str, *, project: str) -> DatasetVersion:
        """Resolve ``name``, ``name:N`` or ``name@latest`` (latest = newest *ready* version).

        Raises:
            DatasetNotFound: no such dataset or version.
        """
        parsed = parse_ref(ref)
        query = _versions_query().where(_project.c.name == project, _dataset.c.name == parsed.name)
        if parsed.version is None:
            query = query.where(_version.c.status == "ready").order_by(_version.c.version.desc())
        else:
            query = query.where(_version.c.version == parsed.version)
        with self.store.read() as conn:
            row = conn.execute(query.limit(1)).first()
            if row is None:
                self._require_dataset(conn, parsed.name, project)
        if row is None:
            raise DatasetNotFound(_missing_version_message(parsed, project))
        return _version_record(row)

    def load_table(self, ref: str, *, project: str, run_id: str | None = None) -> pa.Table:
        """Return the data of a version as a pyarrow Table (verified on read)."""
        version = self.get_version(ref, project=project)
        with self._snapshot_file(version) as path:
            table = read_snapshot(path)
        if run_id is not None:
            self._record_lineage(version, (), run_id, produced=False)
        return table

    def load(self, ref: str, *, project: str, run_id: str | None = None) -> pd.DataFrame:
        """Return the data of a version as a pandas DataFrame."""
        frame: pd.DataFrame = self.load_table(ref, project=project, run_id=run_id).to_pandas()
        return frame

    @contextmanager
    def _snapshot_file(self, version: DatasetVersion) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="loopml-data-") as folder:
            yield self.artifacts.get_file(version.digest, Path(folder) / "data.parquet")

    def list_datasets(self, *, project: str) -> list[Dataset]:
        """Return the datasets of a project, by name."""
        latest = (
            select(func.max(_version.c.version))
            .where(_version.c.dataset_id == _dataset.c.id, _version.c.status == "ready")
            .scalar_subquery()
        )
        count = (
            select(func.count())
            .select_from(_version)
            .where(_version.c.dataset_id == _dataset.c.id)
            .scalar_subquery()
        )
        query = (
            select(
                _dataset,
                _project.c.name.label("project_name"),
                latest.label("latest"),
                count.label("n"),
            )
            .join(_project, _project.c.id == _dataset.c.project_id)
            .where(_project.c.name == project)
            .order_by(_dataset.c.name)
        )
        with self.store.read() as conn:
            return [
                Dataset(
                    name=r.name,
                    project=r.project_name,
                    description=r.description,
                    key_columns=tuple(r.key_columns),
                    created_at=r.created_at,
                    latest_version=r.latest,
                    version_count=r.n,
                )
                for r in conn.execute(query)
            ]

    def list_versions(self, name: str, *, project: str) -> list[DatasetVersion]:
        """Return every version of a dataset, oldest first (quarantined ones included).

        Raises:
            DatasetNotFound: no dataset ``name``.
        """
        with self.store.read() as conn:
            self._require_dataset(conn, check_dataset_name(name), project)
            rows = conn.execute(
                _versions_query()
                .where(_project.c.name == project, _dataset.c.name == name)
                .order_by(_version.c.version)
            ).all()
        return [_version_record(r) for r in rows]

    def report(self, ref: str, *, project: str) -> ValidationReport | None:
        """Return the validation report stored with a version, if checks ran."""
        version = self.get_version(ref, project=project)
        if version.report_digest is None:
            return None
        return ValidationReport.from_json(self.artifacts.get_bytes(version.report_digest).decode())

    # -- schemas and checks -----------------------------------------------------------

    def get_schema(
        self, name: str, *, project: str
    ) -> tuple[int, DatasetSchema, list[Expectation]]:
        """Return the latest schema revision, schema and expectations of a dataset.

        Raises:
            DatasetNotFound: no dataset ``name``, or it has no schema yet.
        """
        with self.store.read() as conn:
            dataset = self._require_dataset(conn, check_dataset_name(name), project)
            row = self._schema_row(conn, dataset.id)
        if row is None:
            raise DatasetNotFound(f"Dataset {name!r} has no schema yet.")
        return _parsed_schema(row)

    def schema_of_version(
        self, ref: str, *, project: str
    ) -> tuple[int, DatasetSchema, list[Expectation]]:
        """Return the schema revision, schema and expectations in force for version ``ref``.

        That is the revision the version was checked against when it was registered
        (recorded on the version). A version registered before its dataset had a
        schema (the first one, whose schema was inferred from it) gets the newest
        revision created no later than the version, else the dataset's first revision.

        Raises:
            DatasetNotFound: no such version, or its dataset has no schema.
        """
        version = self.get_version(ref, project=project)
        with self.store.read() as conn:
            dataset = self._require_dataset(conn, version.name, project)
            query = select(_schema).where(_schema.c.dataset_id == dataset.id)
            if version.schema_revision is not None:
                query = query.where(_schema.c.revision == version.schema_revision)
                row = conn.execute(query).first()
            else:
                row = (
                    conn.execute(
                        query.where(_schema.c.created_at <= version.created_at)
                        .order_by(_schema.c.revision.desc())
                        .limit(1)
                    ).first()
                    or conn.execute(query.order_by(_schema.c.revision).limit(1)).first()
                )
        if row is None:
            raise DatasetNotFound(f"Dataset {version.name!r} has no schema for {version.ref}.")
        return _parsed_schema(row)

    def save_schema(
        self,
        name: str,
        *,
        project: str,
        schema: DatasetSchema | str | None = None,
        expectations: Sequence[Expectation] | str | None = None,
    ) -> int:
        """Store a new schema revision; ``None`` keeps the current schema or expectations.

        Text is parsed as YAML first, so nothing is stored if it does not parse.
        Expectations may name the schema's columns and those of the newest version.

        Raises:
            SchemaError: the YAML does not parse or is not a valid schema/expectation list.
            UnknownColumnError: an expectation names a column the dataset does not have.
            DatasetNotFound: no dataset ``name``.
        """
        new_schema = DatasetSchema.from_yaml(schema) if isinstance(schema, str) else schema
        new_expectations = (
            expectations_from_yaml(expectations) if isinstance(expectations, str) else expectations
        )
        with self.store.write() as conn:
            dataset = self._require_dataset(conn, check_dataset_name(name), project)
            current = self._schema_row(conn, dataset.id)
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
                select(_version.c.columns)
                .where(_version.c.dataset_id == dataset.id)
                .order_by(_version.c.version.desc())
                .limit(1)
            ).scalar()
            columns = [*new_schema.columns]
            columns += [c for c, _ in newest or () if c not in new_schema.columns]
            check_expectation_columns(new_expectations, columns)
            return self._insert_schema(conn, dataset.id, new_schema, list(new_expectations))

    def _insert_schema(
        self,
        conn: Connection,
        dataset_id: int,
        schema: DatasetSchema,
        expectations: list[Expectation],
    ) -> int:
        revision = next_number(conn, _schema.c.revision, _schema.c.dataset_id == dataset_id)
        conn.execute(
            _schema.insert().values(
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
        self,
        source: object,
        *,
        against: str,
        project: str,
        expectations: Sequence[Expectation] = (),
        format: str | None = None,
        trust: bool = False,
    ) -> ValidationReport:
        """Check ``source`` against a dataset's schema and expectations (and any extra ones).

        Args:
            source: anything :func:`register` accepts, or a dataset reference string
                that names an existing version.
            against: whose checks apply: ``"credit"`` or ``"credit@latest"`` for the
                newest schema revision, ``"credit:3"`` for the revision in force for
                version 3 (see :meth:`schema_of_version`).
            project: the project of both.
            expectations: extra checks for this call only.
            format: force the source format (``csv``, ``parquet``, ``jsonl``).
            trust: import stored custom checks that name a ``module:function`` path.
                Leave it false unless you trust whoever saved the schema: such a
                path runs code of their choosing. Checks saved under a name
                registered with :func:`loopml.data.register_check` need no trust.

        Raises:
            DatasetNotFound: ``against`` names no dataset or version.
            DataSourceError: the source cannot be read.
            SchemaError: a custom check names a function not registered in this process.
            UntrustedCheckError: a custom check names an import path and ``trust`` is false.
        """
        parsed = parse_ref(against)
        if parsed.version is None:
            revision, schema, stored = self.get_schema(parsed.name, project=project)
        else:
            revision, schema, stored = self.schema_of_version(against, project=project)
        data = open_source(source, format=format)
        return validate_batches(
            data.batches(),
            schema,
            [*stored, *expectations],
            source=data.description,
            against=f"{parsed.name}@schema:{revision}",
            trust=trust,
        )

    # -- derived datasets ---------------------------------------------------------------

    def split(
        self,
        ref: str,
        fractions: Mapping[str, float],
        *,
        project: str,
        seed: int,
        stratify: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, DatasetVersion]:
        """Split a version into parts registered as child datasets ``NAME-PART``.

        The same version, fractions and seed always give the same rows in each part
        (and so the same content hashes).

        Raises:
            InvalidParameter: fractions that are not positive or do not sum to 1, or an
                unknown ``stratify`` column.
        """
        from loopml.data._split import split_indices

        version = self.get_version(ref, project=project)
        table = self.load_table(version.ref, project=project)
        parts = split_indices(table, fractions, seed=seed, stratify=stratify)
        return {
            part: self.register(
                f"{version.name}-{part}",
                table.take(indices),
                project=project,
                parents=[version.ref],
                description=f"{part} split of {version.ref} (seed {seed})",
                run_id=run_id,
            )
            for part, indices in parts.items()
        }

    def diff(self, old: str, new: str, *, project: str) -> ProfileDiff:
        """Compare the schemas and statistics of two versions (from their profiles).

        The key columns of both datasets are never reported as drifted.
        """
        old_version = self.get_version(old, project=project)
        new_version = self.get_version(new, project=project)
        with self.store.read() as conn:
            keys = {
                key
                for name in {old_version.name, new_version.name}
                for key in self._require_dataset(conn, name, project).key_columns
            }
        return diff_profiles(old_version.profile, new_version.profile, sorted(keys))

    # -- helpers --------------------------------------------------------------------------

    def _dataset_row(self, conn: Connection, name: str, project: str) -> Row[Any] | None:
        return conn.execute(
            select(_dataset)
            .join(_project, _project.c.id == _dataset.c.project_id)
            .where(_project.c.name == project, _dataset.c.name == name)
        ).first()

    def _require_dataset(self, conn: Connection, name: str, project: str) -> Row[Any]:
        row = self._dataset_row(conn, name, project)
        if row is None:
            raise DatasetNotFound(f"No dataset named {name!r} in project {project!r}.")
        return row

    def _schema_row(self, conn: Connection, dataset_id: int) -> Row[Any] | None:
        return conn.execute(
            select(_schema)
            .where(_schema.c.dataset_id == dataset_id)
            .order_by(_schema.c.revision.desc())
            .limit(1)
        ).first()


def _parsed_schema(row: Row[Any]) -> tuple[int, DatasetSchema, list[Expectation]]:
    expectations = expectations_from_yaml(row.expectations_yaml) if row.expectations_yaml else []
    return row.revision, DatasetSchema.from_yaml(row.schema_yaml), expectations


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


def _versions_query() -> Any:
    return (
        select(
            _version, _dataset.c.name.label("dataset_name"), _project.c.name.label("project_name")
        )
        .join(_dataset, _dataset.c.id == _version.c.dataset_id)
        .join(_project, _project.c.id == _dataset.c.project_id)
    )


def _version_record(row: Row[Any]) -> DatasetVersion:
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
    )


def _missing_version_message(ref: DatasetRef, project: str) -> str:
    if ref.version is None:
        return (
            f"Dataset {ref.name!r} in project {project!r} has no usable (non-quarantined) version."
        )
    return f"Dataset {ref.name!r} in project {project!r} has no version {ref.version}."


def _failing_checks(report: ValidationReport | None) -> str:
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
