"""``loopml approvals …``: list the decisions people are asked for, approve or reject them.

A thin face over :class:`loopml.approvals.ApprovalClient`. A decision records who
decided (the current operating-system account; there is no option to decide as
someone else), when and why (``--comment``); deciding an approval twice, or
deciding a gate whose approvers' role the approver-roles file does not give you,
is refused (the app's one red line, exit 1) and changes nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_time, short_id
from loopml.cli._options import Comment, Json
from loopml.cli._output import out, print_json, to_jsonable

if TYPE_CHECKING:
    from loopml.approvals import Approval, ApprovalClient

__all__ = ["app"]

app = typer.Typer(
    help="List approvals and record decisions (pipeline approval gates).", no_args_is_help=True
)

_STYLES = {"pending": "bold yellow", "approved": "green", "rejected": "magenta"}


class Status(StrEnum):
    """The states of an approval."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"


_Id = Annotated[int, typer.Argument(help="The approval id (see 'loopml approvals list').")]


def _client() -> ApprovalClient:
    from loopml.approvals import ApprovalClient
    from loopml.tracking import get_client

    return ApprovalClient(get_client().store)


@app.command("list")
def list_approvals(
    status: Annotated[
        Status | None, typer.Option("--status", "-s", help="Only approvals in this state.")
    ] = None,
    as_json: Json = False,
) -> None:
    """List approvals, newest first: what is asked, of whom, and what was decided."""
    approvals = _client().list(status.value if status else None)
    if as_json:
        print_json(to_jsonable(approvals))
        return
    if not approvals:
        which = f"{status.value} " if status else ""
        out().print(f"No {which}approvals.", style="dim")
        return
    console = out()
    console.print(_table(approvals, console.width))


@app.command("approve")
def approve(approval_id: _Id, comment: Comment = None, as_json: Json = False) -> None:
    """Approve: the gate opens, and 'loopml pipelines resume RUN_ID' goes past it."""
    _decide(approval_id, "approved", comment, as_json=as_json)


@app.command("reject")
def reject(approval_id: _Id, comment: Comment = None, as_json: Json = False) -> None:
    """Reject: 'loopml pipelines resume RUN_ID' then ends the run as rejected."""
    _decide(approval_id, "rejected", comment, as_json=as_json)


@app.command("roles")
def roles(as_json: Json = False) -> None:
    """Show the approver roles and who holds them (the file LOOPML_APPROVER_ROLES names)."""
    from loopml.approvals import current_identity, load_roles, roles_file

    path = roles_file()
    held = load_roles(path)
    if as_json:
        print_json(
            {"file": str(path), "roles": {role: sorted(who) for role, who in sorted(held.items())}}
        )
        return
    console = out()
    if not held:
        console.print(
            f"No approver roles: {path} does not exist or is empty. Write it as YAML, "
            "role to identities, e.g. 'risk: [alice, bob]'.",
            style="dim",
            highlight=False,
            soft_wrap=True,
        )
        return
    me = current_identity()
    console.print(f"You are {me or 'unknown'}.", highlight=False)
    table = Table(title=f"Approver roles ({path})", title_justify="left")
    table.add_column("role", style="bold", no_wrap=True)
    table.add_column("identities", overflow="fold")
    for role, who in sorted(held.items()):
        table.add_row(role, ", ".join(sorted(who)))
    console.print(table)


def _decide(
    approval_id: int,
    decision: Literal["approved", "rejected"],
    comment: str | None,
    *,
    as_json: bool,
) -> None:
    approval = _client().decide(approval_id, decision, comment)
    if as_json:
        print_json(to_jsonable(approval))
        return
    console = out()
    style = _STYLES[approval.status]
    who = f" by {approval.decided_by}" if approval.decided_by else ""
    console.print(
        f"[{style}]{approval.status.capitalize()}[/] approval {approval.id}{who}: "
        f"gate {approval.gate!r} of pipeline {_object(approval)}."
        if approval.object_kind == "pipeline_run"
        else f"gate {approval.gate!r} of {_object(approval)}.",
        highlight=False,
        soft_wrap=True,
    )
    if approval.object_kind == "pipeline_run":
        what = "continue past the gate" if decision == "approved" else "end it as rejected"
        console.print(
            f"  To {what}: [bold]loopml pipelines resume {approval.object_id}[/]",
            highlight=False,
            soft_wrap=True,
        )


def _object(approval: Approval) -> str:
    if approval.object_kind == "pipeline_run":
        return f"run {short_id(approval.object_id)}"
    return f"{approval.object_kind} {approval.object_id}"


def _table(approvals: list[Approval], width: int) -> Table:
    """One row per approval; narrow consoles (``width``) drop the gate, who asked and when."""
    show_gate, show_requested = width >= 100, width >= 120
    table = Table(title="Approvals, newest first", title_justify="left")
    table.add_column("id", style="bold", justify="right", no_wrap=True, min_width=2)
    table.add_column("status", no_wrap=True, min_width=8)
    table.add_column("for", overflow="fold", min_width=12)
    if show_gate:
        table.add_column("gate", overflow="fold", min_width=8)
    table.add_column("message", overflow="fold", min_width=10)
    if show_requested:
        table.add_column("requested", no_wrap=True)
    table.add_column("decided", overflow="fold", min_width=11)
    table.add_column("comment", overflow="fold", min_width=8)
    for approval in approvals:
        decided = ""
        if approval.decided_at is not None:
            decided = fmt_time(approval.decided_at, short=True)
            if approval.decided_by:
                decided += f" by {approval.decided_by}"
        if approval.approvers_role:
            message = f"{approval.message} (role: {approval.approvers_role})"
        else:
            message = approval.message
        cells: list[str | Text] = [
            str(approval.id),
            Text(approval.status, style=_STYLES.get(approval.status, "")),
            _object(approval),
        ]
        if show_gate:
            cells.append(approval.gate)
        cells.append(message)
        if show_requested:
            requested = fmt_time(approval.requested_at, short=True)
            if approval.requested_by:
                requested += f" by {approval.requested_by}"
            cells.append(requested)
        cells.extend([decided, approval.comment or ""])
        table.add_row(*cells)
    return table
