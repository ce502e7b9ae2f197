"""The module-level data API (``loopml.data.register`` …) over a default :class:`DataClient`.

The default client shares the store and artifact store of the default tracking
client; inside an active run, registering and loading record lineage edges
(run → version it produced, version → run that used it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml import settings
from loopml.store import read_only

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.data._client import DataClient
    from loopml.data._diff import ProfileDiff
    from loopml.data._expectations import Expectation
    from loopml.data._reading import DeletedFilter
    from loopml.data._records import Dataset, DatasetDeletion, DatasetVersion
    from loopml.data._report import ValidationReport
    from loopml.data._schema import DatasetSchema

__all__ = [
    "as_arrow",
    "as_polars",
    "datasets",
    "delete",
    "diff",
    "get",
    "get_client",
    "get_schema",
    "load",
    "register",
    "report",
    "restore",
    "save_schema",
    "split",
    "validate",
    "versions",
]


def get_client() -> DataClient:
    """Return a data client over the default tracking client's stores."""
    from loopml.data._client import DataClient
    from loopml.tracking import get_client as tracking_client

    tracking = tracking_client()
    return DataClient(tracking.store, tracking.artifacts)


def _run_id() -> str | None:
    from loopml.tracking import active_run

    run = active_run()
    return None if run is None else run.id


def register(
    name: str,
    source: Any,
    *,
    project: str | None = None,
    description: str | None = None,
    parents: Sequence[str] = (),
    key: Sequence[str] | None = None,
    strict: bool = False,
    format: str | None = None,
    trust: bool = False,
) -> DatasetVersion:
    """Snapshot ``source`` as the next version of dataset ``name`` (or return the identical one).

    Args:
        name: dataset name (letters, digits, ``_ . -``).
        source: a pandas/polars DataFrame, a pyarrow Table, or a path/URL to CSV,
            Parquet (file or folder) or JSON-lines.
        project: project (default ``LOOPML_PROJECT``).
        description: free text.
        parents: references of the versions this data was derived from.
        key: key columns; with a key, row order does not change the identity.
        strict: store a version that fails its checks as *quarantined* and raise.
        format: force ``csv``, ``parquet`` or ``jsonl``.
        trust: import stored custom checks that name a ``module:function`` path
            (only if you trust whoever saved the schema; see :func:`validate`).

    Raises:
        DataSourceError: the source cannot be read.
        DataValidationError: ``strict`` and the data fails its checks.
        UntrustedCheckError: a stored custom check names an import path and
            ``trust`` is false.

    Example:
        >>> version = loopml.data.register("credit", "credit.csv", key=["id"])
        >>> version.ref
        'credit:1'
    """
    return get_client().register(
        name,
        source,
        project=settings.project(project),
        description=description,
        parents=parents,
        key=key,
        strict=strict,
        format=format,
        run_id=_run_id(),
        trust=trust,
    )


@read_only()
def load(ref: str, *, project: str | None = None) -> pd.DataFrame:
    """Return a version's data as a pandas DataFrame (``credit:2``, ``credit@latest``).

    Raises:
        DatasetNotFound: no such version, or no usable one for the latest.
        DatasetVersionDeleted: the version named is deleted (restore it first).
    """
    return get_client().load(ref, project=settings.project(project), run_id=_run_id())


@read_only()
def as_arrow(ref: str, *, project: str | None = None) -> pa.Table:
    """Return a version's data as a pyarrow Table (a deleted version's is refused)."""
    return get_client().load_table(ref, project=settings.project(project), run_id=_run_id())


@read_only()
def as_polars(ref: str, *, project: str | None = None) -> Any:
    """Return a version's data as a polars DataFrame (needs ``loopml[polars]``)."""
    import polars

    return polars.from_arrow(as_arrow(ref, project=project))


@read_only()
def get(ref: str, *, project: str | None = None) -> DatasetVersion:
    """Return the metadata of a version (schema, profile, status, parents …).

    ``credit`` and ``credit@latest`` skip deleted versions; ``credit:2`` is given even
    when deleted (its ``deleted_at`` says so): metadata stays readable.
    """
    return get_client().get_version(ref, project=settings.project(project))


