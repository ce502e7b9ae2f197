"""``loopml pipelines …``: run a pipeline with a live view of its DAG; list, show and resume runs.

Every command is a thin face over :mod:`loopml.pipelines`. Bad references and
parameters, an executor that is not installed, or a run that cannot be resumed
are the app's one red line and exit code 1. A step that fails prints its error
and how to resume (exit 1); a run that stops at an approval gate prints the
approval to decide (exit 0: nothing went wrong, a person has to act).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from loopml.cli import _pipeline_views as views
from loopml.cli._format import fmt_duration, fmt_time, short_id
from loopml.cli._options import Json, Project
from loopml.cli._output import out, print_json
from loopml.errors import InvalidParameter

if TYPE_CHECKING:
    from loopml.errors import StepFailed
    from loopml.pipelines import Event, PipelineRun

__all__ = ["ExecutorName", "app", "execute_live", "parse_params", "report_outcome"]

app = typer.Typer(
    help="Run pipelines with a live view of their DAG; list, show and resume pipeline runs.",
    no_args_is_help=True,
)


class ExecutorName(StrEnum):
    """Where steps run."""

    local = "local"
    ray = "ray"


_RunId = Annotated[
    str,
    typer.Argument(
        help="The pipeline run id, or a unique prefix of 4+ characters.", metavar="RUN_ID"
    ),
]
_Executor = Annotated[
    ExecutorName,
    typer.Option("--executor", "-e", help="local: worker processes here; ray: a Ray cluster."),
]
_MaxWorkers = Annotated[
    int | None,
    typer.Option("--max-workers", min=1, help="Steps run at once on the local executor."),
]


# -- pipelines run ---------------------------------------------------------------------


@app.command("run")
def run(
    reference: Annotated[
        str,
        typer.Argument(
            help="MODULE:PIPELINE (importable from here) or path/to/file.py:PIPELINE.",
            metavar="MODULE:PIPELINE",
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-P",
            help="A parameter as KEY=VALUE (repeat for several); the text is converted "
            "to the parameter's annotated type.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    executor: _Executor = ExecutorName.local,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Run every step, even those an earlier run cached."),
    ] = False,
    max_workers: _MaxWorkers = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Run a pipeline and show its DAG live: step status, durations and cached steps.

    Exits 0 when the run finished or waits at an approval gate, 1 when a step
    failed (fix it, then 'loopml pipelines resume RUN_ID') or the pipeline could
    not start. With --json there is no live view: the run's record (as
    'loopml pipelines show --json' prints it) goes to stdout when it ends, failed too.
    """
    from loopml.pipelines import load_pipeline

    pipeline = load_pipeline(reference)
    params = pipeline.resolve_params(parse_params(param or []))
    graph = pipeline.build(params)
    console = out()
    steps = sum(node.kind == "step" for node in graph.nodes.values())
    if not as_json:
        console.print(
            f"Running pipeline [bold]{pipeline.name}[/] ({steps} steps) from {reference} "
            f"on the {executor.value} executor, cache {'off' if no_cache else 'on'} …",
            highlight=False,
            soft_wrap=True,
        )
    view = views.DagView(graph.describe()["nodes"], f"Pipeline {pipeline.name}", source_lookup())

    def start(on_event: Callable[[Event], None]) -> PipelineRun:
        return pipeline.run(
            params=params,
            executor=executor.value,
            cache=not no_cache,
            max_workers=max_workers,
            project=project,
            on_event=on_event,
        )

    raise typer.Exit(finish(console, view, start, as_json=as_json))


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["lr=0.1", "name=a=b"]`` → ``{"lr": "0.1", "name": "a=b"}`` (typed by the pipeline).

    Raises:
        InvalidParameter: an item without ``=`` or a key given twice.
    """
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidParameter(
                f"The --param/-P option takes KEY=VALUE, e.g. -P lr=0.1; got {pair!r}."
            )
        if key in params:
            raise InvalidParameter(f"Parameter {key!r} is given twice (-P {key}=…).")
        params[key] = value
    return params


# -- pipelines resume ------------------------------------------------------------------


@app.command("resume")
def resume(
    run_id: _RunId,
    executor: _Executor = ExecutorName.local,
    max_workers: _MaxWorkers = None,
    as_json: Json = False,
) -> None:
    """Continue a failed, interrupted or approval-waiting run; finished steps are reused.

    Past an approved gate the run goes on; at a rejected one it ends as rejected.
    Exits, and prints with --json, like 'loopml pipelines run'.
    """
    import loopml.pipelines

    recorded = loopml.pipelines.get_pipeline_run(run_id)
    console = out()
    if not as_json:
        console.print(
            f"Resuming pipeline run [bold]{recorded.id}[/] ({recorded.pipeline}, "
            f"{views.step_summary(recorded)}) on the {executor.value} executor …",
            highlight=False,
            soft_wrap=True,
        )
    view = views.DagView(
        recorded.graph.get("nodes", []), f"Pipeline {recorded.pipeline}", source_lookup()
    )
    view.load(recorded)

    def start(on_event: Callable[[Event], None]) -> PipelineRun:
        return loopml.pipelines.resume(
            recorded.id, executor=executor.value, max_workers=max_workers, on_event=on_event
        )

    raise typer.Exit(finish(console, view, start, as_json=as_json))


# -- pipelines reproduce ---------------------------------------------------------------


@app.command("reproduce")
def reproduce(
    run_id: _RunId,
    executor: _Executor = ExecutorName.local,
    keep_worktree: Annotated[
        bool, typer.Option("--keep-worktree", help="Leave the checked-out commit on disk.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Re-run a recorded run from its git commit, parameters and data, cache off, and
    compare every step's outputs with the original's.

    Exits 0 when every output matched, 1 when a step could not be reproduced (the
    report names the steps that are not deterministic).
    """
    import loopml.pipelines

    recorded = loopml.pipelines.get_pipeline_run(run_id)
    console = out()
    if not as_json:
        console.print(
            f"Reproducing pipeline run [bold]{recorded.id}[/] ({recorded.pipeline}) from "
            f"commit {(recorded.git_commit or '?')[:12]} on the {executor.value} executor …",
            highlight=False,
            soft_wrap=True,
        )

    def on_event(event: Event) -> None:
        if not as_json:
            console.print(f"  {event.step}: {event.status}", highlight=False)

    report = loopml.pipelines.reproduce(
        recorded.id, executor=executor.value, keep_worktree=keep_worktree, on_event=on_event
    )
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(views.reproduction_table(report))
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        verdict = (
            "[green]reproduced[/]: every output matched"
            if report.reproduced
            else "[red]not reproduced[/]: "
            + (", ".join(report.not_deterministic) or "some steps differ")
        )
        console.print(f"{verdict} (new run {report.reproduced_run_id})", highlight=False)
    raise typer.Exit(0 if report.reproduced else 1)


