"""Human approvals shared by pipeline gates and model promotions."""

from __future__ import annotations

from loopml.approvals._client import Approval, ApprovalClient, current_identity

__all__ = ["Approval", "ApprovalClient", "current_identity"]