@read_only()
def versions(
    name: str, *, project: str | None = None, deleted: DeletedFilter = "hide"
) -> list[DatasetVersion]:
    """Return the versions of a dataset, oldest first.

    Args:
        name: the dataset.
        project: project (default ``LOOPML_PROJECT``).
        deleted: ``"hide"`` deleted versions (default), ``"show"`` them too, or
            give ``"only"`` them.
    """
    return get_client().list_versions(name, project=settings.project(project), deleted=deleted)


def delete(ref: str, *, version: int | None = None, project: str | None = None) -> DatasetDeletion:
    """Delete one dataset version, softly: it can be brought back with :func:`restore`.

    Name it as ``"credit:2"`` or ``("credit", version=2)``; a bare name or
    ``@latest`` is refused. A deleted version is never the latest, is hidden from
    :func:`versions` (unless asked) and its data cannot be loaded; its metadata
    (:func:`get`, :func:`diff`, :func:`report`) stays readable. Deleting the only
    live version is allowed. Live runs, pipeline steps, model versions or derived
    versions that still refer to it do not block it: a
    :class:`~loopml.errors.DatasetVersionReferenced` warning names them and the
    result's ``references`` lists them (garbage collection keeps such data).

    Raises:
        InvalidParameter: no version number given.
        DatasetNotFound: no such dataset or version.
        DatasetVersionDeleted: the version is already deleted.

    Example:
        >>> loopml.data.delete("credit:2").version.deleted
        True
        >>> loopml.data.restore("credit:2").deleted
        False
    """
    return get_client().delete(ref, project=settings.project(project), version=version)


def restore(ref: str, *, version: int | None = None, project: str | None = None) -> DatasetVersion:
    """Bring a deleted version back, exactly as it was (``"credit:2"`` or ``version=2``).

    Raises:
        InvalidParameter: no version number given.
        DatasetNotFound: no such dataset or version.
        DatasetVersionNotDeleted: the version is not deleted.
    """
    return get_client().restore(ref, project=settings.project(project), version=version)


@read_only()
def datasets(*, project: str | None = None) -> list[Dataset]:
    """Return the datasets of a project."""
    return get_client().list_datasets(project=settings.project(project))


def validate(
    source: Any,
    against: str,
    *,
    project: str | None = None,
    expectations: Sequence[Expectation] = (),
    format: str | None = None,
    trust: bool = False,
) -> ValidationReport:
    """Check data against a dataset's schema and expectations; returns the report.

    ``against`` is ``"credit"``/``"credit@latest"`` (the newest schema revision) or
    ``"credit:3"`` (the revision in force when version 3 was registered). Stored
    custom checks run only functions registered in this process
    (:func:`loopml.data.register_check`); ``trust=True`` also imports checks saved
    as ``module:function`` paths, i.e. runs code chosen by whoever saved the schema.

    Raises:
        UntrustedCheckError: a stored custom check names an import path and
            ``trust`` is false.
    """
    return get_client().validate(
        source,
        against=against,
        project=settings.project(project),
        expectations=expectations,
        format=format,
        trust=trust,
    )


@read_only()
def report(ref: str, *, project: str | None = None) -> ValidationReport | None:
    """Return the validation report stored with a version, if checks ran."""
    return get_client().report(ref, project=settings.project(project))


@read_only()
def get_schema(
    name: str, *, project: str | None = None
) -> tuple[int, DatasetSchema, list[Expectation]]:
    """Return ``(revision, schema, expectations)`` of a dataset."""
    return get_client().get_schema(name, project=settings.project(project))


def save_schema(
    name: str,
    *,
    schema: DatasetSchema | str | None = None,
    expectations: Sequence[Expectation] | str | None = None,
    project: str | None = None,
) -> int:
    """Store a new schema revision (YAML text or objects); returns its number."""
    return get_client().save_schema(
        name, project=settings.project(project), schema=schema, expectations=expectations
    )


def split(
    ref: str,
    fractions: Mapping[str, float],
    *,
    seed: int,
    stratify: str | None = None,
    project: str | None = None,
) -> dict[str, DatasetVersion]:
    """Split a version into child datasets ``NAME-PART``, reproducibly (not a deleted one)."""
    return get_client().split(
        ref,
        fractions,
        project=settings.project(project),
        seed=seed,
        stratify=stratify,
        run_id=_run_id(),
    )


@read_only()
def diff(old: str, new: str, *, project: str | None = None) -> ProfileDiff:
    """Compare two versions' schemas and statistics (deleted ones too: profiles are metadata)."""
    return get_client().diff(old, new, project=settings.project(project))