# -- pipelines list / show -------------------------------------------------------------


@app.command("list")
def list_runs(
    project: Project = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max", "-n", min=1, help="Show at most this many runs.")
    ] = 50,
    as_json: Json = False,
) -> None:
    """List the pipeline runs of a project, newest first."""
    import loopml.pipelines
    from loopml.cli._client import require_project

    name = require_project(project)
    runs = loopml.pipelines.list_pipeline_runs(name, pipeline, max_results)
    if as_json:
        print_json([views.pipeline_run_json(run) for run in runs])
        return
    if not runs:
        out().print("No pipeline runs found.", style="dim")
        return
    console = out()
    console.print(views.pipeline_runs_table(runs, name, console.width))


@app.command("show")
def show(run_id: _RunId, as_json: Json = False) -> None:
    """Show a pipeline run: its DAG with status, timings and where cached steps came from."""
    import loopml.pipelines

    run = loopml.pipelines.get_pipeline_run(run_id)
    source_of = source_lookup()
    if as_json:
        print_json(views.pipeline_run_json(run, source_of))
        return
    console = out()
    console.print(
        Panel(_summary(run), title=f"Pipeline run {short_id(run.id)}", title_align="left")
    )
    view = views.DagView(run.graph.get("nodes", []), "Steps", source_of)
    view.load(run)
    console.print(view.table(with_runs=True))
    hints = _next_steps(run)
    if hints:
        console.print()
        for line in hints:
            console.print(line, highlight=False)


