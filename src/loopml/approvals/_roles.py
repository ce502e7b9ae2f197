"""Approver roles: configuration, never a claim made by the person deciding.

Who holds which role is written in one YAML file (``LOOPML_APPROVER_ROLES``,
default ``LOOPML_HOME/approver-roles.yaml``), role to identities::

    risk: [alice, bob]
    engineering: [carol]

A decision made with a role (``approve(..., role="risk")``, or any decision on a
pipeline gate that names its approvers' role) is accepted only when the file gives
that role to the current identity (:func:`loopml._identity.current_identity`). The
file is read on every decision, so an edit takes effect at once; it is untrusted
input like any other: parsed with ``yaml.safe_load``, size-limited and checked
entry by entry.

Threat model, until governance brings authenticated users: the identity is the
operating-system account of the process, and the roles file is as trustworthy as
the permissions on it. Whoever can edit the file, or run code as another account,
can act as that account.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from loopml import settings
from loopml.errors import RoleNotHeld, SettingError

__all__ = ["ROLES_FILE_LIMIT", "load_roles", "require_role", "roles_file"]

ROLES_FILE_LIMIT = 1 << 20
"""Largest approver-roles file read, in bytes."""

_NAME_LIMIT = 200


def roles_file() -> Path:
    """The approver-roles file in force (it may not exist)."""
    explicit: str | None = settings.get("LOOPML_APPROVER_ROLES")
    if explicit:
        return Path(explicit).expanduser()
    return settings.home() / "approver-roles.yaml"


def load_roles(path: Path | None = None) -> dict[str, frozenset[str]]:
    """Read the approver roles: role name to the identities holding it.

    A missing file means no one holds any role.

    Raises:
        SettingError: the file is too large, does not parse, or is not a mapping of
            role names to lists of identities; the message names the file.
    """
    path = roles_file() if path is None else path
    try:
        with path.open("rb") as file:
            raw = file.read(ROLES_FILE_LIMIT + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingError(f"Cannot read the approver-roles file {path}: {exc}.") from None
    if len(raw) > ROLES_FILE_LIMIT:
        raise SettingError(
            f"The approver-roles file {path} is larger than {ROLES_FILE_LIMIT} bytes."
        )
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: bad UTF-8, a 30 February
        raise SettingError(f"The approver-roles file {path} does not parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingError(
            f"The approver-roles file {path} must map role names to lists of identities "
            f"(e.g. 'risk: [alice, bob]'); got {type(data).__name__}."
        )
    return {
        _name(path, "role name", role): frozenset(_members(path, role, members))
        for role, members in data.items()
    }


def require_role(identity: str, role: str) -> None:
    """Check that the approver-roles file gives ``role`` to ``identity``.

    Raises:
        RoleNotHeld: it does not (the message names identity, role and the file).
        SettingError: the file is malformed.
    """
    path = roles_file()
    roles = load_roles(path)
    if identity in roles.get(role, frozenset()):
        return
    if not path.exists():
        where = f"there is no approver-roles file ({path} does not exist)"
    elif role not in roles:
        where = f"the approver-roles file {path} defines no role {role!r}"
    else:
        where = f"the approver-roles file {path} does not list {identity!r} under {role!r}"
    raise RoleNotHeld(
        f"{identity!r} does not hold the approver role {role!r}: {where}. Roles are "
        "configuration (LOOPML_APPROVER_ROLES), not something a decision can claim.",
        identity,
        role,
    )


def _members(path: Path, role: object, members: object) -> list[str]:
    if not isinstance(members, list):
        raise SettingError(
            f"The approver-roles file {path}: role {role!r} must list identities "
            f"(e.g. [alice, bob]); got {type(members).__name__}."
        )
    return [_name(path, f"identity under {role!r}", member) for member in members]


def _name(path: Path, what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _NAME_LIMIT:
        raise SettingError(
            f"The approver-roles file {path}: each {what} must be a non-empty string of at "
            f"most {_NAME_LIMIT} characters; got {value!r}."
        )
    return value
