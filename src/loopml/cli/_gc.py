"""``loopml gc``: find, and with --yes delete, artifact blobs nothing refers to."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from loopml.cli._client import open_client
from loopml.cli._format import fmt_bytes
from loopml.cli._output import out, print_json

__all__ = ["gc"]


def gc(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete for real (default: a dry run).")
    ] = False,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            help="Keep blobs younger than this many seconds (default: LOOPML_GC_GRACE).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Garbage-collect the artifact store: blobs no run, dataset or model refers to.

    A dry run unless --yes is given: it prints what would be deleted and how many
    bytes that would free.
    """
    from loopml import settings
    from loopml.maintenance import collect_garbage

    grace_seconds = float(settings.get("LOOPML_GC_GRACE")) if grace is None else grace
    with open_client() as client:
        report = collect_garbage(
            client.store, client.artifacts, dry_run=not yes, grace_seconds=grace_seconds
        )
    if as_json:
        print_json(
            {
                "dry_run": report.dry_run,
                "grace_seconds": grace_seconds,
                "referenced": report.referenced,
                "kept_young": report.kept_young,
                "unreferenced": [{"digest": d, "size": s} for d, s in report.unreferenced],
                "reclaimable_bytes": report.reclaimable_bytes,
            }
        )
        return
    console = out()
    if report.unreferenced:
        table = Table(title="Unreferenced blobs", title_justify="left")
        table.add_column("digest", no_wrap=True)
        table.add_column("size", justify="right")
        for digest, size in report.unreferenced:
            table.add_row(digest, fmt_bytes(size))
        console.print(table)
    count, reclaimable = len(report.unreferenced), fmt_bytes(report.reclaimable_bytes)
    verb = "would be deleted" if report.dry_run else "deleted"
    console.print(
        f"{count} unreferenced blob(s), {reclaimable}, {verb}; {report.referenced} referenced, "
        f"{report.kept_young} younger than {grace_seconds:g}s kept.",
        highlight=False,
    )
    if report.dry_run and report.unreferenced:
        console.print("Dry run: rerun with --yes to delete them.", style="bold")
