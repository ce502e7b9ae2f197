"""How pipeline runs look: the DAG table (live and recorded), event lines, JSON shapes.

A :class:`DagView` holds one row per node in DAG order. The live view feeds it the
runner's events (and Rich redraws it, so running steps' durations tick); once a
run is over it is refreshed from the recorded run, so the table on screen and
``loopml pipelines show`` agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_duration, fmt_time, short_id
from loopml.cli._output import to_jsonable

if TYPE_CHECKING:
    from loopml.pipelines import Event, PipelineRun, ReproductionReport, StepRecord

__all__ = [
    "DagView",
    "direct_needs",
    "marker",
    "pipeline_run_json",
    "pipeline_runs_table",
    "reproduction_table",
    "step_summary",
]

#: Marker and style of every node status (steps, gates, and runs in lists).
MARKERS: dict[str, tuple[str, str]] = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold cyan"),
    "finished": ("✓", "green"),
    "cached": ("↺", "blue"),
    "failed": ("✗", "bold red"),
    "timeout": ("✗", "bold red"),
    "interrupted": ("!", "yellow"),
    "killed": ("!", "yellow"),
    "lost": ("?", "magenta"),
    "waiting_for_approval": ("⏸", "bold yellow"),
    "approved": ("✓", "green"),
    "rejected": ("✗", "magenta"),
    "skipped": ("-", "dim"),
}
_PARAMS_WIDTH = 40

SourceLookup = Callable[[str], "str | None"]
"""Step run id → the pipeline run it belongs to (for "cached from …"), or None."""


def marker(status: str) -> Text:
    """``✓ finished``, ``↺ cached`` … coloured."""
    symbol, style = MARKERS.get(status, ("?", ""))
    return Text(f"{symbol} {status}", style=style)


def direct_needs(nodes: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """The upstream nodes of each node, without those implied through another upstream.

    A gate waits for every node traced before it; showing only the nodes nothing
    else already covers keeps the table readable.
    """
    ancestors: dict[str, set[str]] = {}
    needs: dict[str, tuple[str, ...]] = {}
    for node in nodes:
        name = str(node["name"])
        upstream = {str(ref[0]) for ref in (node.get("inputs") or {}).values()}
        upstream |= {str(after) for after in node.get("after") or ()}
        implied = set().union(*(ancestors.get(up, set()) for up in upstream))
        needs[name] = tuple(up for up in _ordered(upstream, ancestors) if up not in implied)
        ancestors[name] = upstream | implied
    return needs


def _ordered(names: Iterable[str], known: Mapping[str, object]) -> list[str]:
    order = {name: i for i, name in enumerate(known)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


@dataclass
class _Row:
    name: str
    kind: str
    needs: tuple[str, ...]
    status: str = "pending"
    run_id: str | None = None
    cached_from: str | None = None
    started: float | None = None  # time.monotonic() of the running event
    seconds: float | None = None
    attempts: int = 0
    note: str | None = None


class DagView:
    """The nodes of one pipeline run and their state, renderable as a Rich table.

    Args:
        nodes: the DAG as stored with a run (``graph["nodes"]``) or from
            ``Graph.describe()["nodes"]``.
        title: the table's title.
        source_of: finds the pipeline run a cache source belongs to.
    """

    def __init__(
        self,
        nodes: Sequence[Mapping[str, Any]],
        title: str,
        source_of: SourceLookup | None = None,
    ) -> None:
        self.title = title
        self._source_of = source_of
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._set_nodes(nodes)

    def _set_nodes(self, nodes: Sequence[Mapping[str, Any]]) -> None:
        needs = direct_needs(nodes)
        rows: dict[str, _Row] = {}
        for node in nodes:
            name = str(node["name"])
            row = self._rows.get(name) or _Row(name, str(node.get("kind", "step")), needs[name])
            row.needs = needs[name]
            rows[name] = row
        self._rows = rows

    @property
    def width(self) -> int:
        """Width of the longest node name (for aligned event lines)."""
        return max((len(name) for name in self._rows), default=4)

    def statuses(self) -> dict[str, str]:
        """Node name → status, in DAG order."""
        with self._lock:
            return {name: row.status for name, row in self._rows.items()}

    # -- updates ----------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Record a runner event."""
        with self._lock:
            row = self._rows.get(event.step)
            if row is None:  # a node the recorded graph did not have (a resumed, changed DAG)
                row = self._rows[event.step] = _Row(event.step, "step", ())
            row.status = event.status
            row.run_id = event.run_id or row.run_id
            now = time.monotonic()
            if event.status == "running":
                row.started, row.seconds, row.note, row.cached_from = now, None, None, None
                return
            if row.started is not None:
                row.seconds = now - row.started
            row.started = None
            detail = event.detail or None
            if event.status == "cached" and detail and detail.startswith("from "):
                row.cached_from = detail[5:]
                row.note = None
            elif event.status == "waiting_for_approval" and detail:
                row.note = detail
            elif detail:
                row.note = _first_line(detail, row.name)

    def load(self, run: PipelineRun) -> None:
        """Replace what the events said with what the store recorded."""
        with self._lock:
            self._set_nodes(run.graph.get("nodes", []))
            for name, record in run.steps.items():
                row = self._rows.get(name)
                if row is None:
                    continue
                row.status = record.status
                row.run_id = record.run_id
                row.cached_from = record.cached_from
                row.attempts = record.attempts
                row.started = None
                row.seconds = None if record.status == "cached" else record.duration_seconds
                row.note = _record_note(record)

    # -- rendering --------------------------------------------------------------------

    def line(self, event: Event) -> Text:
        """One line for a non-interactive console: marker, step, status, duration, detail."""
        with self._lock:
            row = self._rows.get(event.step)
            seconds = None if row is None else row.seconds
            cached_from = None if row is None else row.cached_from
            note = None if row is None else row.note
        symbol, style = MARKERS.get(event.status, ("?", ""))
        text = Text("  ")
        text.append(symbol, style=style)
        text.append(f" {event.step:<{self.width}}  ")
        text.append(f"{event.status:<8}", style=style)
        parts: list[str] = []
        if event.status == "running" and event.run_id:
            parts.append(f"run {short_id(event.run_id)}")
        elif seconds is not None:
            parts.append(fmt_duration(seconds))
        if event.status == "cached" and cached_from:
            parts.append(self._source_text(cached_from))
        elif note and event.status != "running":
            parts.append(note)
        if parts:
            text.append("  " + "  ".join(parts))
        return text

    def table(self, *, with_runs: bool = False) -> Table:
        """The DAG as a table: one row per node in DAG order."""
        with self._lock:
            rows = list(self._rows.values())
        table = Table(title=self.title, title_justify="left")
        table.add_column("step", style="bold", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("needs", overflow="fold")
        if with_runs:
            table.add_column("run", no_wrap=True)
        notes = [self._note(row) for row in rows]
        if any(notes):
            table.add_column("", overflow="fold")
        now = time.monotonic()
        for row, note in zip(rows, notes, strict=True):
            if row.started is not None:
                duration = Text(fmt_duration(now - row.started) + "…", style="dim")
            else:
                duration = Text(fmt_duration(row.seconds) if row.seconds is not None else "")
            cells: list[str | Text] = [
                row.name if row.kind == "step" else Text(row.name, style="bold yellow"),
                marker(row.status),
                duration,
                ", ".join(row.needs),
            ]
            if with_runs:
                cells.append(short_id(row.run_id) if row.run_id else "")
            if any(notes):
                cells.append(note)
            table.add_row(*cells)
        return table

    def _note(self, row: _Row) -> Text:
        if row.status == "cached" and row.cached_from:
            return Text(self._source_text(row.cached_from), style="blue")
        if row.attempts > 1:
            extra = f"{row.attempts} attempts" + (f"; {row.note}" if row.note else "")
            return Text(extra, style="red" if row.status in ("failed", "timeout") else "")
        if not row.note:
            return Text("")
        return Text(row.note, style="red" if row.status in ("failed", "timeout") else "")

    def _source_text(self, step_run: str) -> str:
        pipeline_run = self._source_of(step_run) if self._source_of is not None else None
        if pipeline_run is None:
            return f"from step run {short_id(step_run)}"
        return f"from run {short_id(pipeline_run)}"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table()


def _record_note(record: StepRecord) -> str | None:
    if record.kind == "gate":
        return None if record.approval_id is None else f"approval {record.approval_id}"
    if record.error:
        return _first_line(record.error, record.name)
    return None


def _first_line(message: str, step: str) -> str:
    """The first line of a step's error, without the worker's "Step 'x' failed: " prefix."""
    lines = message.strip().splitlines()
    return lines[0].removeprefix(f"Step {step!r} failed: ") if lines else ""


# -- summaries and lists ------------------------------------------------------------------


def step_summary(run: PipelineRun) -> str:
    """``6/6 (4 cached)``, ``2/5, failed at train`` …: how far a run got."""
    steps = [s for s in run.steps.values() if s.kind == "step"]
    done = sum(s.status in ("finished", "cached") for s in steps)
    cached = sum(s.status == "cached" for s in steps)
    text = f"{done}/{len(steps)}"
    if cached:
        text += f" ({cached} cached)"
    stopped = [s.name for s in run.steps.values() if s.status in ("failed", "timeout")]
    waiting = [s.name for s in run.steps.values() if s.status == "waiting_for_approval"]
    if stopped:
        text += f", failed at {stopped[0]}"
    elif waiting:
        text += f", waiting at {waiting[0]}"
    return text


def _params_text(params: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())
    return text if len(text) <= _PARAMS_WIDTH else text[: _PARAMS_WIDTH - 1] + "…"


def duration_seconds(run: PipelineRun) -> float | None:
    """Wall time of a pipeline run, once it ended."""
    if run.end_time is None:
        return None
    return (run.end_time - run.start_time) / 1000


def pipeline_runs_table(runs: Sequence[PipelineRun], project: str, width: int) -> Table:
    """One row per pipeline run: id, pipeline, status, steps, start, duration, params.

    Narrow consoles (``width`` characters) drop the params, then the executor,
    rather than squeezing every column unreadable.
    """
    show_executor, show_params = width >= 100, width >= 120
    table = Table(title=f"Pipeline runs of project {project!r}", title_justify="left")
    table.add_column("id", style="bold", no_wrap=True, min_width=8)
    table.add_column("pipeline", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    table.add_column("steps", overflow="fold", min_width=10)
    table.add_column("start", no_wrap=True, min_width=11)
    table.add_column("duration", justify="right", no_wrap=True)
    if show_executor:
        table.add_column("executor", no_wrap=True)
    if show_params:
        table.add_column("params", overflow="fold", min_width=12)
    for run in runs:
        cells: list[str | Text] = [
            short_id(run.id),
            run.pipeline,
            marker(run.status),
            step_summary(run),
            fmt_time(run.start_time, short=True),
            fmt_duration(duration_seconds(run)),
        ]
        if show_executor:
            cells.append(run.executor)
        if show_params:
            cells.append(_params_text(run.params))
        table.add_row(*cells)
    return table


def pipeline_run_json(run: PipelineRun, source_of: SourceLookup | None = None) -> dict[str, Any]:
    """The full record of a pipeline run as JSON, with durations, needs and cache sources."""
    data: dict[str, Any] = to_jsonable(run)
    data["duration_seconds"] = duration_seconds(run)
    needs = direct_needs(run.graph.get("nodes", []))
    for name, record in run.steps.items():
        step = data["steps"][name]
        step["duration_seconds"] = record.duration_seconds
        step["needs"] = list(needs.get(name, ()))
        if record.cached_from is not None and source_of is not None:
            step["cached_from_pipeline_run"] = source_of(record.cached_from)
    return data


def reproduction_table(report: ReproductionReport) -> Table:
    """One row per step: whether its outputs matched the original's, and why not."""
    table = Table(title=f"Reproduction of {report.original_run_id}", title_justify="left")
    table.add_column("step")
    table.add_column("outputs")
    table.add_column("note")
    for step in report.steps:
        mark = "[green]✓ identical[/]" if step.matches else "[red]✗ differ[/]"
        table.add_row(step.step, mark, step.note or "")
    return table
