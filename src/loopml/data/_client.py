"""The data service: register, load, version, delete, validate, split and diff datasets.

Metadata lives in the store (``dataset``, ``dataset_version``, ``dataset_schema``);
the Parquet snapshots and validation reports live in the artifact store.
:class:`DataClient` is the one entry point; each job is done by its own module
(:mod:`._registering`, :mod:`._reading`, :mod:`._schema_revisions`,
:mod:`._deleting`, :mod:`._lineage`).

Deleted versions: resolving ``name``/``name@latest`` skips them and listings hide
them unless asked; named by number, their *metadata* is still given (``get``,
``report``, ``diff``, ``schema_of_version``) and says ``deleted_at``, while their
*data* is refused with :class:`~loopml.errors.DatasetVersionDeleted`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from loopml.artifacts import ArtifactStore
from loopml.data import _deleting, _reading, _registering, _schema_revisions
from loopml.data._diff import ProfileDiff, diff_profiles
from loopml.data._expectations import Expectation
from loopml.data._reading import DeletedFilter
from loopml.data._records import Dataset, DatasetDeletion, DatasetVersion, VersionReference
from loopml.data._report import ValidationReport
from loopml.data._rows import require_dataset
from loopml.data._schema import DatasetSchema
from loopml.store import Store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DataClient"]


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

        Identical data (same content hash) returns the existing live version. The
        data is checked against the dataset's schema and expectations; with
        ``strict`` a failing version is stored as *quarantined* and
        :class:`DataValidationError` names every failing check. ``trust`` lets
        stored custom checks that name a ``module:function`` path be imported (see
        :meth:`validate`). The new version's number is one more than the highest
        ever given (deleted versions included).

        Raises:
            DataSourceError: the source cannot be read.
            DataValidationError: ``strict`` and the data fails its checks.
            DatasetNotFound: a parent reference names no version.
            DatasetVersionDeleted: a parent reference names a deleted version.
            UntrustedCheckError: a stored custom check names an import path and
                ``trust`` is false (nothing is stored).
        """
        return _registering.register(
            self.store,
            self.artifacts,
            name,
            source,
            project=project,
            description=description,
            parents=parents,
            key=key,
            strict=strict,
            format=format,
            run_id=run_id,
            trust=trust,
        )

    # -- reading -------------------------------------------------------------------

    def get_version(self, ref: str, *, project: str) -> DatasetVersion:
        """Resolve ``name``, ``name:N`` or ``name@latest`` (latest = newest *ready*, live version).

        A deleted version named by number is returned (its ``deleted_at`` set): its
        metadata may be read, its data not.

        Raises:
            DatasetNotFound: no such dataset or version, or no usable one for the
                latest (the message names deleted versions and how to restore one).
        """
        return _reading.get_version(self.store, ref, project=project)

    def load_table(self, ref: str, *, project: str, run_id: str | None = None) -> pa.Table:
        """Return the data of a version as a pyarrow Table (verified on read).

        Raises:
            DatasetNotFound: no such version.
            DatasetVersionDeleted: the version is deleted (restore it first).
        """
        return _reading.load_table(self.store, self.artifacts, ref, project=project, run_id=run_id)

    def load(self, ref: str, *, project: str, run_id: str | None = None) -> pd.DataFrame:
        """Return the data of a version as a pandas DataFrame.

        Raises:
            DatasetNotFound: no such version.
            DatasetVersionDeleted: the version is deleted (restore it first).
        """
        frame: pd.DataFrame = self.load_table(ref, project=project, run_id=run_id).to_pandas()
        return frame

    def list_datasets(self, *, project: str) -> list[Dataset]:
        """Return the datasets of a project, by name (latest and counts over live versions)."""
        return _reading.list_datasets(self.store, project=project)

    def list_versions(
        self, name: str, *, project: str, deleted: DeletedFilter = "hide"
    ) -> list[DatasetVersion]:
        """Return the versions of a dataset, oldest first (quarantined ones included).

        Args:
            name: the dataset.
            project: its project.
            deleted: ``hide`` (live versions only), ``show`` (all) or ``only``.

        Raises:
            DatasetNotFound: no dataset ``name``.
            InvalidParameter: ``deleted`` is not one of the three.
        """
        return _reading.list_versions(self.store, name, project=project, deleted=deleted)

    def report(self, ref: str, *, project: str) -> ValidationReport | None:
        """Return the validation report stored with a version, if checks ran (deleted or not)."""
        return _reading.read_report(self.artifacts, self.get_version(ref, project=project))

    # -- deleting --------------------------------------------------------------------

    def delete(self, ref: str, *, project: str, version: int | None = None) -> DatasetDeletion:
        """Delete one version (soft): ``delete("credit:2")`` or ``delete("credit", version=2)``.

        The version is kept and can be restored; until then it is never the latest,
        is hidden from listings and its data is refused. Deleting the only live
        version is allowed. Live runs, pipeline steps, model versions or derived
        versions that refer to it do not block the deletion: a
        :class:`~loopml.errors.DatasetVersionReferenced` warning names them and
        the result lists them.

        Raises:
            InvalidParameter: ``ref`` names no version number (``credit``, ``credit@latest``).
            DatasetNotFound: no such dataset or version.
            DatasetVersionDeleted: the version is already deleted.
        """
        target = _deleting.version_ref(ref, version, action="delete")
        return _deleting.delete(self.store, target, project=project)

    def restore(self, ref: str, *, project: str, version: int | None = None) -> DatasetVersion:
        """Bring a deleted version back as it was: ``restore("credit:2")``.

        Raises:
            InvalidParameter: ``ref`` names no version number.
            DatasetNotFound: no such dataset or version.
            DatasetVersionNotDeleted: the version is not deleted.
        """
        target = _deleting.version_ref(ref, version, action="restore")
        return _deleting.restore(self.store, target, project=project)

    def references(self, ref: str, *, project: str) -> list[VersionReference]:
        """Return what live refers to a version through lineage (what a deletion would report).

        Raises:
            DatasetNotFound: no such dataset or version.
        """
        return _deleting.references(self.store, ref, project=project)

    # -- schemas and checks -----------------------------------------------------------

    def get_schema(
        self, name: str, *, project: str
    ) -> tuple[int, DatasetSchema, list[Expectation]]:
        """Return the latest schema revision, schema and expectations of a dataset.

        Raises:
            DatasetNotFound: no dataset ``name``, or it has no schema yet.
        """
        return _schema_revisions.get_schema(self.store, name, project=project)

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
        return _schema_revisions.schema_of_version(self.store, ref, project=project)

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
        return _schema_revisions.save_schema(
            self.store, name, project=project, schema=schema, expectations=expectations
        )

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
        return _schema_revisions.validate(
            self.store,
            source,
            against=against,
            project=project,
            expectations=expectations,
            format=format,
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
            DatasetVersionDeleted: the version is deleted.
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

        The key columns of both datasets are never reported as drifted. Deleted
        versions named by number may be compared: only their stored profiles are read.
        """
        old_version = self.get_version(old, project=project)
        new_version = self.get_version(new, project=project)
        with self.store.read() as conn:
            keys = {
                key
                for name in {old_version.name, new_version.name}
                for key in require_dataset(conn, name, project).key_columns
            }
        return diff_profiles(old_version.profile, new_version.profile, sorted(keys))
