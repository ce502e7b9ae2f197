"""The back-end protocol: the few primitives an artifact store needs from storage.

A back-end stores opaque byte strings under ``/``-separated keys. It knows
nothing of digests or manifests; :class:`~loopml.artifacts.ArtifactStore`
builds content addressing, verification and directories on top. Keys given to
a back-end are always well formed (the store builds them), so back-ends do not
re-validate them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["Backend", "StagedWrite"]


@runtime_checkable
class StagedWrite(Protocol):
    """A write in progress, invisible under any published key until committed.

    Call :meth:`write` any number of times, then exactly one of :meth:`commit`
    or :meth:`abort`. A process killed before :meth:`commit` returns leaves at
    most a temporary object outside the published keys.
    """

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the staged object.

        Raises:
            ArtifactError: the storage refused the write (read-only, full, ...).
        """

    def commit(self, key: str) -> None:
        """Publish the staged bytes under ``key`` atomically.

        If ``key`` already exists the staged bytes are discarded instead (and
        the existing object touched, see ``Backend.touch``): blobs are content
        addressed, so the existing object holds the same bytes and is never
        overwritten.

        Raises:
            ArtifactError: the storage refused the write.
        """

    def abort(self) -> None:
        """Discard the staged bytes; never raises for a missing temporary."""


@runtime_checkable
class Backend(Protocol):
    """Storage for an artifact store: a flat namespace of immutable objects."""

    @property
    def uri(self) -> str:
        """The location of the store, accepted back by ``ArtifactStore.from_uri``."""

    def exists(self, key: str) -> bool:
        """Return whether an object is published under ``key``."""

    def size(self, key: str) -> int:
        """Return the size in bytes of the object under ``key``.

        Raises:
            FileNotFoundError: nothing is published under ``key``.
        """

    def open_read(self, key: str) -> BinaryIO:
        """Open the object under ``key`` for streaming reads.

        Raises:
            FileNotFoundError: nothing is published under ``key``.
        """

    def open_write(self) -> StagedWrite:
        """Start a staged write in the back-end's temporary area.

        Raises:
            ArtifactError: the storage cannot be written.
        """

    def touch(self, key: str) -> None:
        """Set the modification time of the object under ``key`` to now, if possible.

        Called when a write finds its content already stored, so a garbage
        collector's grace period also protects a blob that is being re-used.
        Best effort: storage that cannot change a modification time does nothing.
        """

    def delete(self, key: str) -> None:
        """Delete the object under ``key``.

        Raises:
            FileNotFoundError: nothing is published under ``key``.
        """

    def iter_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Yield ``(key, mtime)`` for every object whose key starts with ``prefix/``.

        ``mtime`` is the modification time in epoch seconds. Order is unspecified.
        A missing prefix yields nothing.
        """
