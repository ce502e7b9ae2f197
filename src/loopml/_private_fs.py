"""Owner-only folders and files: how loopml creates everything it keeps on disk.

The store, its blobs and its logs hold other people's data (prediction inputs,
training sets, models), so every folder loopml creates under ``LOOPML_HOME`` or in
a local artifact store is ``0o700`` and every file ``0o600``, whatever the umask.
The umask can only remove bits from the mode given to ``mkdir``/``open``, so the
mode is set again with ``fchmod`` on the new object's descriptor, which a symlink
swapped in after creation cannot redirect. Existing folders and files are left
as they are: an administrator may have widened them on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "make_private_dirs",
    "open_private_file",
]

#: Mode of every folder loopml creates for its own data.
PRIVATE_DIR_MODE = 0o700
#: Mode of every file loopml creates for its own data.
PRIVATE_FILE_MODE = 0o600

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _fix_dir_mode(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    try:
        os.fchmod(fd, PRIVATE_DIR_MODE)
    finally:
        os.close(fd)


def make_private_dirs(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents, each new one ``0o700``.

    Like ``mkdir -p -m 700``, but the mode also applies to the parents created.
    Folders that already exist keep their mode.

    Args:
        path: the folder to create.

    Returns:
        ``path`` as an absolute :class:`~pathlib.Path`.

    Raises:
        OSError: a component exists and is not a folder, or cannot be created.
    """
    folder = Path(path).expanduser().absolute()
    missing: list[Path] = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for component in reversed(missing):
        try:
            component.mkdir(PRIVATE_DIR_MODE)
        except FileExistsError:
            if not component.is_dir():
                raise
            continue  # another process made it first; its mode is its own
        _fix_dir_mode(component)
    return folder


def open_private_file(path: str | os.PathLike[str], flags: int) -> int:
    """Create the file ``path`` with mode ``0o600`` and return an open descriptor.

    The file must not exist (``O_EXCL``) and a symlink at ``path`` is never
    followed (``O_NOFOLLOW``), so the descriptor is always of a new file.

    Args:
        path: the file to create.
        flags: extra ``os.O_*`` flags, such as ``os.O_WRONLY`` or ``os.O_APPEND``.

    Raises:
        FileExistsError: ``path`` exists (even as a dangling symlink).
        OSError: the file cannot be created.
    """
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create the empty file ``path`` with mode ``0o600`` unless something is there.

    Used before handing a path to a library that creates files with its own
    mode (SQLite creates its database ``0o644``; its ``-wal`` and ``-shm`` files
    then copy the database's mode).

    Returns:
        Whether the file was created (``False``: it already existed, unchanged).

    Raises:
        OSError: the file cannot be created.
    """
    try:
        fd = open_private_file(path, os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True
