"""The local-folder back-end: blobs are plain files, published by ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from loopml._private_fs import make_private_dirs, open_private_file
from loopml.artifacts._digest import TMP_PREFIX
from loopml.errors import ArtifactError

__all__ = ["LocalBackend"]


def _unwritable(root: Path, exc: OSError) -> ArtifactError:
    reason = exc.strerror or type(exc).__name__
    if exc.filename and str(exc.filename) != str(root):
        reason = f"{reason} ({exc.filename})"
    return ArtifactError(
        f"Cannot write to the artifact store folder {str(root)!r}: {reason}. "
        "Check that the folder is writable, or point LOOPML_ARTIFACT_URI elsewhere."
    )


def _touch(path: Path) -> None:
    # Best effort: a read-only store can still serve the blob.
    with contextlib.suppress(OSError):
        os.utime(path)


class _LocalStagedWrite:
    """A temporary file in ``<root>/tmp``, renamed into place on commit."""

    def __init__(self, root: Path) -> None:
        self._root = root
        tmp_dir = root / TMP_PREFIX
        # Owner-only (0o600, folders 0o700): blobs hold whatever was logged,
        # prediction inputs included. The rename on commit keeps the mode.
        self._path = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            make_private_dirs(tmp_dir)
            self._fd = open_private_file(self._path, os.O_WRONLY)
        except OSError as exc:
            raise _unwritable(root, exc) from exc
        self._closed = False

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.abort()
            raise _unwritable(self._root, exc) from exc

    def _close(self, sync: bool) -> None:
        if not self._closed:
            self._closed = True
            try:
                if sync:
                    # The rename must never publish a name whose data a crash
                    # could still lose.
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)

    def commit(self, key: str) -> None:
        final = self._root / key
        try:
            self._close(sync=True)
            if final.exists():
                self._path.unlink()
                _touch(final)
                return
            make_private_dirs(final.parent)
            self._path.replace(final)
        except OSError as exc:
            self.abort()
            raise _unwritable(self._root, exc) from exc

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._close(sync=False)
        self._path.unlink(missing_ok=True)


class LocalBackend:
    """Blobs as files under a local folder.

    Nothing is created until the first write, so opening a store does no I/O.
    Writes go to ``<root>/tmp`` and are published with an atomic rename. Every
    folder the store creates (the root included) is ``0o700`` and every file
    ``0o600``, whatever the umask.

    Args:
        root: the folder of the store; created on first write.

    Example:
        >>> import tempfile
        >>> backend = LocalBackend(tempfile.mkdtemp())
        >>> backend.exists("blobs/ab/abc")
        False
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    @property
    def uri(self) -> str:
        """The absolute path of the folder."""
        return str(self.root)

    def exists(self, key: str) -> bool:
        """Return whether a file is published under ``key``."""
        return (self.root / key).is_file()

    def size(self, key: str) -> int:
        """Return the size of the file under ``key``."""
        return (self.root / key).stat().st_size

    def open_read(self, key: str) -> BinaryIO:
        """Open the file under ``key`` for reading."""
        return (self.root / key).open("rb")

    def open_write(self) -> _LocalStagedWrite:
        """Start a write into a new temporary file."""
        return _LocalStagedWrite(self.root)

    def touch(self, key: str) -> None:
        """Set the file's modification time to now (best effort)."""
        _touch(self.root / key)

    def delete(self, key: str) -> None:
        """Delete the file under ``key``."""
        try:
            (self.root / key).unlink()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _unwritable(self.root, exc) from exc

    def iter_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Yield ``(key, mtime)`` for every file below ``<root>/<prefix>``."""
        base = self.root / prefix
        stack = [base]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    try:
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:  # deleted while we walked
                        continue
                    key = Path(entry.path).relative_to(self.root).as_posix()
                    yield key, mtime
