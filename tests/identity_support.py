"""Acting as several people in one test process (tests only, never part of loopml).

loopml takes the deciding identity from the operating-system account
(by user id, through ``loopml._identity.current_identity``) and offers
no public way to act in someone else's name. Tests that need two people patch
that one source for the duration of the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loopml import _identity


def act_as(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``name`` the current identity until the test ends (or the next call)."""
    monkeypatch.setattr(_identity, "_account_name", lambda: name)


def give_roles(home: Path, roles: dict[str, list[str]]) -> Path:
    """Write the approver-roles file of LOOPML_HOME ``home`` (role to identities)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "approver-roles.yaml"
    path.write_text(yaml.safe_dump(roles), encoding="utf-8")
    return path
