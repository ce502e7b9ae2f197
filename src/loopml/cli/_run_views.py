"""How runs look: JSON shapes and Rich renderables for ``loopml runs …``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loopml.cli._format import (
    elapsed_since,
    fmt_bytes,
    fmt_duration,
    fmt_time,
    fmt_value,
    short_id,
    status_text,
)
from loopml.cli._output import to_jsonable

if TYPE_CHECKING:
    from loopml.tracking import Metric, Run

__all__ = [
    "comparison_json",
    "comparison_table",
    "history_table",
    "pick_metric_keys",
    "print_run",
    "run_json",
    "runs_table",
]

_MAX_METRIC_COLUMNS = 3
_PARAMS_WIDTH = 40
_METRIC_REF = re.compile(r"metrics\.(`[^`]+`|\"[^\"]+\"|[\w.\-/]+)")


def run_json(run: Run) -> dict[str, Any]:
    """The full record of a run as JSON, with its duration and whether it is deleted."""
    data: dict[str, Any] = to_jsonable(run)
    data["duration_seconds"] = run.duration_seconds
    data["deleted"] = run.deleted
    return data


# -- runs list ------------------------------------------------------------------------


def pick_metric_keys(runs: Sequence[Run], expressions: Iterable[str]) -> list[str]:
    """A few metric keys worth a column: those the filter and ordering name, then the commonest."""
    present = {key for run in runs for key in run.metrics}
    keys: list[str] = []
    for expression in expressions:
        for match in _METRIC_REF.finditer(expression):
            key = match.group(1).strip('`"')
            if key in present and key not in keys:
                keys.append(key)
    counts = Counter(key for run in runs for key in run.metrics)
    for key, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if key not in keys:
            keys.append(key)
    return keys[:_MAX_METRIC_COLUMNS]


def _params_summary(params: Mapping[str, str]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return text if len(text) <= _PARAMS_WIDTH else text[: _PARAMS_WIDTH - 1] + "…"


def _duration(run: Run) -> Text:
    if run.end_time is None:
        return Text(fmt_duration(elapsed_since(run.start_time)) + "…", style="dim")
    return Text(fmt_duration(run.duration_seconds))


def runs_table(
    runs: Sequence[Run],
    metric_keys: Sequence[str],
    width: int,
    *,
    all_projects: bool = False,
    deleted: bool = False,
) -> Table:
    """One row per run: id, name, status, start, duration, metrics and params.

    Narrow consoles (``width`` characters) drop the params, then the start time,
    then metric columns, rather than squeezing every column unreadable. With
    ``all_projects`` a project column comes first; with ``deleted``, when each run
    was deleted.
    """
    show_start, show_params = width >= 100, width >= 130
    extra = (16 if all_projects else 0) + (14 if deleted else 0)
    budget = width - 50 - extra - (14 if show_start else 0) - (45 if show_params else 0)
    metric_keys = metric_keys[: max(1, budget // 11)]
    project = runs[0].project if runs else ""
    title = "Runs of every project" if all_projects else f"Runs of project {project!r}"
    if deleted:
        title = f"Deleted runs of {'every project' if all_projects else repr(project)}"
    table = Table(title=title, title_justify="left")
    if all_projects:
        table.add_column("project", overflow="fold", min_width=8)
    table.add_column("id", style="bold", no_wrap=True, min_width=8)
    table.add_column("name", overflow="fold", min_width=10)
    table.add_column("status", no_wrap=True, min_width=8)
    if show_start:
        table.add_column("start", no_wrap=True, min_width=11)
    table.add_column("duration", justify="right", no_wrap=True, min_width=8)
    for key in metric_keys:
        table.add_column(Text(key, overflow="fold"), justify="right", no_wrap=True, min_width=6)
    if show_params:
        table.add_column("params", overflow="fold", min_width=12)
    if deleted:
        table.add_column("deleted", no_wrap=True, min_width=11, style="red")
    for run in runs:
        cells: list[str | Text] = [short_id(run.id), run.name or "", status_text(run.status)]
        if all_projects:
            cells.insert(0, run.project)
        if show_start:
            cells.append(fmt_time(run.start_time, short=True))
        cells.append(_duration(run))
        cells.extend(fmt_value(run.metrics.get(key)) for key in metric_keys)
        if show_params:
            cells.append(_params_summary(run.params))
        if deleted:
            cells.append(fmt_time(run.deleted_at, short=True))
        table.add_row(*cells)
    return table


# -- runs show ------------------------------------------------------------------------


def _key_value_table(title: str, values: Mapping[str, Any], *, value_style: str = "") -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column("key", style="bold")
    table.add_column("value", style=value_style, overflow="fold")
    for key, value in values.items():
        shown = fmt_value(value) if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    return table


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif key == "captured_at" and isinstance(value, int | float):
            flat[name] = fmt_time(int(value * 1000))  # epoch seconds
        elif value is not None:
            flat[name] = value
    return flat


def _summary(run: Run) -> Table:
    fields: dict[str, Any] = {
        "id": run.id,
        "name": run.name or "-",
        "project": run.project,
        "kind": run.kind,
        "status": status_text(run.status),
        "user": run.user or "-",
        "parent": run.parent_id or "-",
        "start": fmt_time(run.start_time),
        "end": fmt_time(run.end_time),
        "duration": _duration(run),
    }
    if run.deleted_at is not None:
        fields["deleted"] = Text(
            f"{fmt_time(run.deleted_at)} (restore: loopml runs restore {short_id(run.id)})",
            style="bold red",
        )
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in fields.items():
        table.add_row(key, value)
    return table


def _artifacts_table(run: Run) -> Table:
    table = Table(title="Artifacts", title_justify="left")
    table.add_column("path")
    table.add_column("type")
    table.add_column("size", justify="right")
    table.add_column("digest", style="dim")
    for artifact in run.artifacts:
        kind = "dir" if artifact.is_dir else "file"
        table.add_row(artifact.path, kind, fmt_bytes(artifact.size), artifact.digest[:12])
    return table


def print_run(console: Console, run: Run, packages: int | None = None) -> None:
    """Print every section of a run that has something in it.

    ``packages`` is how many packages its captured environment lists (None: none).
    """
    title = f"Run {short_id(run.id)}" + (" (deleted)" if run.deleted else "")
    style = "red" if run.deleted else "none"
    console.print(_summary_panel(run, title, style))
    python = run.context.get("python_version")
    if packages is not None:
        console.print(
            f"Environment: {packages} packages, Python {python or '?'} "
            f"(loopml runs env {short_id(run.id)})",
            highlight=False,
        )
    elif python:
        console.print(f"Environment: Python {python}, packages not captured", highlight=False)
    console.print()
    sections: list[tuple[str, Mapping[str, Any]]] = [
        ("Params", dict(sorted(run.params.items()))),
        ("Metrics (latest)", dict(sorted(run.metrics.items()))),
        ("Tags", dict(sorted(run.tags.items()))),
        ("Resources", _resources(run.resources)),
        ("Context", _flatten(run.context)),
    ]
    for title, values in sections:
        if values:
            console.print(_key_value_table(title, values))
            console.print()
    if run.artifacts:
        console.print(_artifacts_table(run))
        console.print()
    if run.failure:
        body = Group(
            Text(f"{run.failure.get('type', '')}: {run.failure.get('message', '')}", style="bold"),
            Text(run.failure.get("traceback", ""), style="red"),
        )
        console.print(Panel(body, title="Failure", title_align="left", border_style="red"))
    from rich.markdown import Markdown  # only `runs show` needs it; it is slow to import

    for item in run.notes:
        author = item.author or "unknown"
        title = f"Note by {author}, {fmt_time(item.created_at)}"
        console.print(Panel(Markdown(item.text), title=title, title_align="left"))


def _summary_panel(run: Run, title: str, style: str) -> Panel:
    return Panel(_summary(run), title=title, title_align="left", border_style=style)


def _resources(resources: Mapping[str, float] | None) -> dict[str, str]:
    if not resources:
        return {}
    shown: dict[str, str] = {}
    for key, value in resources.items():
        if value is None:
            continue
        if key.endswith("_bytes"):
            shown[key] = fmt_bytes(value)
        elif key.endswith("_seconds"):
            shown[key] = fmt_duration(value)
        else:
            shown[key] = fmt_value(value)
    return shown


# -- runs compare --------------------------------------------------------------------


def _differs(values: Iterable[str | None]) -> bool:
    return len(set(values)) > 1


def comparison_json(runs: Sequence[Run]) -> dict[str, Any]:
    """Params and metrics of several runs, keyed by name then run id."""
    param_keys = sorted({key for run in runs for key in run.params})
    metric_keys = sorted({key for run in runs for key in run.metrics})
    params = {key: {run.id: run.params.get(key) for run in runs} for key in param_keys}
    data: dict[str, Any] = to_jsonable(
        {
            "runs": [
                {"id": run.id, "name": run.name, "status": run.status, "project": run.project}
                for run in runs
            ],
            "params": params,
            "metrics": {key: {run.id: run.metrics.get(key) for run in runs} for key in metric_keys},
            "differing_params": [key for key in param_keys if _differs(params[key].values())],
        }
    )
    return data


def comparison_table(runs: Sequence[Run]) -> Table:
    """Rows of params then metrics, one column per run; differing params in yellow."""
    table = Table(title="Run comparison", title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    for run in runs:
        header = Text(short_id(run.id), style="bold")
        if run.name:
            header.append(f"\n{run.name}", style="")
        header.append("\n")
        header.append_text(status_text(run.status))
        table.add_column(header, overflow="fold")
    param_keys = sorted({key for run in runs for key in run.params})
    metric_keys = sorted({key for run in runs for key in run.metrics})
    for key in param_keys:
        values = [run.params.get(key) for run in runs]
        style = "bold yellow" if _differs(values) else ""
        table.add_row(
            Text(f"params.{key}", style=style),
            *(Text("-" if value is None else value, style=style) for value in values),
        )
    if param_keys and metric_keys:
        table.add_section()
    for key in metric_keys:
        table.add_row(f"metrics.{key}", *(fmt_value(run.metrics.get(key)) for run in runs))
    return table


# -- runs history ----------------------------------------------------------------------


def history_table(run_id: str, key: str, points: Sequence[Metric]) -> Table:
    """Step, value and time of every point of a metric."""
    table = Table(title=f"{key} of run {short_id(run_id)}", title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("value", justify="right")
    table.add_column("time")
    for point in points:
        table.add_row(str(point.step), fmt_value(point.value), fmt_time(point.timestamp))
    return table
