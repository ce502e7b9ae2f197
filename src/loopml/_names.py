"""The one rule for names of datasets, models and endpoints, and for version numbers."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from loopml.errors import InvalidParameter

__all__ = ["MAX_VERSION", "check_name", "closest", "version_number"]

MAX_VERSION = 2**31 - 1
"""The highest version number the store's integer columns hold on every back-end."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it can name a ``kind`` (letters, digits, ``_ . -``; at most 200).

    Raises:
        InvalidParameter: naming the kind and what was given.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidParameter(
            f"A {kind} name must start with a letter or digit and use only letters, digits, "
            f"'_', '.' and '-' (at most 200 characters); got {name!r}."
        )
    return name


def version_number(digits: str, ref: str) -> int:
    """The version number written as ``digits`` in reference ``ref``.

    Raises:
        InvalidParameter: the number is over :data:`MAX_VERSION` (checked before
            converting, so thousands of digits cost nothing).
    """
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        raise InvalidParameter(
            f"The version number in {ref[:80]!r} is too large: at most {MAX_VERSION}."
        )
    return int(digits)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (for "did you mean ...?"), or ``None``."""
    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return found[0] if found else None
