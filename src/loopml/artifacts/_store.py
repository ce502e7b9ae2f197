"""The content-addressed artifact store, built on a back-end's few primitives."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from loopml._urls import redact_url
from loopml.artifacts._backend import Backend
from loopml.artifacts._digest import (
    BLOB_PREFIX,
    CHUNK_SIZE,
    blob_key,
    check_digest,
    digest_of_key,
)
from loopml.artifacts._manifest import (
    MAX_MANIFEST_BYTES,
    ManifestEntry,
    ManifestFormatError,
    check_entry_count,
    decode_manifest,
    encode_manifest,
    iter_files,
    looks_like_manifest,
    prefix_length,
    safe_path,
)
from loopml.artifacts._materialize import materialize_dir, materialize_file
from loopml.artifacts._reader import VerifyingReader, integrity_error
from loopml.artifacts._uri import backend_from_uri
from loopml.errors import ArtifactManifestError, ArtifactNotFound, InvalidParameter

__all__ = ["ArtifactStore"]

_BytesLike = bytes | bytearray | memoryview


def _read_chunks(stream: BinaryIO, function: str) -> Iterator[bytes]:
    read = getattr(stream, "read", None)
    if not callable(read):
        raise InvalidParameter(
            f"The 'stream' parameter of {function} must be a binary file object. "
            f"Got {type(stream).__name__} instead."
        )
    while True:
        chunk = read(CHUNK_SIZE)
        if not chunk:
            return
        if not isinstance(chunk, _BytesLike):
            raise InvalidParameter(
                f"The 'stream' parameter of {function} must be opened in binary mode. "
                f"Its read() returned {type(chunk).__name__} instead of bytes."
            )
        yield bytes(chunk)


def _sha256_file(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


class ArtifactStore:
    """Immutable blobs addressed by the SHA-256 of their bytes.

    Identical content is stored once; every read is checked against the
    address; writes are staged and published atomically, so a killed process
    never leaves a partial blob under an address. Directories are stored as
    their files' blobs plus a manifest blob (see :meth:`put_dir`).

    Args:
        backend: where the bytes live; see :meth:`from_uri` to pick one by URI.

    Example:
        >>> import tempfile
        >>> store = ArtifactStore.from_uri(tempfile.mkdtemp())
        >>> digest = store.put_bytes(b"hello")
        >>> digest[:12]
        '2cf24dba5fb0'
        >>> store.get_bytes(digest)
        b'hello'
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    @classmethod
    def from_uri(cls, uri: str) -> ArtifactStore:
        """Open the store at ``uri``; nothing is created until the first write.

        Args:
            uri: a folder path or ``file://`` URL (local back-end), or any other
                fsspec URL such as ``s3://bucket/prefix`` or ``memory://name``.

        Returns:
            The store over the chosen back-end.

        Raises:
            InvalidParameter: ``uri`` is empty or its protocol is unknown to fsspec.
            ArtifactError: the protocol needs a package that is not installed.
        """
        return cls(backend_from_uri(uri))

    def __repr__(self) -> str:
        return f"ArtifactStore({self._backend!r})"

    @property
    def uri(self) -> str:
        """The location of the store, accepted back by :meth:`from_uri`."""
        return self._backend.uri

    @property
    def backend(self) -> Backend:
        """The back-end holding the bytes."""
        return self._backend

    # --- writing -------------------------------------------------------------

    def _put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        staged = self._backend.open_write()
        hasher = hashlib.sha256()
        size = 0
        try:
            for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
                staged.write(chunk)
        except BaseException:
            staged.abort()
            raise
        digest = hasher.hexdigest()
        staged.commit(blob_key(digest))
        return digest, size

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its address.

        Args:
            data: the bytes to store (``bytearray`` and ``memoryview`` work too).

        Returns:
            The SHA-256 hex digest of ``data``.

        Raises:
            InvalidParameter: ``data`` is not bytes-like.
            ArtifactError: the store cannot be written.
        """
        if not isinstance(data, _BytesLike):
            raise InvalidParameter(
                "The 'data' parameter of put_bytes must be bytes. "
                f"Got {type(data).__name__} instead."
            )
        view = memoryview(data).cast("B")
        digest = hashlib.sha256(view).hexdigest()
        if self._backend.exists(blob_key(digest)):
            self._backend.touch(blob_key(digest))
            return digest
        chunks = (bytes(view[i : i + CHUNK_SIZE]) for i in range(0, len(view), CHUNK_SIZE))
        return self._put_chunks(chunks)[0]

    def put_stream(self, stream: BinaryIO) -> str:
        """Store everything read from ``stream``, in constant memory.

        Args:
            stream: a binary file object, read to its end (not closed).

        Returns:
            The SHA-256 hex digest of the bytes read.

        Raises:
            InvalidParameter: ``stream`` is not a binary file object.
            ArtifactError: the store cannot be written.
        """
        return self._put_chunks(_read_chunks(stream, "put_stream"))[0]

    def _put_file(self, path: Path) -> tuple[str, int]:
        # Hash first: content already stored (the common case when a run logs
        # the same data again) then costs a read, not an upload.
        digest, size = _sha256_file(path)
        if self._backend.exists(blob_key(digest)):
            self._backend.touch(blob_key(digest))
            return digest, size
        with path.open("rb") as handle:
            return self._put_chunks(_read_chunks(cast(BinaryIO, handle), "put_file"))

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path``, in constant memory.

        Args:
            path: a local file.

        Returns:
            The SHA-256 hex digest of the file's bytes.

        Raises:
            ArtifactNotFound: ``path`` does not exist.
            InvalidParameter: ``path`` is a directory (use :meth:`put_dir`).
            ArtifactError: the store cannot be written.
        """
        source = Path(path)
        if not source.exists():
            raise ArtifactNotFound(
                f"The 'path' parameter of put_file names no file: {str(source)!r}."
            )
        if source.is_dir():
            raise InvalidParameter(
                f"The 'path' parameter of put_file must be a file. Got the directory "
                f"{str(source)!r} instead; use put_dir for directories."
            )
        return self._put_file(source)[0]

    def put_dir(self, path: str | os.PathLike[str]) -> str:
        """Store every file below the directory ``path`` and a manifest listing them.

        The manifest is a JSON blob of ``{"loopml_manifest": 1, "entries": [...]}``
        with one ``{"path", "digest", "size"}`` entry per file, sorted by path, so
        the same tree always gets the same digest. Empty folders are not kept;
        symbolic links to files are stored as the files they point to, links to
        folders are not followed.

        Args:
            path: a local directory.

        Returns:
            The digest of the manifest blob.

        Raises:
            ArtifactNotFound: ``path`` does not exist.
            InvalidParameter: ``path`` is not a directory, or holds a file whose
                name cannot be stored portably (a backslash in it).
            ArtifactError: the store cannot be written.
        """
        root = Path(path)
        if not root.exists():
            raise ArtifactNotFound(
                f"The 'path' parameter of put_dir names no directory: {str(root)!r}."
            )
        if not root.is_dir():
            raise InvalidParameter(
                f"The 'path' parameter of put_dir must be a directory. Got the file "
                f"{str(root)!r} instead; use put_file for files."
            )
        entries: list[ManifestEntry] = []
        for relative, file in iter_files(root):
            try:
                safe_path(relative)
                check_entry_count(len(entries) + 1)
            except ManifestFormatError as exc:
                raise InvalidParameter(
                    f"The directory {str(root)!r} given to put_dir holds a file that "
                    f"cannot be stored: {exc}."
                ) from None
            digest, size = self._put_file(file)
            entries.append(ManifestEntry(relative, digest, size))
        manifest = encode_manifest(entries)
        if len(manifest) > MAX_MANIFEST_BYTES:
            raise InvalidParameter(
                f"The directory {str(root)!r} given to put_dir lists too much: its "
                f"manifest would be {len(manifest)} bytes, more than {MAX_MANIFEST_BYTES}."
            )
        return self.put_bytes(manifest)

    # --- reading -------------------------------------------------------------

    def _not_found(self, digest: str) -> ArtifactNotFound:
        return ArtifactNotFound(f"No blob {digest} in the artifact store {redact_url(self.uri)!r}.")

    def _open_raw(self, digest: str) -> BinaryIO:
        try:
            return self._backend.open_read(blob_key(digest))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def exists(self, digest: str) -> bool:
        """Tell whether a blob is stored under ``digest``.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
        """
        return self._backend.exists(blob_key(check_digest(digest, "exists")))

    def size(self, digest: str) -> int:
        """Return the size in bytes of the blob ``digest``.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
            ArtifactNotFound: no such blob.
        """
        try:
            return self._backend.size(blob_key(check_digest(digest, "size")))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def get_bytes(self, digest: str) -> bytes:
        """Return the bytes of the blob ``digest``, verified against the digest.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
            ArtifactNotFound: no such blob.
            ArtifactIntegrityError: the stored bytes do not hash to ``digest``.
        """
        check_digest(digest, "get_bytes")
        with self._open_raw(digest) as handle:
            data = handle.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise integrity_error(digest, actual, self.uri)
        return data

    def open(self, digest: str) -> BinaryIO:
        """Open the blob ``digest`` for streaming reads, in constant memory.

        The hash is checked as the stream is read; reaching the end raises if the
        bytes were corrupted. Read to the end before trusting the data.

        Returns:
            A binary, read-only, non-seekable file object; close it when done.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
            ArtifactNotFound: no such blob.
            ArtifactIntegrityError: (from ``read`` at end of stream) the bytes
                read do not hash to ``digest``.
        """
        check_digest(digest, "open")
        reader = VerifyingReader(self._open_raw(digest), digest, self.uri)
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

    def get_file(
        self, digest: str, dest: str | os.PathLike[str], *, overwrite: bool = False
    ) -> Path:
        """Copy the blob ``digest`` to the new file ``dest``, verified before it appears.

        The bytes go to an owner-only (``0o600``) temporary file beside ``dest``
        and are renamed into place only once their hash matches. Missing parent
        folders are created.

        Args:
            digest: the blob to copy.
            dest: the file to create.
            overwrite: replace an existing file (or symlink) at ``dest``, atomically.

        Returns:
            ``dest`` as a :class:`~pathlib.Path`.

        Raises:
            InvalidParameter: ``digest`` is malformed, or ``dest`` is a directory.
            ArtifactExists: ``dest`` exists and ``overwrite`` is false.
            ArtifactNotFound: no such blob.
            ArtifactIntegrityError: the stored bytes do not hash to ``digest``;
                ``dest`` is left untouched.
        """
        check_digest(digest, "get_file")
        return materialize_file(
            digest, dest, self._open_raw, where=self.uri, overwrite=overwrite, function="get_file"
        )

    def verify(self, digest: str) -> bool:
        """Tell whether the blob ``digest`` still hashes to its address.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
            ArtifactNotFound: no such blob.
        """
        check_digest(digest, "verify")
        hasher = hashlib.sha256()
        with self._open_raw(digest) as handle:
            while chunk := handle.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest() == digest

    # --- directories -----------------------------------------------------------

    def is_manifest(self, digest: str) -> bool:
        """Tell whether the blob ``digest`` is a directory manifest.

        Only the first bytes are read for an ordinary blob.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
            ArtifactNotFound: no such blob.
            ArtifactIntegrityError: the blob starts like a manifest but is corrupted.
        """
        check_digest(digest, "is_manifest")
        with self._open_raw(digest) as handle:
            head = handle.read(prefix_length())
        if not looks_like_manifest(head) or self.size(digest) > MAX_MANIFEST_BYTES:
            return False
        try:
            decode_manifest(self.get_bytes(digest))
        except ManifestFormatError:
            return False
        return True

    def read_manifest(self, digest: str) -> list[ManifestEntry]:
        """Return the entries of the directory manifest ``digest``, sorted by path.

        Raises:
            InvalidParameter: ``digest`` is malformed or its blob is not a manifest.
            ArtifactManifestError: the blob starts like a manifest but is malformed,
                lists an unsafe path, or exceeds a limit (see ``_manifest``).
            ArtifactNotFound: no such blob.
            ArtifactIntegrityError: the manifest blob is corrupted.
        """
        check_digest(digest, "read_manifest")
        with self._open_raw(digest) as handle:
            head = handle.read(prefix_length())
        if not looks_like_manifest(head):
            raise InvalidParameter(
                "The 'digest' parameter of read_manifest must address a directory "
                f"manifest. Got {digest}, which is not one (no manifest marker)."
            )
        if self.size(digest) > MAX_MANIFEST_BYTES:
            raise ArtifactManifestError(
                f"The manifest {digest} in {redact_url(self.uri)!r} is larger than "
                f"{MAX_MANIFEST_BYTES} bytes; it is not read."
            )
        try:
            return decode_manifest(self.get_bytes(digest))
        except ManifestFormatError as exc:
            raise ArtifactManifestError(
                f"The manifest {digest} in {redact_url(self.uri)!r} cannot be trusted: {exc}. "
                "Nothing was written."
            ) from None

    def get_dir(
        self, digest: str, dest: str | os.PathLike[str], *, overwrite: bool = False
    ) -> Path:
        """Materialise the directory stored as manifest ``digest`` as the new folder ``dest``.

        The manifest is checked first (see :class:`~loopml.errors.ArtifactManifestError`);
        the tree is then built in an owner-only staging folder beside ``dest``,
        every file verified, and renamed into place: it appears whole or not at
        all, and is never merged into an existing folder. Files are ``0o600``,
        folders ``0o700``; nothing is written outside ``dest``, whatever the
        manifest says or symlinks already exist.

        Args:
            digest: the manifest of the directory, as returned by :meth:`put_dir`.
            dest: the folder to create.
            overwrite: replace an existing folder (or symlink) at ``dest``.

        Returns:
            ``dest`` as a :class:`~pathlib.Path`.

        Raises:
            InvalidParameter: ``digest`` is malformed or not a manifest, or
                ``dest`` is an existing file.
            ArtifactExists: ``dest`` exists and ``overwrite`` is false.
            ArtifactManifestError: the manifest lists unsafe or colliding paths.
            ArtifactNotFound: the manifest or one of its files is missing.
            ArtifactIntegrityError: the manifest or one of its files is corrupted.
        """
        check_digest(digest, "get_dir")
        entries = self.read_manifest(digest)
        return materialize_dir(
            entries, dest, self._open_raw, where=self.uri, overwrite=overwrite, function="get_dir"
        )

    # --- maintenance (garbage collection) --------------------------------------

    def iter_blobs(self) -> Iterator[tuple[str, float]]:
        """Yield ``(digest, mtime)`` for every stored blob, in no particular order.

        Writes in progress are never listed. ``mtime`` is in epoch seconds; a
        garbage collector should spare blobs younger than its grace period.
        """
        for key, mtime in self._backend.iter_keys(BLOB_PREFIX):
            digest = digest_of_key(key)
            if digest is not None:
                yield digest, mtime

    def delete(self, digest: str, *, missing_ok: bool = False) -> None:
        """Delete the blob ``digest``.

        Args:
            digest: the blob to delete.
            missing_ok: return quietly when the blob does not exist.

        Raises:
            InvalidParameter: ``digest`` is not a SHA-256 hex digest.
            ArtifactNotFound: no such blob and ``missing_ok`` is false.
            ArtifactError: the store cannot be written.
        """
        check_digest(digest, "delete")
        try:
            self._backend.delete(blob_key(digest))
        except FileNotFoundError:
            if not missing_ok:
                raise self._not_found(digest) from None
