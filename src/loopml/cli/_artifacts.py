"""``loopml artifacts …``: list a run's artifacts and download them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli._client import open_client
from loopml.cli._format import fmt_bytes, short_id
from loopml.cli._options import Json
from loopml.cli._output import out, print_json

__all__ = ["app"]

app = typer.Typer(help="List and download the artifacts of runs.", no_args_is_help=True)

_RunId = Annotated[str, typer.Argument(help="The run id.")]


@app.command("list")
def list_artifacts(
    run_id: _RunId,
    as_json: Json = False,
) -> None:
    """List the files and folders logged to a run."""
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        artifacts = client.get_run(run_id).artifacts
    if as_json:
        print_json(list(artifacts))
        return
    if not artifacts:
        out().print(f"Run {run_id} has no artifacts.", style="dim")
        return
    table = Table(title=f"Artifacts of run {short_id(run_id)}", title_justify="left")
    table.add_column("path")
    table.add_column("type")
    table.add_column("size", justify="right")
    table.add_column("digest", style="dim", no_wrap=True)
    for artifact in artifacts:
        kind = "dir" if artifact.is_dir else "file"
        table.add_row(artifact.path, kind, fmt_bytes(artifact.size), artifact.digest)
    out().print(table)


@app.command("get")
def get(
    run_id: _RunId,
    path: Annotated[str, typer.Argument(help="The artifact's path within the run.")],
    dest: Annotated[
        Path,
        typer.Option(
            "--dest", help="Folder to download into (created if missing); it gets DEST/NAME."
        ),
    ] = Path(),
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing DEST/NAME instead of refusing."),
    ] = False,
    as_json: Json = False,
) -> None:
    """Download a run artifact as DEST/NAME (NAME: the path's last part), verified.

    A folder artifact becomes a new folder, never merged into an existing one;
    an existing DEST/NAME is refused unless --overwrite.
    """
    with open_client() as client:
        run_id = client.resolve_run_id(run_id)
        target = client.download_artifact(run_id, path, dest, overwrite=overwrite)
    if as_json:
        print_json({"run_id": run_id, "path": path, "downloaded_to": str(target.absolute())})
        return
    out().print(f"Downloaded {path} to {target}", highlight=False)
