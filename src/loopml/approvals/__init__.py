"""Human approvals shared by pipeline gates and model promotions.

Decisions are made as the current identity only; approver roles are configuration
(:func:`roles_file`), checked on every decision that names a role.
"""

from __future__ import annotations

from loopml.approvals._client import (
    Approval,
    ApprovalClient,
    current_identity,
    deciding_identity,
)
from loopml.approvals._roles import load_roles, require_role, roles_file

__all__ = [
    "Approval",
    "ApprovalClient",
    "current_identity",
    "deciding_identity",
    "load_roles",
    "require_role",
    "roles_file",
]
