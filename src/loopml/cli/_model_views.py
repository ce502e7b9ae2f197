"""How models look: JSON shapes and Rich renderables for ``loopml models …``.

Everything here renders records the registry hands out (models, versions, policy
results, alias events). Names, reasons and descriptions are wrapped in
:class:`Text` so that Rich never reads them as markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_time, fmt_value, short_id
from loopml.cli._output import to_jsonable

if TYPE_CHECKING:
    from loopml.registry._promotion import EvaluationResult
    from loopml.registry._records import AliasEvent, Model, ModelEvent, ModelVersion, PolicyResult

__all__ = [
    "aliases_text",
    "checks_table",
    "failures_table",
    "history_json",
    "history_table",
    "metrics_table",
    "model_json",
    "models_table",
    "policy_event_text",
    "result_json",
    "status_text",
    "version_json",
    "version_panel",
    "versions_table",
]

STATUS_STYLES = {
    "candidate": "cyan",
    "approved": "green",
    "rejected": "bold red",
    "archived": "dim",
}
_PASS = Text("✓", style="green")
_FAIL = Text("✗", style="bold red")
_SHOWN_METRICS = 3


def status_text(status: str) -> Text:
    """A version's status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def mark(passed: bool) -> Text:
    """✓ in green or ✗ in red."""
    return _PASS.copy() if passed else _FAIL.copy()


def aliases_text(aliases: Mapping[str, int] | Iterable[str]) -> Text:
    """``@champion → 3, @challenger → 4`` (or ``@champion`` for a version's own aliases)."""
    if isinstance(aliases, Mapping):
        shown = ", ".join(f"@{a} → {v}" for a, v in sorted(aliases.items()))
    else:
        shown = ", ".join(f"@{a}" for a in aliases)
    return Text(shown or "-", style="magenta" if shown else "dim")


# -- JSON ----------------------------------------------------------------------------


def model_json(model: Model) -> dict[str, Any]:
    """A model as JSON, with the reference of its latest version."""
    data: dict[str, Any] = to_jsonable(model)
    data["latest"] = (
        None if model.latest_version is None else f"{model.name}/{model.latest_version}"
    )
    return data


def version_json(version: ModelVersion) -> dict[str, Any]:
    """A version's record as JSON (its signature as ``{inputs, outputs}``)."""
    data: dict[str, Any] = {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "project": version.project,
        "status": version.status,
        "aliases": list(version.aliases),
        "flavor": version.flavor,
        "executable": version.executable,
        "digest": version.digest,
        "onnx_digest": version.onnx_digest,
        "signature": None if version.signature is None else version.signature.to_dict(),
        "source_run_id": version.source_run_id,
        "params": version.params,
        "metrics": version.metrics,
        "datasets": list(version.datasets),
        "git_commit": version.git_commit,
        "description": version.description,
        "tags": version.tags,
        "registered_by": version.registered_by,
        "created_at": version.created_at,
        "requirements": None if version.requirements is None else list(version.requirements),
    }
    result: dict[str, Any] = to_jsonable(data)
    return result


def result_json(result: EvaluationResult) -> dict[str, Any]:
    """An evaluation as JSON: metrics, every check and whether all passed."""
    data: dict[str, Any] = to_jsonable(
        {
            "ref": result.version.ref,
            "evaluation": result.evaluation,
            "passed": result.passed,
            "metrics": result.metrics,
            "results": result.results,
        }
    )
    return data


# -- tables ----------------------------------------------------------------------------


def models_table(models: Sequence[Model], project: str) -> Table:
    """One row per model: latest version, aliases, policy size, description."""
    table = Table(title=f"Models of project {project!r}", title_justify="left")
    table.add_column("name", style="bold", overflow="fold")
    table.add_column("latest", no_wrap=True)
    table.add_column("aliases", overflow="fold")
    table.add_column("policy", justify="right")
    table.add_column("created", no_wrap=True)
    table.add_column("description", overflow="fold")
    for model in models:
        checks = len(model.policy or [])
        cleared = model.policy_event is not None and model.policy_event.action == "policy_clear"
        empty = Text("cleared", style="bold yellow") if cleared else Text("none", style="dim")
        table.add_row(
            Text(model.name),
            Text("-" if model.latest_version is None else f"{model.name}/{model.latest_version}"),
            aliases_text(model.aliases),
            f"{checks} check{'s' if checks != 1 else ''}" if checks else empty,
            fmt_time(model.created_at, short=True),
            Text(model.description or ""),
        )
    return table


