"""Content-addressed artifact storage.

Blobs are addressed by the SHA-256 hex digest of their bytes, stored once,
verified on every read and published atomically. Directories are stored as
their files' blobs plus a JSON manifest blob. Bytes live in a :class:`Backend`:
a local folder (:class:`LocalBackend`, the default) or any fsspec filesystem
(:class:`FsspecBackend`), picked by URI with :meth:`ArtifactStore.from_uri`.

Example:
    >>> import tempfile
    >>> from loopml.artifacts import ArtifactStore, is_digest
    >>> store = ArtifactStore.from_uri(tempfile.mkdtemp())
    >>> digest = store.put_bytes(b"weights")
    >>> is_digest(digest) and store.get_bytes(digest) == b"weights"
    True
"""

from __future__ import annotations

from loopml.artifacts._backend import Backend, StagedWrite
from loopml.artifacts._digest import CHUNK_SIZE, is_digest
from loopml.artifacts._fsspec import FsspecBackend
from loopml.artifacts._local import LocalBackend
from loopml.artifacts._manifest import MANIFEST_MARKER, MANIFEST_VERSION, ManifestEntry
from loopml.artifacts._store import ArtifactStore

__all__ = [
    "CHUNK_SIZE",
    "MANIFEST_MARKER",
    "MANIFEST_VERSION",
    "ArtifactStore",
    "Backend",
    "FsspecBackend",
    "LocalBackend",
    "ManifestEntry",
    "StagedWrite",
    "is_digest",
]