def _summary(run: PipelineRun) -> Table:
    fields: dict[str, Any] = {
        "id": run.id,
        "pipeline": run.pipeline,
        "reference": run.reference or "-",
        "status": views.marker(run.status),
        "steps": views.step_summary(run),
        "params": ", ".join(f"{k}={v!r}" for k, v in run.params.items()) or "-",
        "executor": run.executor,
        "cache": "on" if run.use_cache else "off",
        "git commit": run.git_commit or "-",
        "start": fmt_time(run.start_time),
        "end": fmt_time(run.end_time),
        "duration": fmt_duration(views.duration_seconds(run)),
    }
    if run.resumed_from:
        fields["resumed from"] = run.resumed_from
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in fields.items():
        table.add_row(key, value)
    return table


def _next_steps(run: PipelineRun) -> list[str]:
    """What to do about a run that stopped: the failed step, or the approval to decide."""
    lines: list[str] = []
    for record in run.steps.values():
        if record.status in ("failed", "timeout") and record.run_id:
            lines.append(
                f"[red]✗ {record.name}[/]: {record.error or record.status}  "
                f"[dim](traceback: loopml runs show {record.run_id})[/]"
            )
        if record.status == "waiting_for_approval" and record.approval_id is not None:
            lines.append(
                f"[yellow]⏸ {record.name}[/]: waiting for approval {record.approval_id}: "
                f"[bold]loopml approvals approve {record.approval_id}[/] (or reject)"
            )
    if lines and run.status != "rejected":
        lines.append(f"Then: [bold]loopml pipelines resume {run.id}[/]")
    return lines


# -- running with a live view ------------------------------------------------------------


def source_lookup() -> views.SourceLookup:
    """Step run id → its pipeline run (the parent run), remembered per id."""
    found: dict[str, str | None] = {}

    def source_of(step_run: str) -> str | None:
        if step_run not in found:
            from loopml.errors import RunNotFound
            from loopml.tracking import get_client

            try:
                found[step_run] = get_client().get_run(step_run).parent_id
            except RunNotFound:  # deleted by gc since
                found[step_run] = None
        return found[step_run]

    return source_of


def execute_live(
    console: Console,
    view: views.DagView,
    start: Callable[[Callable[[Event], None]], PipelineRun],
    *,
    lines: bool = True,
) -> PipelineRun:
    """Run ``start(on_event)`` while showing ``view``: a live table on a terminal, else
    one line per event (``lines``); the view ends showing the recorded run.

    Raises:
        StepFailed: a step failed (the view shows the recorded, failed run).
    """
    import loopml.pipelines
    from loopml.errors import StepFailed

    if not console.is_terminal:

        def on_event(event: Event) -> None:
            view.apply(event)
            if lines:
                console.print(view.line(event), highlight=False, soft_wrap=True)

        try:
            finished = start(on_event)
        except StepFailed as exc:
            view.load(loopml.pipelines.get_pipeline_run(exc.run_id))
            raise
        view.load(finished)
        return finished
    with Live(view, console=console, refresh_per_second=8) as live:
        try:
            finished = start(view.apply)
        except StepFailed as exc:
            view.load(loopml.pipelines.get_pipeline_run(exc.run_id))
            live.refresh()
            raise
        view.load(finished)
        live.refresh()
    return finished


def finish(
    console: Console,
    view: views.DagView,
    start: Callable[[Callable[[Event], None]], PipelineRun],
    *,
    as_json: bool = False,
) -> int:
    """Run with a live view, then say how it ended; return the exit code.

    With ``as_json``, no view: the run's record goes to stdout as JSON when it ends.
    """
    from loopml.errors import StepFailed

    if as_json:
        return _finish_json(start)
    try:
        finished = execute_live(console, view, start)
    except StepFailed as exc:
        report_failure(exc)
        return 1
    return report_outcome(console, finished)


