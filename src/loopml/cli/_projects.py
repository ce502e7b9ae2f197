"""``loopml projects …``: list projects and annotate them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from loopml.cli._client import open_client
from loopml.cli._format import fmt_time
from loopml.cli._options import Json
from loopml.cli._output import out, print_json

__all__ = ["app"]

app = typer.Typer(help="List and annotate projects.", no_args_is_help=True)


@app.command("list")
def list_projects(as_json: Json = False) -> None:
    """List every project with its runs (live and deleted), datasets, models, endpoints
    and last activity."""
    with open_client() as client:
        summaries = client.project_summaries()
    if as_json:
        print_json(summaries)
        return
    if not summaries:
        out().print("No projects yet. Try 'loopml demo'.", style="dim")
        return
    table = Table(title="Projects", title_justify="left")
    table.add_column("name", overflow="fold")
    for heading in ("runs", "deleted runs", "datasets", "models", "endpoints"):
        table.add_column(heading, justify="right")
    table.add_column("last activity", no_wrap=True)
    for summary in summaries:
        table.add_row(
            summary.name,
            str(summary.runs),
            str(summary.deleted_runs),
            str(summary.datasets),
            str(summary.models),
            str(summary.endpoints),
            fmt_time(summary.last_activity),
        )
    out().print(table)


@app.command("note")
def note(
    project: Annotated[str, typer.Argument(help="The project name.")],
    text: Annotated[str, typer.Argument(help="The note, in Markdown.")],
    as_json: Json = False,
) -> None:
    """Attach a Markdown note to a project."""
    with open_client() as client:
        client.log_note("project", project, text)
    if as_json:
        print_json({"project": project, "note": text})
        return
    out().print(f"Added a note to project {project!r}.", highlight=False)
