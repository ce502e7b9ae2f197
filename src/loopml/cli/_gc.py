"""``loopml gc``: purge long-deleted runs and dataset versions, and delete artifact blobs
nothing refers to (a dry run unless --yes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from loopml.cli._client import open_client
from loopml.cli._format import fmt_bytes, fmt_duration
from loopml.cli._output import out, print_json

if TYPE_CHECKING:
    from loopml.maintenance import PurgeReport

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
    deleted_grace: Annotated[
        str | None,
        typer.Option(
            "--deleted-grace",
            help="Purge runs and dataset versions deleted longer ago than this "
            "(30d, 12h, 0s …; default: LOOPML_GC_DELETED_GRACE, 30d).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Garbage-collect: purge runs and dataset versions deleted long ago, then delete the
    artifact blobs no run, dataset or model refers to.

    A dry run unless --yes is given: it prints what would be purged and deleted and
    how many bytes that would free. A deleted dataset version that a run, a model
    version or a kept dataset version still uses is kept, and the report says why.
    """
    from loopml import settings
    from loopml.maintenance import collect_garbage

    if grace is not None and not grace >= 0:  # also refuses nan
        raise typer.BadParameter(
            f"{grace:g}: the grace must be a number of seconds >= 0.", param_hint="--grace"
        )
    grace_seconds = float(settings.get("LOOPML_GC_GRACE")) if grace is None else grace
    deleted_grace_seconds = _deleted_grace(deleted_grace)
    with open_client() as client:
        report = collect_garbage(
            client.store,
            client.artifacts,
            dry_run=not yes,
            grace_seconds=grace_seconds,
            deleted_grace_seconds=deleted_grace_seconds,
        )
    purged = report.purged
    if as_json:
        print_json(
            {
                "dry_run": report.dry_run,
                "grace_seconds": grace_seconds,
                "deleted_grace_seconds": report.deleted_grace_seconds,
                "purged_runs": purged.runs,
                "purged_dataset_versions": [
                    {"id": version_id, "version": label}
                    for version_id, label in purged.dataset_versions
                ],
                "kept_deleted": purged.kept,
                "referenced": report.referenced,
                "kept_young": report.kept_young,
                "unreferenced": [{"digest": d, "size": s} for d, s in report.unreferenced],
                "reclaimable_bytes": report.reclaimable_bytes,
            }
        )
        return
    console = out()
    _print_purge(console, report.dry_run, report.deleted_grace_seconds, purged)
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
    if report.dry_run and (report.unreferenced or purged.runs or purged.dataset_versions):
        console.print("Dry run: rerun with --yes to delete them.", style="bold")


def _deleted_grace(text: str | None) -> float | None:
    if text is None:
        return None
    from loopml import settings

    try:
        return float(settings.SETTINGS["LOOPML_GC_DELETED_GRACE"].parse(text))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}.", param_hint="--deleted-grace") from None


def _print_purge(console: Console, dry_run: bool, grace: float, purged: PurgeReport) -> None:
    verb = "would be purged" if dry_run else "purged"
    if purged.runs or purged.dataset_versions:
        table = Table(title=f"Deleted longer than {fmt_duration(grace)} ago", title_justify="left")
        table.add_column("kind")
        table.add_column("id", no_wrap=True)
        for run_id in purged.runs:
            table.add_row("run", run_id)
        for version_id, label in purged.dataset_versions:
            table.add_row("dataset version", f"{label} (id {version_id})")
        console.print(table)
    if purged.kept:
        kept = Table(title="Deleted long ago but kept", title_justify="left")
        kept.add_column("kind")
        kept.add_column("id", no_wrap=True)
        kept.add_column("why", overflow="fold")
        for item in purged.kept:
            label = f"{item.label} (id {item.id})" if item.label else item.id
            kept.add_row(item.kind.replace("_", " "), label, item.reason)
        console.print(kept)
    console.print(
        f"{len(purged.runs)} deleted run(s) and {len(purged.dataset_versions)} deleted dataset "
        f"version(s) {verb}; {len(purged.kept)} kept.",
        highlight=False,
    )