def _finish_json(start: Callable[[Callable[[Event], None]], PipelineRun]) -> int:
    """Run without a view; print the run's record as JSON (a failed one too: exit 1)."""
    import loopml.pipelines
    from loopml.errors import StepFailed

    try:
        finished = start(lambda event: None)
    except StepFailed as exc:
        report_failure(exc)
        failed = loopml.pipelines.get_pipeline_run(exc.run_id)
        print_json(views.pipeline_run_json(failed, source_lookup()))
        return 1
    print_json(views.pipeline_run_json(finished, source_lookup()))
    return 0


def report_outcome(console: Console, run: PipelineRun) -> int:
    """Say how a run ended (finished, waiting for approval, rejected); return the exit code."""
    took = fmt_duration(views.duration_seconds(run))
    if run.status == "waiting_for_approval":
        for record in run.steps.values():
            if record.status == "waiting_for_approval" and record.approval_id is not None:
                message = _gate_message(run, record.name)
                console.print(
                    f"[yellow]⏸[/] Pipeline run [bold]{run.id}[/] waits for approval "
                    f"[bold]{record.approval_id}[/] at gate {record.name!r}"
                    + (f": {message}" if message else "."),
                    highlight=False,
                    soft_wrap=True,
                )
                console.print(
                    f"  Approve: [bold]loopml approvals approve {record.approval_id}[/] "
                    f'[dim]--comment "…"[/]\n'
                    f"  Reject:  [bold]loopml approvals reject {record.approval_id}[/]\n"
                    f"  Then:    [bold]loopml pipelines resume {run.id}[/]",
                    highlight=False,
                    soft_wrap=True,
                )
        return 0
    if run.status == "rejected":
        console.print(
            f"[magenta]✗[/] Pipeline run [bold]{run.id}[/] stopped: its approval was rejected "
            f"[dim](loopml approvals list --status rejected)[/].",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    steps = [s for s in run.steps.values() if s.kind == "step"]
    cached = sum(s.status == "cached" for s in steps)
    console.print(
        f"[green]✓[/] Pipeline run [bold]{run.id}[/] {run.status} in {took}: {len(steps)} "
        f"steps, {len(steps) - cached} ran, {cached} cached.",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  Details: [bold]loopml pipelines show {short_id(run.id)}[/]", highlight=False)
    return 0


def _gate_message(run: PipelineRun, gate: str) -> str | None:
    for node in run.graph.get("nodes", []):
        if node.get("name") == gate:
            message = node.get("message")
            return str(message) if message else None
    return None


def report_failure(exc: StepFailed) -> None:
    """Print the failed step's error (one red line) and how to resume, on stderr."""
    import loopml.pipelines

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    record = loopml.pipelines.get_pipeline_run(exc.run_id).steps.get(exc.step)
    message = (record.error if record is not None else None) or str(exc).splitlines()[0]
    # The worker prefixes the step's own message with this; the line names the step already.
    message = message.removeprefix(f"Step {exc.step!r} failed: ")
    error_type = _error_type(record.run_id if record is not None else None)
    if error_type and not message.startswith(error_type):
        message = f"{error_type}: {message}"
    console.print(
        f"error: pipeline run {exc.run_id} failed at step {exc.step!r}: {message}",
        style="red",
        markup=False,
    )
    where = (
        f" The traceback: loopml runs show {record.run_id}."
        if record is not None and record.run_id
        else ""
    )
    console.print(
        f"hint: fix it, then run `loopml pipelines resume {exc.run_id}`; finished steps are "
        f"reused.{where}",
        style="dim",
        markup=False,
    )


def _error_type(step_run: str | None) -> str | None:
    """The exception type a step run failed with, as recorded with the run."""
    if step_run is None:
        return None
    from loopml.tracking import get_client

    failure = get_client().get_run(step_run).failure or {}
    kind = failure.get("type")
    return str(kind) if kind else None
