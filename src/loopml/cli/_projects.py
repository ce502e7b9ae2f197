"""``loopml projects …``: list projects and annotate them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from loopml.cli._client import open_client
from loopml.cli._options import Json
from loopml.cli._output import out, print_json

__all__ = ["app"]

app = typer.Typer(help="List and annotate projects.", no_args_is_help=True)


@app.command("list")
def list_projects(as_json: Json = False) -> None:
    """List every project in the store."""
    with open_client() as client:
        names = client.list_projects()
    if as_json:
        print_json([{"name": name} for name in names])
        return
    if not names:
        out().print("No projects yet. Try 'loopml demo'.", style="dim")
        return
    table = Table(title="Projects", title_justify="left")
    table.add_column("name")
    for name in names:
        table.add_row(name)
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
