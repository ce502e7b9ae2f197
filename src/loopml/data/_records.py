"""Records handed out by the data client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
