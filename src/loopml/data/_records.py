"""Records handed out by the data client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopml._html import Section, clip, html_table, number, when

if TYPE_CHECKING:
    from loopml.data._profile import Profile

__all__ = ["Dataset", "DatasetDeletion", "DatasetVersion", "VersionReference"]


@dataclass(frozen=True)
class Dataset:
    """A named dataset and the number of its latest usable version.

    ``version_count`` counts the live versions; ``deleted_count`` the deleted ones
    (never the latest, and restorable with :func:`loopml.data.restore`).
    """

    name: str
    project: str
    description: str | None
    key_columns: tuple[str, ...]
    created_at: int
    latest_version: int | None
    version_count: int
    deleted_count: int = 0


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset.

    ``status`` is ``ready`` or ``quarantined`` (kept and visible, never ``@latest``).
    ``deleted_at`` is set (ms since the epoch) once the version is deleted: its
    metadata can still be read, its data no longer loaded until it is restored.
    ``report_passed`` is None when no checks ran. ``digest`` addresses the Parquet
    snapshot in the artifact store; ``content_hash`` is the identity of the data.
    """

    id: int
    name: str
    version: int
    project: str
    status: str
    content_hash: str
    digest: str
    row_count: int
    column_count: int
    size_bytes: int
    columns: tuple[tuple[str, str], ...]
    profile: Profile
    parents: tuple[str, ...]
    source: str | None
    description: str | None
    report_passed: bool | None
    report_digest: str | None
    schema_revision: int | None
    creator: str | None
    created_at: int
    deleted_at: int | None = None
    is_new: bool = False
    """True only on the record :func:`register` returns when it stored new data."""

    @property
    def ref(self) -> str:
        """The reference ``name:N``."""
        return f"{self.name}:{self.version}"

    @property
    def deleted(self) -> bool:
        """True once the version is deleted (until it is restored)."""
        return self.deleted_at is not None

    def __repr__(self) -> str:
        # Short: the profile alone runs to kilobytes. The HTML view has the details.
        status = "" if self.status == "ready" else f" {self.status}"
        if self.deleted:
            status += " deleted"
        return (
            f"<DatasetVersion {clip(self.name)}:{self.version}{status} "
            f"{number(self.row_count)} rows x {number(self.column_count)} cols "
            f"sha256:{self.content_hash[:12]}…>"
        )

    def _repr_html_(self) -> str:
        checks = {None: "no checks ran", True: "passed", False: "failed"}[self.report_passed]
        return html_table(
            f"DatasetVersion {self.ref}",
            [
                ("project", self.project),
                ("status", self.status),
                ("deleted", None if self.deleted_at is None else when(self.deleted_at)),
                ("rows", number(self.row_count)),
                ("columns", number(self.column_count)),
                ("size", f"{number(self.size_bytes)} bytes"),
                ("checks", checks),
                ("content hash", f"sha256:{self.content_hash}"),
                ("source", self.source),
                ("parents", ", ".join(self.parents) or None),
                ("description", self.description),
                ("created", f"{when(self.created_at)} by {self.creator or 'unknown'}"),
            ],
            Section("Columns", ("column", "type"), self.columns),
        )


@dataclass(frozen=True)
class VersionReference:
    """Something that refers to a dataset version through lineage.

    ``kind`` is ``run`` (a run or a pipeline step that used or produced it),
    ``model_version`` (trained on it) or ``dataset_version`` (derived from it);
    ``relation`` is the lineage edge's (``input``, ``output``, ``trained_on``,
    ``derived``); ``label`` names it for people (``pipeline step train (run 3f2a…)``).
    """

    kind: str
    id: str
    relation: str
    label: str


@dataclass(frozen=True)
class DatasetDeletion:
    """What :func:`loopml.data.delete` did: the deleted version and who still refers to it.

    Live ``references`` do not block the deletion; garbage collection keeps the
    data of a version that something live still refers to.
    """

    version: DatasetVersion
    references: tuple[VersionReference, ...]
