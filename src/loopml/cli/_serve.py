"""``loopml serve``: run the inference server (FastAPI on uvicorn) for deployed endpoints.

The face is thin: it opens the default stores, builds the app with
:func:`loopml.serving._server.create_app` (which loads every routed model before
the port opens, so a broken deployment fails here with one red line), and hands it
to uvicorn. The app recovers the prediction log at start-up and closes it, writing
every logged prediction as a segment, on shutdown (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve"]


def serve(
    endpoints: Annotated[
        list[str] | None,
        typer.Argument(
            help="Endpoints to serve (default: every endpoint of the project).",
            metavar="ENDPOINT",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
    ] = None,
    log_folder: Annotated[
        Path | None,
        typer.Option(
            "--log-folder",
            help="Local folder of the prediction log (default: LOOPML_HOME/predictions).",
        ),
    ] = None,
) -> None:
    """Serve predictions for deployed endpoints over HTTP (/v1 and Open Inference v2)."""
    import uvicorn

    from loopml import settings
    from loopml.serving._server import create_app
    from loopml.tracking import get_client

    tracking = get_client()
    app = create_app(
        tracking.store,
        tracking.artifacts,
        endpoints or None,
        settings.project(project),
        log_folder if log_folder is not None else settings.home() / "predictions",
    )
    typer.echo(f"Serving on http://{host}:{port} (Ctrl-C to stop).", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
