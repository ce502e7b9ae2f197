"""Writing blobs out as local files and folders without ever leaving the destination.

A download names one new file or folder, ``parent/name``. It is built in a fresh
staging entry beside it (``.name.<random>.part``, owner-only) and renamed into
place once every byte is verified, so it appears whole or not at all and never
merges into what was there. Below ``parent`` nothing is opened by path: each
folder is opened with ``O_NOFOLLOW`` and everything inside it is created relative
to that descriptor with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a symlink, planted
before or during the download, can never redirect a write out of the staging
folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from loopml._private_fs import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from loopml.artifacts._digest import CHUNK_SIZE
from loopml.artifacts._manifest import ManifestEntry
from loopml.artifacts._reader import integrity_error
from loopml.errors import ArtifactError, ArtifactExists, ArtifactManifestError, InvalidParameter

__all__ = ["BlobOpener", "materialize_dir", "materialize_file"]

#: Opens a blob's raw (unverified) bytes by digest.
BlobOpener = Callable[[str], BinaryIO]

_CLOEXEC = os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC


def _write_blob(
    dir_fd: int, name: str, digest: str, open_blob: BlobOpener, where: str, shown: str
) -> None:
    with open_blob(digest) as source:
        try:
            fd = os.open(name, _NEW_FILE_FLAGS, PRIVATE_FILE_MODE, dir_fd=dir_fd)
        except FileExistsError:
            raise ArtifactManifestError(
                f"The manifest lists two files that are the same file here ({shown!r}): "
                "this file system does not tell their names apart (case or Unicode form)."
            ) from None
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), PRIVATE_FILE_MODE)
            hasher = hashlib.sha256()
            while chunk := source.read(CHUNK_SIZE):
                hasher.update(chunk)
                out.write(chunk)
    actual = hasher.hexdigest()
    if actual != digest:
        raise integrity_error(digest, actual, where)


def _enter(dir_fd: int, name: str, shown: str) -> int:
    """Open (creating it first if needed) the folder ``name`` inside ``dir_fd``."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, PRIVATE_DIR_MODE, dir_fd=dir_fd)
    try:
        child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except NotADirectoryError as exc:
        # Only our own entries live in the staging folder; a name that is not a
        # folder we made is a file of the manifest colliding with it here.
        raise ArtifactManifestError(
            f"The manifest's folder {shown!r} collides with a file of the same name "
            f"on this file system ({exc.strerror})."
        ) from None
    os.fchmod(child, PRIVATE_DIR_MODE)
    return child


def _write_tree(
    root_fd: int, entries: Iterable[ManifestEntry], open_blob: BlobOpener, where: str
) -> None:
    # Entries are written in path order, so a folder's files are consecutive and
    # only the open folders of the current path (at most MAX_DEPTH) hold a descriptor.
    stack: list[tuple[str, int]] = []
    try:
        for entry in sorted(entries, key=lambda item: item.path):
            *folders, leaf = entry.path.split("/")
            keep = 0
            while keep < min(len(stack), len(folders)) and stack[keep][0] == folders[keep]:
                keep += 1
            while len(stack) > keep:
                os.close(stack.pop()[1])
            for depth in range(keep, len(folders)):
                parent = stack[-1][1] if stack else root_fd
                shown = "/".join(folders[: depth + 1])
                stack.append((folders[depth], _enter(parent, folders[depth], shown)))
            dir_fd = stack[-1][1] if stack else root_fd
            _write_blob(dir_fd, leaf, entry.digest, open_blob, where, entry.path)
    finally:
        for _, fd in stack:
            os.close(fd)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _remove(dir_fd: int, name: str) -> None:
    found = _lstat(dir_fd, name)
    if found is None:
        return
    if stat.S_ISDIR(found.st_mode):
        # fd-based on Linux and macOS: never follows a symlink inside the tree.
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _sibling(name: str, suffix: str) -> str:
    # A hidden, unique name beside ``name``; shortened so it stays under NAME_MAX.
    return f".{name[:100]}.{uuid.uuid4().hex}.{suffix}"


