"""The fsspec back-end: any filesystem fsspec knows (S3, GCS, Azure, memory, ...)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loopml._private_fs import make_private_dirs, open_private_file
from loopml._urls import redact_text, redact_url, url_secrets
from loopml.artifacts._digest import TMP_PREFIX
from loopml.errors import ArtifactError, InvalidParameter

__all__ = ["FsspecBackend"]

# Where filesystems put a file's modification time in ``info``, best first.
_MTIME_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "modified", "created")


def _as_epoch(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, str):
        try:
            return _as_epoch(dt.datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


class _FsspecStagedWrite:
    """An object under ``<root>/tmp``, moved into place on commit."""

    def __init__(self, backend: FsspecBackend) -> None:
        self._backend = backend
        self._tmp = backend.path_of(f"{TMP_PREFIX}/{uuid.uuid4().hex}.part")
        fs = backend.fs
        try:
            backend.makedirs(fs._parent(self._tmp))
            if backend.is_local:
                self._file: Any = os.fdopen(open_private_file(self._tmp, os.O_WRONLY), "wb")
            else:
                self._file = fs.open(self._tmp, "wb")
        except OSError as exc:
            raise backend.unwritable(exc) from exc

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise self._backend.unwritable(exc) from exc

    def commit(self, key: str) -> None:
        fs = self._backend.fs
        final = self._backend.path_of(key)
        try:
            self._file.close()
            if fs.exists(final):
                fs.rm_file(self._tmp)
                self._backend.touch(key)
                return
            self._backend.makedirs(fs._parent(final))
            # A rename on file systems that have one; on object stores a
            # server-side copy, and objects only appear once complete.
            fs.mv(self._tmp, final)
        except OSError as exc:
            self.abort()
            raise self._backend.unwritable(exc) from exc

    def abort(self) -> None:
        fs = self._backend.fs
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            fs.rm_file(self._tmp)


class FsspecBackend:
    """Blobs in any fsspec filesystem, such as ``s3://bucket/prefix``.

    Args:
        uri: an fsspec URL naming the root of the store.
        **storage_options: passed to the fsspec filesystem (credentials, ...).

    Raises:
        InvalidParameter: fsspec does not know the URL's protocol.
        ArtifactError: the protocol needs a package that is not installed
            (``s3fs`` for ``s3://``, ...).

    Example:
        >>> backend = FsspecBackend("memory://loopml-doc")
        >>> backend.exists("blobs/ab/abc")
        False
    """

    def __init__(self, uri: str, **storage_options: Any) -> None:
        try:
            fs, root = fsspec.core.url_to_fs(uri, **storage_options)
        except ValueError as exc:
            raise InvalidParameter(
                f"The 'uri' parameter of FsspecBackend must be a folder or an fsspec "
                f"URL with a known protocol. Got {redact_url(uri)!r} instead "
                f"({redact_text(str(exc), url_secrets(uri))})."
            ) from None
        except ImportError as exc:
            raise ArtifactError(
                f"The artifact store {redact_url(uri)!r} needs a package that is not "
                f"installed: {redact_text(str(exc), url_secrets(uri))}"
            ) from None
        self.fs: Any = fs
        self.root: str = cast(str, root).rstrip("/")
        self._uri = uri.rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecBackend({redact_url(self._uri)!r})"

    @property
    def uri(self) -> str:
        """The URL the back-end was opened with."""
        return self._uri

    @property
    def is_local(self) -> bool:
        """Whether the filesystem is this machine's (``local://`` URLs)."""
        return isinstance(self.fs, LocalFileSystem)

    def makedirs(self, path: str) -> None:
        """Create the folder ``path`` and its parents (owner-only on a local filesystem)."""
        if self.is_local:
            make_private_dirs(path)
        else:
            self.fs.makedirs(path, exist_ok=True)

    def path_of(self, key: str) -> str:
        """Return the filesystem path of ``key``."""
        return f"{self.root}/{key}"

    def unwritable(self, exc: Exception) -> ArtifactError:
        """Return the error for a write the storage refused."""
        shown = redact_text(repr(exc), url_secrets(self._uri))
        return ArtifactError(
            f"Cannot write to the artifact store {redact_url(self._uri)!r}: {shown}"
        )

    def exists(self, key: str) -> bool:
        """Return whether an object is published under ``key``."""
        return bool(self.fs.isfile(self.path_of(key)))

    def size(self, key: str) -> int:
        """Return the size of the object under ``key``."""
        return int(self.fs.size(self.path_of(key)))

    def open_read(self, key: str) -> BinaryIO:
        """Open the object under ``key`` for streaming reads."""
        return cast(BinaryIO, self.fs.open(self.path_of(key), "rb"))

    def open_write(self) -> _FsspecStagedWrite:
        """Start a write of a temporary object."""
        return _FsspecStagedWrite(self)

    def touch(self, key: str) -> None:
        """Set the object's modification time to now where the filesystem can.

        Object stores (S3, GCS, ...) cannot change the time of an existing
        object, so there this does nothing: a garbage collector then sees the
        time of the first write.
        """
        # Each filesystem signals "cannot" in its own way; none of them matter.
        with contextlib.suppress(NotImplementedError, ValueError, TypeError, OSError):
            self.fs.touch(self.path_of(key), truncate=False)

    def delete(self, key: str) -> None:
        """Delete the object under ``key``."""
        path = self.path_of(key)
        if not self.fs.isfile(path):
            raise FileNotFoundError(path)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self.unwritable(exc) from exc

    def iter_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Yield ``(key, mtime)`` for every object below ``<root>/<prefix>``.

        When the filesystem reports no modification time, the current time is
        used, so a garbage collector's grace period keeps the object.
        """
        base = self.path_of(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        root = self.root + "/"
        for path, info in found.items():
            if info.get("type", "file") != "file":
                continue
            name = str(path)
            if not name.startswith(root):
                name = str(self.fs._strip_protocol(name))
            if name.startswith(root):
                yield name[len(root) :], self._mtime(name, info)

    def _mtime(self, path: str, info: dict[str, Any]) -> float:
        for field in _MTIME_FIELDS:
            epoch = _as_epoch(info.get(field))
            if epoch is not None:
                return epoch
        try:
            epoch = _as_epoch(self.fs.modified(path))
        except (NotImplementedError, OSError):
            epoch = None
        return time.time() if epoch is None else epoch
