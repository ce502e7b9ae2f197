"""Digests (the addresses of blobs) and the key layout that stores them."""

from __future__ import annotations

import re
from typing import TypeGuard

from loopml.errors import InvalidParameter

__all__ = [
    "BLOB_PREFIX",
    "CHUNK_SIZE",
    "TMP_PREFIX",
    "blob_key",
    "check_digest",
    "digest_of_key",
    "is_digest",
]

#: Bytes moved per read or write when streaming; bounds the memory of every copy.
CHUNK_SIZE = 1024 * 1024

#: Key prefix of published blobs: ``blobs/ab/abcdef…`` (two-character fan-out).
BLOB_PREFIX = "blobs"

#: Key prefix of writes in progress; nothing under it is ever a blob.
TMP_PREFIX = "tmp"

_DIGEST = re.compile(r"[0-9a-f]{64}")


def is_digest(text: object) -> TypeGuard[str]:
    """Tell whether ``text`` is a well-formed blob address.

    A digest is the SHA-256 hex digest of the blob's bytes: 64 lowercase
    hexadecimal characters.

    Args:
        text: the value to test; any type is accepted.

    Returns:
        ``True`` when ``text`` is a string of 64 lowercase hex characters.

    Example:
        >>> is_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        True
        >>> is_digest("../../etc/passwd")
        False
    """
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None


def check_digest(digest: object, function: str, parameter: str = "digest") -> str:
    """Return ``digest`` unchanged if it is well formed.

    Raises:
        InvalidParameter: ``digest`` is not 64 lowercase hex characters; the
            message names ``parameter`` of ``function`` and what was got.
    """
    if not is_digest(digest):
        shown = repr(digest)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise InvalidParameter(
            f"The {parameter!r} parameter of {function} must be a SHA-256 hex digest "
            f"(64 lowercase hex characters). Got {shown} instead."
        )
    return digest


def blob_key(digest: str) -> str:
    """Return the back-end key of a (validated) digest: ``blobs/ab/abcdef…``."""
    return f"{BLOB_PREFIX}/{digest[:2]}/{digest}"


def digest_of_key(key: str) -> str | None:
    """Return the digest a key publishes, or ``None`` if it is not a blob key."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != BLOB_PREFIX:
        return None
    fan_out, digest = parts[1], parts[2]
    if not is_digest(digest) or digest[:2] != fan_out:
        return None
    return digest
