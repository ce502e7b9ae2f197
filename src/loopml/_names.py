"""The one rule for names of datasets, models and endpoints."""

from __future__ import annotations

import re

from loopml.errors import InvalidParameter

__all__ = ["check_name"]

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