def versions_table(name: str, versions: Sequence[ModelVersion]) -> Table:
    """One row per version, oldest first: status, aliases, source, data and a few metrics."""
    table = Table(title=f"Versions of model {name!r}", title_justify="left")
    table.add_column("version", justify="right", style="bold")
    table.add_column("status", no_wrap=True)
    table.add_column("aliases", overflow="fold")
    table.add_column("flavor", no_wrap=True)
    table.add_column("run", no_wrap=True)
    table.add_column("data", overflow="fold")
    table.add_column("metrics", overflow="fold")
    table.add_column("registered", overflow="fold")
    for version in versions:
        metrics = ", ".join(
            f"{k}={fmt_value(v)}"
            for k, v in sorted(version.metrics.items())[:_SHOWN_METRICS]
            if isinstance(v, int | float)
        )
        registered = fmt_time(version.created_at, short=True)
        if version.registered_by:
            registered += f" by {version.registered_by}"
        table.add_row(
            str(version.version),
            status_text(version.status),
            aliases_text(version.aliases),
            version.flavor,
            short_id(version.source_run_id) if version.source_run_id else "-",
            Text(", ".join(version.datasets) or "-"),
            Text(metrics or "-"),
            Text(registered),
        )
    return table


def version_panel(version: ModelVersion, model: Model | None = None) -> Panel:
    """A version's metadata: status, aliases, flavor, source, data, signature."""
    lines = Table.grid(padding=(0, 2))
    lines.add_column(style="bold")
    lines.add_column(overflow="fold")
    lines.add_row("status", status_text(version.status))
    lines.add_row("aliases", aliases_text(version.aliases))
    lines.add_row("flavor", version.flavor + (" (runs code on load)" if version.executable else ""))
    registered = fmt_time(version.created_at)
    if version.registered_by:
        registered += f" by {version.registered_by}"
    lines.add_row("registered", Text(registered))
    lines.add_row("source run", Text(version.source_run_id or "-"))
    lines.add_row("commit", Text(version.git_commit or "-"))
    lines.add_row("data", Text(", ".join(version.datasets) or "-"))
    if version.signature is not None:
        inputs = version.signature.inputs
        shown = ", ".join(f"{c.name} ({c.type})" for c in inputs[:6])
        more = f" … and {len(inputs) - 6} more" if len(inputs) > 6 else ""
        lines.add_row("inputs", Text(f"{len(inputs)}: {shown}{more}"))
    lines.add_row("digest", Text(version.digest[:16]))
    if version.requirements is not None:
        shown = ", ".join(version.requirements[:4])
        more = (
            f" … and {len(version.requirements) - 4} more" if len(version.requirements) > 4 else ""
        )
        lines.add_row("requirements", Text(f"{shown}{more}" or "-"))
    if version.description:
        lines.add_row("description", Text(version.description))
    if model is not None and model.aliases:
        lines.add_row("model aliases", aliases_text(model.aliases))
    return Panel(lines, title=f"Model {version.ref}", title_align="left", expand=False)


