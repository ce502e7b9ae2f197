"""Who is acting: one answer for runs, datasets, approvals and alias moves."""

from __future__ import annotations

import os

__all__ = ["current_identity"]


def current_identity() -> str | None:
    """The operating-system account this process runs as, or None if it has no name.

    The name is looked up by the process's user id in the account database, not read
    from ``USER`` or ``LOGNAME``, which anyone starting a process can set
    (``USER=alice loopml models approve …`` must not approve as alice). Governance
    will replace this with authenticated identities.
    """
    return _account_name()


def _account_name() -> str | None:
    try:
        import pwd
    except ImportError:  # not a POSIX system: the login name is all there is
        import getpass

        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return None
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no account entry (common in containers)
        return None
