"""Choosing a back-end from a URI: a folder or ``file://`` is local, the rest fsspec."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from loopml.artifacts._backend import Backend
from loopml.artifacts._fsspec import FsspecBackend
from loopml.artifacts._local import LocalBackend
from loopml.errors import InvalidParameter

__all__ = ["backend_from_uri"]

# A one-letter "scheme" is a Windows drive (C:\...), not a URL.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")


def _file_uri_path(uri: str) -> str:
    parts = urlsplit(uri)
    host = "" if parts.netloc in ("", "localhost") else parts.netloc
    # ``file://relative/path`` is read the way fsspec reads it: a relative path.
    return unquote(host + parts.path)


def backend_from_uri(uri: str) -> Backend:
    """Return the back-end for ``uri``.

    Raises:
        InvalidParameter: ``uri`` is empty or not a string, or fsspec does not
            know its protocol.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidParameter(
            "The 'uri' parameter of ArtifactStore.from_uri must be a folder path or "
            f"an fsspec URL such as 's3://bucket/prefix'. Got {uri!r} instead."
        )
    match = _SCHEME.match(uri)
    if match is None and "::" not in uri:
        return LocalBackend(uri)
    if match is not None and match.group(1).lower() == "file":
        return LocalBackend(_file_uri_path(uri))
    return FsspecBackend(uri)
