"""Who is acting: one answer for runs, datasets, approvals and alias moves."""

from __future__ import annotations

import getpass

__all__ = ["current_identity"]


def current_identity() -> str | None:
    """The operating-system user (governance will add real identities), or None if unknown."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
