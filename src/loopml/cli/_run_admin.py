"""Run housekeeping commands of ``loopml runs``: delete, restore, mark-failed, tag, untag, env.

Registered on the ``runs`` group by :mod:`._runs` (see :data:`COMMANDS`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from loopml.cli._client import open_client
from loopml.cli._format import short_id
from loopml.cli._options import Json
from loopml.cli._output import out, print_json

__all__ = ["COMMANDS"]

_RunIds = Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes).", metavar="RUN")]
_RunId = Annotated[str, typer.Argument(help="The run id (or a unique prefix).", metavar="RUN")]


class EnvFormat(StrEnum):
    """How ``runs env`` prints packages."""

    requirements = "requirements"
    json = "json"
    table = "table"


_Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def delete(
    run_ids: _RunIds,
    yes: _Yes = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also delete runs still running (with a live heartbeat) or waiting."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Delete runs, with their child runs (pipeline steps, trials).

    Deleted runs leave 'runs list' and searches but can be restored with 'loopml
    runs restore' until 'loopml gc' removes them for good, once deleted longer than
    LOOPML_GC_DELETED_GRACE (30 days). Asks for confirmation on a terminal unless
    --yes; without a terminal, --yes is required. A run still running is refused
    unless --force (or 'loopml runs mark-failed' it first if its process is gone).
    """
    with open_client() as client:
        ids = [client.resolve_run_id(run_id) for run_id in run_ids]
        if not yes:
            _confirm(f"Delete {_count(ids)} (and any child runs)?")
        deleted = client.delete_runs(ids, force=force)
    if as_json:
        print_json({"deleted": deleted, "runs": ids})
        return
    children = len(deleted) - len(ids)
    tail = f", with {children} child run(s)" if children > 0 else ""
    out().print(
        f"Deleted {_count(ids)}{tail}: {', '.join(short_id(r) for r in ids)}. "
        "'loopml runs restore' brings them back until 'loopml gc' removes them.",
        highlight=False,
    )


def restore(run_ids: _RunIds, as_json: Json = False) -> None:
    """Restore deleted runs, with the child runs deleted with them."""
    with open_client() as client:
        ids = [client.resolve_run_id(run_id) for run_id in run_ids]
        restored = client.restore_runs(ids)
    if as_json:
        print_json({"restored": restored, "runs": ids})
        return
    children = len(restored) - len(ids)
    tail = f", with {children} child run(s)" if children > 0 else ""
    out().print(
        f"Restored {_count(ids)}{tail}: {', '.join(short_id(r) for r in ids)}.", highlight=False
    )


def mark_failed(
    run_id: _RunId,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why: kept as the run's failure message."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Mark a running run failed: for a run whose process died (shown as lost).

    Sets its end time to now and its failure to the reason. A run that has ended
    already (finished, failed, killed) is refused.
    """
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        client.mark_run_failed(run_id, reason)
        run = client.get_run(run_id)
    failure = run.failure or {}
    if as_json:
        print_json({"run_id": run_id, "status": run.status, "failure": failure})
        return
    out().print(
        f"Marked run {run_id} failed: {failure.get('message', '')}",
        highlight=False,
        markup=False,
    )


def tag(
    run_id: _RunId,
    pairs: Annotated[list[str], typer.Argument(help="Tags as KEY=VALUE (the value may be empty).")],
    as_json: Json = False,
) -> None:
    """Set (or overwrite) tags of a run: loopml runs tag RUN team=vision stage=tuned."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(
                f"{pair!r} is not KEY=VALUE (e.g. team=vision).", param_hint="KEY=VALUE"
            )
        tags[key] = value
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        client.set_tags(run_id, tags)
        current = dict(client.get_run(run_id).tags)
    if as_json:
        print_json({"run_id": run_id, "tags": current})
        return
    out().print(f"Tagged run {run_id}: {', '.join(tags)}.", highlight=False, markup=False)


def untag(
    run_id: _RunId,
    keys: Annotated[list[str], typer.Argument(help="Tag keys to remove.", metavar="KEY")],
    as_json: Json = False,
) -> None:
    """Remove tags from a run (all or, if one is missing, none)."""
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        client.delete_tags(run_id, keys)
        current = dict(client.get_run(run_id).tags)
    if as_json:
        print_json({"run_id": run_id, "removed": keys, "tags": current})
        return
    out().print(f"Removed from run {run_id}: {', '.join(keys)}.", highlight=False, markup=False)


def env(
    run_id: _RunId,
    format: Annotated[
        EnvFormat,
        typer.Option(
            "--format",
            help="requirements: pip lines name==version; json: an object; table.",
        ),
    ] = EnvFormat.requirements,
    as_json: Json = False,
) -> None:
    """Print the packages installed when a run started (its captured environment).

    'loopml runs env RUN > requirements.txt' writes a pip requirements file.
    """
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        packages = client.get_environment(run_id)
        python = client.get_run(run_id).context.get("python_version")
    if as_json or format is EnvFormat.json:
        print_json({"run_id": run_id, "python_version": python, "packages": packages})
        return
    if format is EnvFormat.requirements:
        sys.stdout.write("".join(f"{name}=={version}\n" for name, version in packages.items()))
        sys.stdout.flush()
        return
    table = Table(
        title=f"Environment of run {short_id(run_id)}: {len(packages)} packages, "
        f"Python {python or '?'}",
        title_justify="left",
    )
    table.add_column("package")
    table.add_column("version")
    for name, version in packages.items():
        table.add_row(name, version)
    out().print(table)


def _count(ids: list[str]) -> str:
    return f"{len(ids)} run" + ("" if len(ids) == 1 else "s")


def _confirm(question: str) -> None:
    """Ask on a terminal; refuse (usage error, exit 2) without one, rather than hang."""
    if not sys.stdin.isatty():
        raise typer.BadParameter(
            "not asking for confirmation without a terminal; pass --yes to delete.",
            param_hint="--yes",
        )
    if not typer.confirm(question, default=False):
        out().print("Nothing deleted.")
        raise typer.Exit(1)


COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("delete", delete),
    ("restore", restore),
    ("mark-failed", mark_failed),
    ("tag", tag),
    ("untag", untag),
    ("env", env),
)
"""The commands, by name, that :mod:`._runs` adds to the ``runs`` group."""
