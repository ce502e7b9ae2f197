"""How datasets look: JSON shapes and Rich renderables for ``loopml data …``.

Everything shown here comes from records the data service hands out (versions,
profiles, reports, diffs); nothing reads the data itself. Values that come from
the data (column names, sample values, categories) are wrapped in :class:`Text`
so that Rich never reads them as markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_bytes, fmt_time
from loopml.cli._output import to_jsonable

if TYPE_CHECKING:
    from loopml.data import (
        CheckResult,
        ColumnProfile,
        Dataset,
        DatasetDeletion,
        DatasetVersion,
        Profile,
        ProfileDiff,
        SchemaDiff,
        ValidationReport,
        VersionReference,
    )
    from loopml.data._diff import ColumnDiff, StatChange

__all__ = [
    "checks_table",
    "columns_table",
    "dataset_json",
    "datasets_table",
    "deletion_json",
    "diff_renderables",
    "reference_json",
    "report_renderables",
    "report_verdict",
    "schema_diff_text",
    "status_text",
    "version_json",
    "version_panel",
    "versions_table",
]

STATUS_STYLES = {"ready": "green", "quarantined": "bold red"}
_SAMPLE_ROWS = 3
_TOP_VALUES = 3


def status_text(status: str, *, deleted: bool = False) -> Text:
    """A version's status, coloured: ready green, quarantined red; ``deleted`` marked first."""
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    if deleted:
        return (
            Text("deleted", style="bold magenta")
            .append(" (was ", style="dim")
            .append(text)
            .append(")", style="dim")
        )
    return text


def _num(value: object) -> str:
    """A number from the data with 4 significant digits; anything else as is."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _checks_word(passed: bool | None) -> Text:
    if passed is None:
        return Text("-", style="dim")
    return Text("passed", style="green") if passed else Text("failed", style="bold red")


# -- JSON ----------------------------------------------------------------------------


def version_json(version: DatasetVersion, *, profile: bool = False) -> dict[str, Any]:
    """A version's metadata as JSON; with ``profile``, its full profile too."""
    data: dict[str, Any] = {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "project": version.project,
        "status": version.status,
        "row_count": version.row_count,
        "column_count": version.column_count,
        "size_bytes": version.size_bytes,
        "content_hash": version.content_hash,
        "digest": version.digest,
        "columns": [{"name": name, "type": kind} for name, kind in version.columns],
        "parents": list(version.parents),
        "source": version.source,
        "description": version.description,
        "report_passed": version.report_passed,
        "schema_revision": version.schema_revision,
        "creator": version.creator,
        "created_at": version.created_at,
        "deleted": version.deleted,
        "deleted_at": version.deleted_at,
    }
    if profile:
        data["profile"] = version.profile.to_dict()
    result: dict[str, Any] = to_jsonable(data)
    return result


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    """A dataset as JSON, with the reference of its latest usable version."""
    data: dict[str, Any] = to_jsonable(dataset)
    latest = dataset.latest_version
    data["latest"] = None if latest is None else f"{dataset.name}:{latest}"
    return data


def reference_json(reference: VersionReference) -> dict[str, Any]:
    """Something live that refers to a version through lineage, as JSON."""
    result: dict[str, Any] = to_jsonable(reference)
    return result


def deletion_json(deletion: DatasetDeletion) -> dict[str, Any]:
    """The deleted version's metadata and what live still refers to it."""
    data = version_json(deletion.version)
    data["references"] = [reference_json(r) for r in deletion.references]
    return data


# -- data list / versions ------------------------------------------------------------


