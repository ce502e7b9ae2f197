"""``loopml serve``: run the inference server (FastAPI on uvicorn) for deployed endpoints.

The face is thin: it opens the default stores, builds the app with
:func:`loopml.serving._server.create_app` (which loads and warms up every routed
model before the port opens, so a broken deployment fails here with one red line),
and hands it to uvicorn. The app recovers the prediction log at start-up and
closes it, writing every logged prediction as a segment, on shutdown (Ctrl-C or
SIGTERM).

With ``--workers N`` uvicorn runs N processes; each builds its own app from
:func:`worker_app` and claims its own prediction-log folder (``worker-0``,
``worker-1`` … under the log folder), recovering any folder no running worker holds.
``/metrics`` then sums every worker's figures, which they keep in a fresh temporary
folder (see :mod:`loopml.serving._metrics`) removed when the server stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopml.serving._predlog import PredictionLog

__all__ = ["serve", "worker_app"]

_WORKER_CONFIG = "_LOOPML_SERVE_WORKER"  # private: the parent hands workers their config


def serve(
    endpoints: Annotated[
        list[str] | None,
        typer.Argument(
            help="Endpoints to serve (default: every endpoint of the project, "
            "including ones deployed later).",
            metavar="ENDPOINT",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes (each loads the models).")
    ] = 1,
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
    poll_interval: Annotated[
        float | None,
        typer.Option(
            "--poll-interval",
            min=0,
            help="Seconds between checks for new revisions and alias moves "
            "(default: LOOPML_SERVE_POLL_INTERVAL; 0: never).",
        ),
    ] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(
            "--max-batch-size",
            min=1,
            help="Most rows per model call (default: LOOPML_SERVE_MAX_BATCH_SIZE).",
        ),
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(
            "--max-wait-ms",
            min=0,
            help="How long a batch waits to fill (default: LOOPML_SERVE_MAX_WAIT_MS).",
        ),
    ] = None,
    max_queue: Annotated[
        int | None,
        typer.Option(
            "--max-queue",
            min=1,
            help="Requests that may wait per route before 503 (default: LOOPML_SERVE_MAX_QUEUE).",
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option("--trust", help="Load pickled (pyfunc) models others registered."),
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every HTTP request to stderr (off: every prediction is in the "
            "prediction log and every request in /metrics).",
        ),
    ] = False,
) -> None:
    """Serve predictions for deployed endpoints over HTTP (/v1, Open Inference v2, /metrics)."""
    import uvicorn

    from loopml import settings

    config: dict[str, Any] = {
        "endpoints": endpoints or None,
        "project": settings.project(project),
        "log_folder": str(
            log_folder if log_folder is not None else settings.home() / "predictions"
        ),
        "poll_interval": _or_setting(poll_interval, "LOOPML_SERVE_POLL_INTERVAL"),
        "max_batch_size": _or_setting(max_batch_size, "LOOPML_SERVE_MAX_BATCH_SIZE"),
        "max_wait_ms": _or_setting(max_wait_ms, "LOOPML_SERVE_MAX_WAIT_MS"),
        "max_queue": _or_setting(max_queue, "LOOPML_SERVE_MAX_QUEUE"),
        "trust": trust,
    }
    if workers == 1:
        app = _build(config, Path(config["log_folder"]))
        typer.echo(f"Serving on http://{host}:{port} (Ctrl-C to stop).", err=True)
        _exit_zero_on_sigterm()
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)
        return
    _check_deployments(config)
    os.environ[_WORKER_CONFIG] = json.dumps(config)
    typer.echo(
        f"Serving on http://{host}:{port} with {workers} workers (Ctrl-C to stop).", err=True
    )
    with _metrics_shared_by_workers():
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=access_log,
        )


def _exit_zero_on_sigterm() -> None:
    """Make a SIGTERM that uvicorn handled gracefully end the process with status 0.

    uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    handler that was installed before it started; with the default handler the
    process would die of it (status 143) after a clean shutdown.
    """
    import signal

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def _metrics_shared_by_workers() -> Iterator[None]:
    """Have the workers (spawned, so they inherit the environment) keep metrics in one folder.

    A folder the user named in the variable is used as it is; else a fresh one is
    made, and removed once the workers are gone.
    """
    from loopml.serving._metrics import SHARED_FOLDER_VARIABLE

    if os.environ.get(SHARED_FOLDER_VARIABLE):
        yield
        return
    folder = tempfile.mkdtemp(prefix="loopml-metrics-")
    os.environ[SHARED_FOLDER_VARIABLE] = folder
    try:
        yield
    finally:
        del os.environ[SHARED_FOLDER_VARIABLE]
        shutil.rmtree(folder, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app of one ``--workers`` process (uvicorn calls this in each worker)."""
    config = json.loads(os.environ[_WORKER_CONFIG])
    return _build(config, _claim_log(config))


def _or_setting(value: Any, name: str) -> Any:
    from loopml import settings

    return settings.get(name) if value is None else value


def _build(config: dict[str, Any], log: Path | PredictionLog) -> FastAPI:
    from loopml.serving._batching import BatchPolicy
    from loopml.serving._server import ServerOptions, create_app
    from loopml.tracking import get_client

    tracking = get_client()
    options = ServerOptions(
        batch=BatchPolicy(
            max_batch_size=config["max_batch_size"],
            max_wait_ms=config["max_wait_ms"],
            max_queue=config["max_queue"],
        ),
        poll_interval=config["poll_interval"],
        trust=config["trust"],
    )
    return create_app(
        tracking.store, tracking.artifacts, config["endpoints"], config["project"], log, options
    )


def _check_deployments(config: dict[str, Any]) -> None:
    """Fail in the parent, with one red line, when an endpoint has no deployment."""
    from loopml.serving._deployments import get_client

    deployments = get_client()
    for name in config["endpoints"] or ():
        deployments.get(name, project=config["project"])


def _claim_log(config: dict[str, Any]) -> PredictionLog:
    """Open the first ``worker-N`` log folder no running worker holds; recover the others."""
    import socket

    from loopml.errors import InvalidParameter
    from loopml.serving._predlog import PredictionLog
    from loopml.tracking import get_client

    tracking = get_client()
    base = Path(config["log_folder"])
    source = socket.gethostname()

    def open_log(folder: Path) -> PredictionLog | None:
        try:
            return PredictionLog(folder, tracking.store, tracking.artifacts, source)
        except InvalidParameter:
            return None  # another worker holds it

    claimed = None
    index = 0
    while claimed is None:
        claimed = open_log(base / f"worker-{index}")
        index += 1
    for folder in [base, *sorted(base.glob("worker-*"))]:
        if folder == claimed.folder or not folder.is_dir():
            continue
        orphan = open_log(folder)
        if orphan is not None:
            with orphan:
                orphan.recover()
    return claimed
