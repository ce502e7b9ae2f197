"""Human approvals: requests, decisions and the record of who decided what, when and why.

One table serves every kind of gate (pipeline approval gates now, model promotions
later), so there is one CLI group and one trail.

A decision is always made as :func:`current_identity` (the operating-system
account): no public call takes the name of someone else. A request that names its
approvers' role can be decided only by an identity the approver-roles file gives
that role (see :mod:`loopml.approvals._roles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError

from loopml._identity import current_identity
from loopml.approvals._roles import require_role
from loopml.errors import ApprovalError, InvalidParameter
from loopml.store import Store, now_ms, tables

__all__ = ["Approval", "ApprovalClient", "current_identity", "deciding_identity"]

_approval = tables.APPROVAL
_STATUSES = ("pending", "approved", "rejected")


@dataclass(frozen=True)
class Approval:
    """A request for a decision on an object (``object_kind``/``object_id``) at a named gate."""

    id: int
    object_kind: str
    object_id: str
    gate: str
    message: str
    approvers_role: str | None
    status: str
    requested_by: str | None
    requested_at: int
    decided_by: str | None
    decided_at: int | None
    comment: str | None


class ApprovalClient:
    """Request, list and decide approvals in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def request(
        self,
        object_kind: str,
        object_id: str,
        gate: str,
        message: str,
        approvers_role: str | None = None,
    ) -> Approval:
        """Ask for a decision; asking again for the same gate returns the existing request."""
        if not message or not isinstance(message, str):
            raise InvalidParameter("An approval request needs a message saying what to decide.")
        existing = self.find(object_kind, object_id, gate)
        if existing is not None:
            return existing
        try:
            with self.store.write() as conn:
                conn.execute(
                    _approval.insert().values(
                        object_kind=object_kind,
                        object_id=object_id,
                        gate=gate,
                        message=message,
                        approvers_role=approvers_role,
                        status="pending",
                        requested_by=current_identity(),
                        requested_at=now_ms(),
                    )
                )
        except IntegrityError:
            pass  # another process asked at the same moment; its request stands
        found = self.find(object_kind, object_id, gate)
        if found is None:  # pragma: no cover - the row was just written
            raise ApprovalError(f"Could not record the approval request for {gate!r}.")
        return found

    def find(self, object_kind: str, object_id: str, gate: str) -> Approval | None:
        """Return the request for one gate of one object, if any."""
        with self.store.read() as conn:
            row = conn.execute(
                select(_approval).where(
                    _approval.c.object_kind == object_kind,
                    _approval.c.object_id == object_id,
                    _approval.c.gate == gate,
                )
            ).first()
        return None if row is None else _record(row)

    def get(self, approval_id: int) -> Approval:
        """Return one approval.

        Raises:
            ApprovalError: no approval has that id.
        """
        with self.store.read() as conn:
            row = conn.execute(select(_approval).where(_approval.c.id == approval_id)).first()
        if row is None:
            raise ApprovalError(f"No approval with id {approval_id}.")
        return _record(row)

    def list(self, status: str | None = None, object_kind: str | None = None) -> list[Approval]:
        """Return approvals, newest first, optionally only those with ``status``."""
        if status is not None and status not in _STATUSES:
            raise InvalidParameter(
                f"The 'status' parameter must be one of {list(_STATUSES)}; got {status!r}."
            )
        query = select(_approval).order_by(_approval.c.requested_at.desc(), _approval.c.id.desc())
        if status is not None:
            query = query.where(_approval.c.status == status)
        if object_kind is not None:
            query = query.where(_approval.c.object_kind == object_kind)
        with self.store.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def decide(
        self,
        approval_id: int,
        decision: Literal["approved", "rejected"],
        comment: str | None = None,
    ) -> Approval:
        """Record the current identity's decision on a pending approval.

        Raises:
            ApprovalError: unknown id, the approval was already decided (deciding
                twice is refused, and nothing changes), or who is deciding is unknown.
            RoleNotHeld: the request names its approvers' role and the current
                identity does not hold it by configuration.
        """
        if decision not in ("approved", "rejected"):
            raise InvalidParameter(f"A decision is 'approved' or 'rejected'; got {decision!r}.")
        who = deciding_identity()
        current = self.get(approval_id)  # raises for an unknown id
        if current.status == "pending" and current.approvers_role is not None:
            require_role(who, current.approvers_role)
        with self.store.write() as conn:
            done = conn.execute(
                update(_approval)
                .where(_approval.c.id == approval_id, _approval.c.status == "pending")
                .values(status=decision, decided_by=who, decided_at=now_ms(), comment=comment)
            )
        if done.rowcount == 0:
            current = self.get(approval_id)
            raise ApprovalError(
                f"Approval {approval_id} was already {current.status} by "
                f"{current.decided_by or 'someone'}; a decision cannot be changed."
            )
        return self.get(approval_id)


def deciding_identity() -> str:
    """The identity a decision is recorded under: the current OS account.

    Raises:
        ApprovalError: the account cannot be determined; an anonymous decision would
            count as somebody's, so none is recorded.
    """
    who = current_identity()
    if not who:
        raise ApprovalError(
            "Cannot tell who is deciding: the operating-system user name is unknown, and a "
            "decision is only recorded under the identity that made it."
        )
    return who


def _record(row: Row[Any]) -> Approval:
    return Approval(
        id=row.id,
        object_kind=row.object_kind,
        object_id=row.object_id,
        gate=row.gate,
        message=row.message,
        approvers_role=row.approvers_role,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
    )