def datasets_table(datasets: Sequence[Dataset], project: str) -> Table:
    """One row per dataset: latest usable version, number of versions, key, description."""
    table = Table(title=f"Datasets of project {project!r}", title_justify="left")
    table.add_column("name", style="bold", overflow="fold")
    table.add_column("latest", no_wrap=True)
    table.add_column("versions", justify="right")
    table.add_column("key", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("description", overflow="fold")
    for dataset in datasets:
        latest = (
            Text("none usable", style="red")
            if dataset.latest_version is None
            else Text(f"{dataset.name}:{dataset.latest_version}")
        )
        table.add_row(
            Text(dataset.name),
            latest,
            str(dataset.version_count)
            + (f" (+{dataset.deleted_count} deleted)" if dataset.deleted_count else ""),
            Text(", ".join(dataset.key_columns) or "-"),
            fmt_time(dataset.created_at, short=True),
            Text(dataset.description or ""),
        )
    return table


def versions_table(versions: Sequence[DatasetVersion]) -> Table:
    """One row per version, oldest first; quarantined versions in red, deleted ones marked."""
    name = versions[0].name if versions else ""
    table = Table(title=f"Versions of dataset {name!r}", title_justify="left")
    table.add_column("version", justify="right", style="bold")
    table.add_column("status", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("cols", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("checks", no_wrap=True)
    table.add_column("hash", style="dim", no_wrap=True)
    table.add_column("parents", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("source", overflow="fold")
    for version in versions:
        table.add_row(
            str(version.version),
            status_text(version.status, deleted=version.deleted),
            f"{version.row_count:,}",
            str(version.column_count),
            fmt_bytes(version.size_bytes),
            _checks_word(version.report_passed),
            version.content_hash[:12],
            Text(", ".join(version.parents) or "-"),
            fmt_time(version.created_at, short=True),
            Text(version.source or "-"),
        )
    return table


# -- a version -----------------------------------------------------------------------


def version_panel(version: DatasetVersion, *, existing: bool | None = None) -> Panel:
    """A version's metadata; ``existing`` says whether ``add`` found identical data."""
    grid = Table(show_header=False, box=None, padding=(0, 2))
    grid.add_column("key", style="bold")
    grid.add_column("value", overflow="fold")
    grid.add_row("ref", Text(version.ref, style="bold"))
    grid.add_row("status", status_text(version.status, deleted=version.deleted))
    if version.deleted_at is not None:
        grid.add_row(
            "deleted",
            Text(
                f"{fmt_time(version.deleted_at)}: metadata only, its data cannot be loaded "
                f"(restore: loopml data restore {version.ref} -p {version.project})",
                style="magenta",
            ),
        )
    if existing is not None:
        grid.add_row(
            "registered",
            Text("earlier: identical data, existing version", style="yellow")
            if existing
            else Text("now: new version", style="green"),
        )
    grid.add_row("project", Text(version.project))
    grid.add_row("rows", f"{version.row_count:,}")
    grid.add_row("columns", str(version.column_count))
    grid.add_row("size", fmt_bytes(version.size_bytes))
    grid.add_row("content hash", Text(version.content_hash[:16], style="dim"))
    grid.add_row("checks", _checks_word(version.report_passed))
    grid.add_row(
        "schema rev.", "-" if version.schema_revision is None else str(version.schema_revision)
    )
    grid.add_row("parents", Text(", ".join(version.parents) or "-"))
    grid.add_row("source", Text(version.source or "-"))
    if version.description:
        grid.add_row("description", Text(version.description))
    grid.add_row("creator", Text(version.creator or "-"))
    grid.add_row("created", fmt_time(version.created_at))
    border = (
        "magenta" if version.deleted else "red" if version.status == "quarantined" else "default"
    )
    return Panel(
        grid,
        title=f"Dataset version {version.ref}",
        title_align="left",
        border_style=border,
        expand=False,
    )


def _missing_percent(column: ColumnProfile) -> str:
    total = column.count + column.missing
    if not total:
        return "-"
    share = 100 * column.missing / total
    return "0%" if share == 0 else f"{share:.2g}%" if share < 10 else f"{share:.0f}%"


def _summary(column: ColumnProfile) -> Text:
    if column.kind == "numeric":
        parts = [f"min {_num(column.min)}", f"max {_num(column.max)}"]
        if column.mean is not None:
            parts.append(f"mean {_num(column.mean)}")
        return Text(" · ".join(parts))
    if column.kind == "datetime":
        return Text(f"{column.min or '-'} … {column.max or '-'}")
    if column.top_k:
        shown = ", ".join(f"{value} ({count:,})" for value, count in column.top_k[:_TOP_VALUES])
        more = len(column.top_k) > _TOP_VALUES or column.distinct > _TOP_VALUES
        if column.kind == "boolean" and column.mean is not None:
            shown += f" · {column.mean:.1%} true"
        return Text(shown + (", …" if more else ""))
    return Text("-", style="dim")


def columns_table(profile: Profile) -> Table:
    """One row per column: type, kind, missing share, distinct values and a summary."""
    table = Table(title="Columns", title_justify="left")
    table.add_column("column", style="bold", overflow="fold")
    table.add_column("type", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("missing", justify="right", no_wrap=True)
    table.add_column("distinct", justify="right", no_wrap=True)
    table.add_column("summary (min · max · mean, or top values)", overflow="fold")
    for column in profile.columns.values():
        distinct = f"{column.distinct:,}" if column.distinct_exact else f"≈{column.distinct:,}"
        table.add_row(
            Text(column.name),
            column.arrow_type,
            column.kind,
            _missing_percent(column),
            distinct,
            _summary(column),
        )
    return table


# -- validation reports ----------------------------------------------------------------


def _sample_text(sample: Sequence[Mapping[str, Any]]) -> Text:
    parts = []
    for row in sample[:_SAMPLE_ROWS]:
        if "values" in row:
            values = ", ".join(f"{k}={_num(v)}" for k, v in row["values"].items())
            parts.append(f"row {row['row']}: {values}")
        else:
            parts.append(f"row {row['row']}: {_num(row.get('value'))}")
    if len(sample) > _SAMPLE_ROWS:
        parts.append("…")
    return Text("; ".join(parts) if parts else "-")


def checks_table(checks: Sequence[CheckResult], title: str) -> Table:
    """One row per check: pass/fail, name, failing rows, a sample of them, the message."""
    table = Table(title=title, title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("failing rows", justify="right", no_wrap=True)
    table.add_column("sample", overflow="fold")
    table.add_column("message", overflow="fold")
    for check in checks:
        mark = Text("✓ pass", style="green") if check.passed else Text("✗ FAIL", style="bold red")
        table.add_row(
            mark,
            Text(check.name),
            f"{check.failing_count:,}" if not check.passed else "0",
            _sample_text(check.failing_sample) if not check.passed else Text(""),
            Text(check.message),
        )
    return table


def schema_diff_text(diff: SchemaDiff) -> Text:
    """Missing, extra and retyped columns, one kind per line (empty when the columns match)."""
    text = Text()
    if diff.missing:
        text.append("missing columns: ", style="bold red")
        text.append(", ".join(diff.missing) + "\n")
    if diff.extra:
        text.append("extra columns: ", style="bold yellow")
        text.append(", ".join(diff.extra) + "\n")
    for column, types in diff.retyped.items():
        text.append("retyped: ", style="bold yellow")
        text.append(f"{column}: expected {types.get('expected')}, got {types.get('got')}\n")
    text.rstrip()
    return text


def report_verdict(report: ValidationReport) -> Text:
    """One line: PASSED/FAILED, how many checks, rows, what against what."""
    failed = len(report.failed_checks)
    total = len(report.checks)
    against = f" against {report.against}" if report.against else ""
    if report.passed:
        head = Text("PASSED", style="bold green")
        body = f": all {total} checks on {report.row_count:,} rows of {report.source}{against}."
    else:
        head = Text("FAILED", style="bold red")
        body = (
            f": {failed} of {total} checks failed on {report.row_count:,} rows of "
            f"{report.source}{against}."
        )
    return head.append(body, style="")


def report_renderables(report: ValidationReport, *, only_failing: bool) -> list[RenderableType]:
    """The schema differences, the checks table (all or the failing ones) and the verdict."""
    shown: list[RenderableType] = []
    if not report.schema_diff.empty:
        shown.append(
            Panel(
                schema_diff_text(report.schema_diff),
                title="Schema differences",
                title_align="left",
                border_style="yellow",
                expand=False,
            )
        )
    checks = report.failed_checks if only_failing else report.checks
    if checks:
        title = "Failing checks" if only_failing else "Checks"
        shown.append(checks_table(checks, title))
    shown.append(report_verdict(report))
    return shown


# -- data diff -------------------------------------------------------------------------


_DIFF_STATS = ("missing", "mean", "min", "max")


def _arrow(change: StatChange | None) -> Text:
    if change is None:
        return Text("")
    text = Text(f"{_num(change.old)} → {_num(change.new)}")
    if change.rel_change is not None and math.isfinite(change.rel_change):
        text.append(f" ({change.rel_change:+.0%})", style="dim")
    return text


def _other_changes(column: ColumnDiff) -> Text:
    names = [c.stat for c in column.changes if c.stat not in (*_DIFF_STATS, "missing_rate")]
    quantiles = sum(1 for n in names if n.startswith("q"))
    parts = [n for n in names if not n.startswith("q")]
    if quantiles:
        parts.append(f"{quantiles} quantile(s)")
    if column.old_kind != column.new_kind:
        parts.insert(0, f"kind {column.old_kind} → {column.new_kind}")
    if column.new_categories:
        parts.append("new values: " + ", ".join(column.new_categories[:5]))
    if column.vanished_categories:
        parts.append("gone values: " + ", ".join(column.vanished_categories[:5]))
    return Text(", ".join(parts))


def _psi_text(column: ColumnDiff) -> Text:
    if column.psi is None:
        return Text("-", style="dim")
    return Text(f"{column.psi:.3f}", style="bold red" if column.drifted else "")


def _drifted_text(column: ColumnDiff) -> Text:
    if column.key:
        return Text("key", style="dim")
    return Text("DRIFTED", style="bold red") if column.drifted else Text("no", style="dim")


def _psi_order(column: ColumnDiff) -> float:
    return -column.psi if column.psi is not None else math.inf


def diff_renderables(old: str, new: str, diff: ProfileDiff) -> list[RenderableType]:
    """The row count, the schema changes and one row per changed column (PSI, drifted)."""
    rows = diff.row_count
    header = Text(f"{old} → {new}: ", style="bold")
    header.append(f"rows {_num(rows.old)} → {_num(rows.new)}", style="")
    if rows.abs_change:
        header.append(f" ({rows.abs_change:+,.0f})", style="")
    shown: list[RenderableType] = [header]
    if not diff.has_changes:
        shown.append(Text("No differences in schema or statistics.", style="green"))
        return shown
    if diff.added or diff.removed or diff.retyped:
        schema = Table(title="Schema changes", title_justify="left")
        schema.add_column("", no_wrap=True)
        schema.add_column("column", overflow="fold")
        schema.add_column("type", overflow="fold")
        for name, arrow_type in diff.added:
            schema.add_row(Text("+ added", style="green"), Text(name), arrow_type)
        for name, arrow_type in diff.removed:
            schema.add_row(Text("- removed", style="red"), Text(name), arrow_type)
        for change in diff.retyped:
            schema.add_row(
                Text("~ retyped", style="yellow"),
                Text(change.name),
                f"{change.old_type} → {change.new_type}",
            )
        shown.append(schema)
    changed = sorted(
        (c for c in diff.columns.values() if c.has_changes or c.drifted), key=_psi_order
    )
    if changed:
        table = Table(
            title="Column changes, largest shift first (PSI > 0.2: drifted)", title_justify="left"
        )
        table.add_column("column", style="bold", overflow="fold")
        table.add_column("PSI", justify="right", no_wrap=True)
        table.add_column("drifted", no_wrap=True)
        for stat in _DIFF_STATS:
            table.add_column(stat, overflow="fold")
        table.add_column("also changed", overflow="fold")
        for column in changed:
            by_stat = {c.stat: c for c in column.changes}
            table.add_row(
                Text(column.name),
                _psi_text(column),
                _drifted_text(column),
                *(_arrow(by_stat.get(stat)) for stat in _DIFF_STATS),
                _other_changes(column),
            )
        shown.append(table)
    unchanged = len(diff.columns) - len(changed)
    drifted = diff.drifted_columns
    summary = Text(f"{unchanged} column(s) unchanged; ", style="dim")
    summary.append(
        f"drifted: {', '.join(drifted)}" if drifted else "no column drifted",
        style="bold red" if drifted else "green",
    )
    shown.append(summary)
    return shown