class _Target:
    """The new file or folder ``parent/name`` being materialised."""

    def __init__(self, dest: str | os.PathLike[str], *, is_dir: bool, function: str) -> None:
        self.path = Path(dest)
        self.name = self.path.name
        self.is_dir = is_dir
        self.function = function
        if self.name in ("", ".", ".."):
            raise InvalidParameter(
                f"The 'dest' parameter of {function} must name the "
                f"{'folder' if is_dir else 'file'} to create. Got {str(dest)!r} instead."
            )
        self.parent = self.path.parent
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            # The user chose the parent: a symlink there is followed on purpose.
            self.parent_fd = os.open(self.parent, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except OSError as exc:
            raise ArtifactError(
                f"Cannot write into the folder {str(self.parent)!r} given to {function}: "
                f"{exc.strerror}."
            ) from None

    def close(self) -> None:
        os.close(self.parent_fd)

    def check_free(self, overwrite: bool) -> None:
        """Refuse an existing destination, unless overwriting one of the same kind."""
        found = _lstat(self.parent_fd, self.name)
        if found is None:
            return
        kind = "folder" if self.is_dir else "file"
        if stat.S_ISDIR(found.st_mode) != self.is_dir and (
            stat.S_ISDIR(found.st_mode) or stat.S_ISREG(found.st_mode)
        ):
            other = "folder" if stat.S_ISDIR(found.st_mode) else "file"
            raise InvalidParameter(
                f"The 'dest' parameter of {self.function} must be a {kind} path. "
                f"Got the existing {other} {str(self.path)!r} instead."
            )
        if not overwrite:
            raise ArtifactExists(
                f"{str(self.path)!r} already exists; nothing was written. Choose another "
                "destination, or ask to overwrite it (overwrite=True, --overwrite)."
            )

    def publish(self, staging: str, overwrite: bool) -> None:
        """Rename ``staging`` to the destination; replace what is there only when asked."""
        fd = self.parent_fd
        self.check_free(overwrite)
        found = _lstat(fd, self.name)
        if found is None or (not self.is_dir and not stat.S_ISDIR(found.st_mode)):
            # One atomic rename; it replaces a file or a symlink itself, never
            # what a symlink points to.
            os.replace(staging, self.name, src_dir_fd=fd, dst_dir_fd=fd)
            return
        # A folder cannot be renamed over a non-empty folder: move the old one
        # aside, put the new one in place, then delete the old one. Never merged.
        aside = _sibling(self.name, "old")
        os.rename(self.name, aside, src_dir_fd=fd, dst_dir_fd=fd)
        try:
            os.rename(staging, self.name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            os.rename(aside, self.name, src_dir_fd=fd, dst_dir_fd=fd)
            raise
        _remove(fd, aside)


def _materialize(target: _Target, overwrite: bool, fill: Callable[[int, str], None]) -> Path:
    try:
        target.check_free(overwrite)
        staging = _sibling(target.name, "part")
        try:
            fill(target.parent_fd, staging)
            target.publish(staging, overwrite)
        except BaseException:
            with contextlib.suppress(OSError):
                _remove(target.parent_fd, staging)
            raise
    finally:
        target.close()
    return target.path


def materialize_file(
    digest: str,
    dest: str | os.PathLike[str],
    open_blob: BlobOpener,
    *,
    where: str,
    overwrite: bool,
    function: str,
) -> Path:
    """Write the verified blob ``digest`` to the new file ``dest`` (mode ``0o600``).

    Raises:
        InvalidParameter: ``dest`` names no file, or is an existing folder.
        ArtifactExists: ``dest`` exists and ``overwrite`` is false.
        ArtifactIntegrityError: the blob's bytes do not hash to ``digest``.
        ArtifactError: the parent folder cannot be created or opened.
    """
    target = _Target(dest, is_dir=False, function=function)

    def fill(parent_fd: int, staging: str) -> None:
        _write_blob(parent_fd, staging, digest, open_blob, where, target.name)

    return _materialize(target, overwrite, fill)


def materialize_dir(
    entries: list[ManifestEntry],
    dest: str | os.PathLike[str],
    open_blob: BlobOpener,
    *,
    where: str,
    overwrite: bool,
    function: str,
) -> Path:
    """Write the verified files ``entries`` into the new folder ``dest`` (``0o700``).

    ``entries`` must come from ``decode_manifest`` (paths already checked); the
    file system still has the last word, through ``O_EXCL`` and ``O_NOFOLLOW``.

    Raises:
        InvalidParameter: ``dest`` names no folder, or is an existing file.
        ArtifactExists: ``dest`` exists and ``overwrite`` is false.
        ArtifactManifestError: two entries are the same file on this file system.
        ArtifactIntegrityError: a file's bytes do not hash to its digest.
        ArtifactError: the parent folder cannot be created or opened.
    """
    target = _Target(dest, is_dir=True, function=function)

    def fill(parent_fd: int, staging: str) -> None:
        os.mkdir(staging, PRIVATE_DIR_MODE, dir_fd=parent_fd)
        root_fd = os.open(staging, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            os.fchmod(root_fd, PRIVATE_DIR_MODE)
            _write_tree(root_fd, entries, open_blob, where)
        finally:
            os.close(root_fd)

    return _materialize(target, overwrite, fill)
