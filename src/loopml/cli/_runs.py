"""``loopml runs …``: list, show, compare, annotate runs and read metric histories.

Housekeeping (delete, restore, mark-failed, tag, untag, env) is in :mod:`._run_admin`,
registered on the same group.
"""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from loopml.cli import _run_admin
from loopml.cli import _run_views as views
from loopml.cli._client import open_client
from loopml.cli._format import fmt_time
from loopml.cli._options import Json, Project
from loopml.cli._output import out, print_json, print_warnings, to_jsonable
from loopml.errors import EnvironmentNotCaptured, InvalidParameter, LoopmlWarning, RunStateError

__all__ = ["app"]

app = typer.Typer(help="List, inspect, compare and annotate runs.", no_args_is_help=True)

_RunId = Annotated[
    str, typer.Argument(help="The run id (as printed by 'loopml runs list --json').")
]


@app.command("list")
def list_runs(
    project: Project = None,
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\". Unquoted numbers "
            "compare params numerically (params.C = 1 finds C=1.0); quoted values are text.",
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", help='e.g. "metrics.auc DESC"; repeat for ties.'),
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max", "-n", min=1, help="Show at most this many runs.")
    ] = 100,
    deleted: Annotated[
        bool,
        typer.Option("--deleted", help="List only deleted runs (those 'runs restore' can revive)."),
    ] = False,
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="List the runs of every project.")
    ] = False,
    as_json: Json = False,
) -> None:
    """List the runs of a project, newest first unless --order-by says otherwise.

    An unquoted number compares params as numbers (params.C = 1 finds C=1 and C=1.0;
    params.C > 0.5 skips values that are not numbers); a quoted one is exact text
    (params.C = '1.0'). A key no run of the project has logged is a yellow warning.
    Deleted runs are left out; --deleted lists only them.
    """
    if all_projects and project is not None:
        raise typer.BadParameter(
            "give --project or --all-projects, not both.", param_hint="--all-projects"
        )
    with open_client() as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LoopmlWarning)
        runs = client.search_runs(
            project,
            filter,
            order_by,
            max_results,
            view="deleted" if deleted else "live",
            all_projects=all_projects,
        )
    print_warnings(caught)
    assert isinstance(runs, list)  # output="list"
    if as_json:
        print_json([views.run_json(run) for run in runs])
        return
    if not runs:
        out().print("No deleted runs found." if deleted else "No runs found.", style="dim")
        return
    metric_keys = views.pick_metric_keys(runs, [filter or "", *(order_by or [])])
    console = out()
    console.print(
        views.runs_table(
            runs, metric_keys, console.width, all_projects=all_projects, deleted=deleted
        )
    )


@app.command("show")
def show(run_id: _RunId, as_json: Json = False) -> None:
    """Show everything recorded about a run: params, metrics, context, artifacts, notes.

    A deleted run is shown too, marked deleted with when.
    """
    with open_client() as client:
        run = client.get_run(client.resolve_run_id(run_id))
        try:
            packages: int | None = len(client.get_environment(run.id))
        except EnvironmentNotCaptured:
            packages = None
    if as_json:
        data = views.run_json(run)
        data["environment_packages"] = packages
        print_json(data)
        return
    views.print_run(out(), run, packages)


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.", metavar="RUN_ID")],
    as_json: Json = False,
) -> None:
    """Compare runs side by side; params that differ are highlighted."""
    if len(run_ids) < 2:
        raise typer.BadParameter("give at least two run ids to compare.", param_hint="RUN_ID")
    with open_client() as client:
        runs = [client.get_run(client.resolve_run_id(run_id)) for run_id in run_ids]
    for run in runs:
        if run.deleted_at is not None:
            raise RunStateError(
                f"Run {run.id} is deleted (since {fmt_time(run.deleted_at)}); restore it to "
                f"compare it: loopml runs restore {run.id}"
            )
    if as_json:
        print_json(views.comparison_json(runs))
        return
    out().print(views.comparison_table(runs))


@app.command("note")
def note(
    run_id: _RunId,
    text: Annotated[str, typer.Argument(help="The note, in Markdown.")],
    as_json: Json = False,
) -> None:
    """Attach a Markdown note to a run."""
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        client.log_note("run", run_id, text)
    if as_json:
        print_json({"run_id": run_id, "note": text})
        return
    out().print(f"Added a note to run {run_id}.")


@app.command("history")
def history(
    run_id: _RunId,
    key: Annotated[str, typer.Argument(help="The metric key, e.g. 'loss'.")],
    as_json: Json = False,
) -> None:
    """Show every logged point of one metric of a run, in step order."""
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        points = client.get_metric_history(run_id, key)
        if not points:
            known = sorted(client.get_run(run_id).metrics)
            listing = ", ".join(known) if known else "none"
            raise InvalidParameter(
                f"Run {run_id} has no metric {key!r}; its metrics are: {listing}."
            )
    if as_json:
        print_json(to_jsonable(points))
        return
    out().print(views.history_table(run_id, key, points))


for _name, _command in _run_admin.COMMANDS:
    app.command(_name)(_command)
