"""Directory manifests: the JSON blob that lists a directory's files.

A manifest is canonical JSON, so the same directory always gets the same
digest::

    {"loopml_manifest":1,"entries":[{"path":"a/b.txt","digest":"…","size":3}]}

The ``loopml_manifest`` key comes first and holds the format version; it is what
makes a blob recognisable as a manifest. Paths are relative, ``/``-separated and
sorted; empty folders are not recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from loopml.artifacts._digest import is_digest

__all__ = [
    "MANIFEST_MARKER",
    "MANIFEST_VERSION",
    "ManifestEntry",
    "ManifestFormatError",
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

    Raises:
        ManifestFormatError: ``path`` is empty, absolute, has ``.``/``..`` or
            empty parts, a backslash or a NUL character.
    """
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise ManifestFormatError(f"bad path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise ManifestFormatError(f"path {path!r} leaves its directory")
    return path


def decode_manifest(data: bytes) -> list[ManifestEntry]:
    """Parse manifest bytes.

    Raises:
        ManifestFormatError: ``data`` is not a manifest this version can read,
            or it lists an unsafe path (absolute, ``..``) or a bad digest.
    """
    try:
        document: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestFormatError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or MANIFEST_MARKER not in document:
        raise ManifestFormatError("no manifest marker")
    version = document[MANIFEST_MARKER]
    if version != MANIFEST_VERSION:
        raise ManifestFormatError(f"unknown manifest version {version!r}")
    raw_entries = document.get("entries")
    if not isinstance(raw_entries, list):
        raise ManifestFormatError("'entries' is not a list")
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
