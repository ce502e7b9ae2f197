"""Directory manifests: the JSON blob that lists a directory's files.

A manifest is canonical JSON, so the same directory always gets the same
digest::

    {"loopml_manifest":1,"entries":[{"path":"a/b.txt","digest":"…","size":3}]}

The ``loopml_manifest`` key comes first and holds the format version; it is what
makes a blob recognisable as a manifest. Paths are relative, ``/``-separated and
sorted; empty folders are not recorded.

Manifests are untrusted input: anyone who can write to the store can craft one.
Decoding refuses every path that could leave the folder it is materialised in,
duplicates, a path that is both a file and a folder, and anything beyond the
``MAX_*`` limits below, before a single byte is written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.artifacts._digest import is_digest

__all__ = [
    "MANIFEST_MARKER",
    "MANIFEST_VERSION",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_MANIFEST_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "ManifestEntry",
    "ManifestFormatError",
    "check_entry_count",
    "decode_manifest",
    "encode_manifest",
    "iter_files",
    "looks_like_manifest",
    "prefix_length",
    "safe_path",
]

MANIFEST_MARKER = "loopml_manifest"
MANIFEST_VERSION = 1
_PREFIX = b'{"' + MANIFEST_MARKER.encode() + b'":'
_DRIVE = re.compile(r"[A-Za-z]:")

#: Most files one stored directory may hold.
MAX_ENTRIES = 100_000
#: Longest relative path of a file in a stored directory, in bytes.
MAX_PATH_BYTES = 1024
#: Longest single file or folder name, in bytes (most file systems' limit).
MAX_NAME_BYTES = 255
#: Most names in one relative path (folders plus the file).
MAX_DEPTH = 32
#: Largest manifest blob read, in bytes.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a stored directory.

    Attributes:
        path: the file's path relative to the directory, ``/``-separated.
        digest: the digest of the file's blob.
        size: the file's size in bytes.
    """

    path: str
    digest: str
    size: int


class ManifestFormatError(ValueError):
    """A blob starts like a manifest but is not a valid one."""


def encode_manifest(entries: list[ManifestEntry]) -> bytes:
    """Return the canonical bytes of a manifest listing ``entries``."""
    ordered = sorted(entries, key=lambda entry: entry.path)
    document = {
        MANIFEST_MARKER: MANIFEST_VERSION,
        "entries": [{"path": e.path, "digest": e.digest, "size": e.size} for e in ordered],
    }
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def looks_like_manifest(head: bytes) -> bool:
    """Tell from the first bytes of a blob whether it may be a manifest."""
    return head.startswith(_PREFIX)


def prefix_length() -> int:
    """Return how many leading bytes :func:`looks_like_manifest` needs."""
    return len(_PREFIX)


def safe_path(path: object) -> str:
    """Return ``path`` if it is a relative path that stays inside its directory.

    The path comes from a manifest anyone with write access to the store may
    have crafted, so it is held to what every supported file system can hold
    without surprises.

    Raises:
        ManifestFormatError: ``path`` is not a string, is empty, absolute, starts
            with a drive letter, has ``.``/``..`` or empty parts, a backslash or
            a NUL character, or exceeds :data:`MAX_PATH_BYTES`,
            :data:`MAX_NAME_BYTES` or :data:`MAX_DEPTH`.
    """
    if not isinstance(path, str) or not path:
        raise ManifestFormatError(f"bad path {path!r}: not a non-empty string")
    if "\x00" in path or "\\" in path:
        raise ManifestFormatError(f"bad path {path!r}: it holds a NUL or a backslash")
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ManifestFormatError(f"path {path!r} leaves its directory")
    if _DRIVE.match(parts[0]):
        raise ManifestFormatError(f"path {path!r} starts with a drive letter")
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ManifestFormatError(f"path {path[:80]!r}... is longer than {MAX_PATH_BYTES} bytes")
    if len(parts) > MAX_DEPTH:
        raise ManifestFormatError(f"path {path[:80]!r} is more than {MAX_DEPTH} folders deep")
    for part in parts:
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            raise ManifestFormatError(
                f"path {path[:80]!r} has a name longer than {MAX_NAME_BYTES} bytes"
            )
    return path


def check_entry_count(count: int) -> None:
    """Refuse a manifest of more than :data:`MAX_ENTRIES` files.

    Raises:
        ManifestFormatError: ``count`` exceeds the limit.
    """
    if count > MAX_ENTRIES:
        raise ManifestFormatError(f"{count} entries, more than the limit of {MAX_ENTRIES}")


def _check_tree(paths: set[str]) -> None:
    folders: set[str] = set()
    for path in paths:
        parts = path.split("/")
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    both = sorted(paths & folders)
    if both:
        raise ManifestFormatError(f"path {both[0]!r} is listed both as a file and as a folder")


def decode_manifest(data: bytes) -> list[ManifestEntry]:
    """Parse manifest bytes.

    Raises:
        ManifestFormatError: ``data`` is not a manifest this version can read,
            or it lists an unsafe path (see :func:`safe_path`), the same path
            twice, a path that is also a folder of another, a bad digest or
            size, more than :data:`MAX_ENTRIES` entries, or is larger than
            :data:`MAX_MANIFEST_BYTES`.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestFormatError(f"{len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        document: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestFormatError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or MANIFEST_MARKER not in document:
        raise ManifestFormatError("no manifest marker")
    version = document[MANIFEST_MARKER]
    if version != MANIFEST_VERSION:
        raise ManifestFormatError(f"unknown manifest version {version!r}")
    raw_entries = document.get("entries")
    if not isinstance(raw_entries, list):
        raise ManifestFormatError("'entries' is not a list")
    check_entry_count(len(raw_entries))
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for raw in raw_entries:
        if not isinstance(raw, dict):
            raise ManifestFormatError(f"entry {raw!r} is not an object")
        path = safe_path(raw.get("path"))
        digest, size = raw.get("digest"), raw.get("size")
        if not is_digest(digest):
            raise ManifestFormatError(f"entry {path!r} has a bad digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestFormatError(f"entry {path!r} has a bad size {size!r}")
        if path in seen:
            raise ManifestFormatError(f"path {path!r} is listed twice")
        seen.add(path)
        entries.append(ManifestEntry(path, digest, size))
    _check_tree(seen)
    return entries


def _raise(exc: OSError) -> None:
    # os.walk skips unreadable folders silently; a stored directory missing
    # files without notice would be worse than an error.
    raise exc


def iter_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, absolute path)`` of every file below ``root``.

    Symbolic links to files are followed (their content is stored); links to
    folders are not descended into, which also rules out cycles.
    """
    for folder, dirnames, filenames in os.walk(root, onerror=_raise):
        dirnames.sort()
        base = Path(folder)
        for name in sorted(filenames):
            path = base / name
            if path.is_file():
                yield path.relative_to(root).as_posix(), path