def values_table(title: str, values: Mapping[str, Any]) -> Table:
    """A two-column table of params or metrics."""
    table = Table(title=title, title_justify="left")
    table.add_column("name", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    for key, value in sorted(values.items()):
        shown = fmt_value(value) if isinstance(value, float) else str(value)
        table.add_row(Text(key), Text(shown))
    return table


def metrics_table(metrics: Mapping[str, float], title: str) -> Table:
    """Metrics of one evaluation."""
    return values_table(title, metrics)


def checks_table(results: Sequence[PolicyResult], title: str) -> Table:
    """One row per policy check: ✓/✗, its name, kind and reason."""
    table = Table(title=title, title_justify="left")
    table.add_column("", no_wrap=True, width=1)
    table.add_column("check", style="bold", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for result in results:
        if result.kind == "evaluation":  # the metrics, shown in their own table
            continue
        table.add_row(mark(result.passed), Text(result.name), result.kind, Text(result.reason))
    return table


def failures_table(failures: Sequence[tuple[str, str]], title: str) -> Table:
    """The failing checks of a refused promotion."""
    table = Table(title=title, title_justify="left")
    table.add_column("", no_wrap=True, width=1)
    table.add_column("check", style="bold", overflow="fold")
    table.add_column("reason", overflow="fold")
    for name, reason in failures:
        table.add_row(mark(False), Text(name), Text(reason))
    return table


def history_json(
    alias_events: Sequence[AliasEvent], model_events: Sequence[ModelEvent]
) -> list[dict[str, Any]]:
    """Alias moves (``kind: alias``) and policy/archive changes (``kind: policy``/``version``)."""
    rows = [{"kind": "alias", **to_jsonable(e)} for e in alias_events]
    rows += [{"kind": _event_kind(e), **to_jsonable(e)} for e in model_events]
    return sorted(rows, key=lambda row: int(row["at"]))


def _event_kind(event: ModelEvent) -> str:
    return "policy" if event.action.startswith("policy_") else "version"


def history_table(
    name: str, events: Sequence[AliasEvent], model_events: Sequence[ModelEvent] = ()
) -> Table:
    """Every alias move and every policy or archive change, oldest first."""
    table = Table(title=f"History of model {name!r}", title_justify="left")
    table.add_column("when", no_wrap=True)
    table.add_column("what", style="magenta", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("from", justify="right")
    table.add_column("to", justify="right")
    table.add_column("by", overflow="fold")
    table.add_column("reason", overflow="fold")
    rows: list[tuple[int, list[RenderableType | str]]] = []
    for event in events:
        action = Text(event.action)
        if event.forced:
            action.append(" (forced)", style="bold yellow")
        rows.append(
            (
                event.at,
                [
                    fmt_time(event.at),
                    Text(f"@{event.alias}"),
                    action,
                    "-" if event.from_version is None else str(event.from_version),
                    "-" if event.to_version is None else str(event.to_version),
                    Text(event.actor or "-"),
                    Text(event.reason or ""),
                ],
            )
        )
    for change in model_events:
        rows.append((change.at, _model_event_row(name, change)))
    for _at, row in sorted(rows, key=lambda item: item[0]):
        table.add_row(*row)
    return table


def _model_event_row(name: str, event: ModelEvent) -> list[RenderableType | str]:
    if event.action.startswith("policy_"):
        checks = len(event.policy or [])
        what, before = "policy", ""
        after = f"rev {event.revision}: {checks} check{'s' if checks != 1 else ''}"
        if event.action == "policy_clear":
            after = f"rev {event.revision}: cleared"
        action = Text(event.action.replace("_", " "), style="bold yellow" if checks == 0 else "")
    else:
        what = f"{name}/{event.version}"
        before = event.status_before or "-"
        after = "archived" if event.action == "archive" else "restored"
        action = Text(event.action)
    return [
        fmt_time(event.at),
        Text(what),
        action,
        Text(before),
        Text(after),
        Text(event.actor or "-"),
        Text(event.reason or ""),
    ]


def policy_event_text(model: Model) -> Text:
    """The latest policy change: ``policy: 3 checks (rev 2, set by alice …)`` or its clear."""
    event = model.policy_event
    checks = len(model.policy or [])
    counted = f"{checks} check{'s' if checks != 1 else ''}" if checks else "none"
    if event is None:
        return Text(f"Policy: {counted}.", style="" if checks else "dim")
    who = f"by {event.actor or 'unknown'} at {fmt_time(event.at)}"
    if event.action == "policy_clear":
        return Text(
            f"Policy: cleared on purpose (rev {event.revision}) {who}: {event.reason}",
            style="bold yellow",
        )
    why = f": {event.reason}" if event.reason else ""
    return Text(f"Policy: {counted} (rev {event.revision}, set {who}{why}).")


def evaluation_renderables(result: EvaluationResult, data: str) -> list[RenderableType]:
    """The metrics of an evaluation, its checks, and a verdict line."""
    ref = result.version.ref
    parts: list[RenderableType] = [
        metrics_table(result.metrics, f"Metrics of {ref} on {data}"),
        checks_table(result.results, f"Policy checks (evaluation {result.evaluation})"),
    ]
    failed = len(result.failures)
    if result.passed:
        verdict = Text.assemble(("✓ ", "green"), f"{ref} passes every check of its policy.")
    else:
        verdict = Text.assemble(
            ("✗ ", "bold red"), f"{ref} fails {failed} of {len(result.results)} checks."
        )
    parts.append(verdict)
    return parts


def show_renderables(
    version: ModelVersion,
    model: Model,
    results: Sequence[PolicyResult],
    approvals: Sequence[tuple[str, str | None]],
) -> Group:
    """``models show``: metadata, params, metrics, latest policy results, approvals."""
    parts: list[RenderableType] = [version_panel(version, model), policy_event_text(model)]
    if version.params:
        parts.append(values_table("Params (source run)", version.params))
    if version.metrics:
        parts.append(values_table("Metrics (source run)", version.metrics))
    if results:
        first = results[0]
        on = f" on {first.dataset}" if first.dataset else ""
        parts.append(checks_table(results, f"Latest evaluation ({first.evaluation}){on}"))
    else:
        parts.append(Text("Not evaluated yet.", style="dim"))
    if approvals:
        who = ", ".join(f"{i} ({r})" if r else i for i, r in approvals)
        parts.append(Text(f"Approved by: {who}"))
    else:
        parts.append(Text("No approvals.", style="dim"))
    return Group(*parts)
