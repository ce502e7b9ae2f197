"""Records handed out by the data client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopml._html import Section, clip, html_table, number, when

if TYPE_CHECKING:
    from loopml.data._profile import Profile

__all__ = ["Dataset", "DatasetVersion"]


@dataclass(frozen=True)
class Dataset:
    """A named dataset and the number of its latest usable version."""

    name: str
    project: str
    description: str | None
    key_columns: tuple[str, ...]
    created_at: int
    latest_version: int | None
    version_count: int


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset.

    ``status`` is ``ready`` or ``quarantined`` (kept and visible, never ``@latest``).
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
    is_new: bool = False
    """True only on the record :func:`register` returns when it stored new data."""

    @property
    def ref(self) -> str:
        """The reference ``name:N``."""
        return f"{self.name}:{self.version}"

    def __repr__(self) -> str:
        # Short: the profile alone runs to kilobytes. The HTML view has the details.
        status = "" if self.status == "ready" else f" {self.status}"
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
