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

The server answers only requests whose Host is a loopback name, the bound address or
one of ``--allowed-hosts``, and, with ``--token`` (or ``LOOPML_SERVE_TOKEN``), only
requests that carry it; binding an address other than loopback without a token prints
a warning. Request heads, connections and bodies are bounded by the
``LOOPML_SERVE_*`` settings (:class:`~loopml.serving._protocol.HttpLimits`,
:class:`~loopml.serving._payloads.PayloadLimits`).
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
_WILDCARD_ADDRESSES = ("0.0.0.0", "::", "[::]", "")  # noqa: S104 - recognised, not bound


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
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            "--allowed-hosts",
            help="Comma-separated Host names to answer besides localhost, 127.0.0.1, [::1] "
            "and the bound address ('*': any Host; default: LOOPML_SERVE_ALLOWED_HOSTS).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Require 'Authorization: Bearer TOKEN' on every request but health probes "
            "(default: LOOPML_SERVE_TOKEN, which other users cannot read in the process list).",
        ),
    ] = None,
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
    from loopml.serving._protocol import PROTOCOL_PATH, HttpLimits

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
        "allowed_hosts": _allowed_hosts(
            host, _or_setting(allowed_hosts, "LOOPML_SERVE_ALLOWED_HOSTS")
        ),
        "token": _or_setting(token, "LOOPML_SERVE_TOKEN") or None,
        "max_rows": settings.get("LOOPML_SERVE_MAX_ROWS"),
        "max_columns": settings.get("LOOPML_SERVE_MAX_COLUMNS"),
        "http_limits": {
            "max_head_bytes": settings.get("LOOPML_SERVE_MAX_HEADER_BYTES"),
            "max_headers": settings.get("LOOPML_SERVE_MAX_HEADERS"),
            "head_timeout": settings.get("LOOPML_SERVE_HEADER_TIMEOUT"),
            "max_connections": settings.get("LOOPML_SERVE_MAX_CONNECTIONS"),
            "keep_alive": settings.get("LOOPML_SERVE_KEEP_ALIVE"),
        },
    }
    limits = HttpLimits(**config["http_limits"])
    _warn_exposure(host, config)
    if workers == 1:
        app = _build(config, Path(config["log_folder"]))
        typer.echo(f"Serving on http://{host}:{port} (Ctrl-C to stop).", err=True)
        _exit_zero_on_sigterm()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            **limits.uvicorn_options(),
        )
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
            **{**limits.uvicorn_options(), "http": PROTOCOL_PATH},  # workers import it
        )


def _allowed_hosts(host: str, extra: str) -> list[str]:
    """Loopback names, the bound address (unless it is a wildcard) and ``extra``."""
    from loopml.serving._guard import LOOPBACK_HOSTS

    bound = [] if host in _WILDCARD_ADDRESSES else [f"[{host}]" if ":" in host else host]
    named = [name.strip() for name in extra.split(",") if name.strip()]
    return list(dict.fromkeys([*LOOPBACK_HOSTS, *bound, *named]))


def _warn_exposure(host: str, config: dict[str, Any]) -> None:
    """One warning line per way the server is reachable by more than this machine's users."""
    from loopml.serving._guard import is_loopback

    if "*" in config["allowed_hosts"]:
        typer.echo(
            "Warning: --allowed-hosts '*' answers any Host header: a web page can reach "
            "this server through DNS rebinding.",
            err=True,
        )
    if not is_loopback(host) and config["token"] is None:
        typer.echo(
            f"Warning: listening on {host or 'every address'} without a token: anyone who "
            "can reach this address can predict, read /metrics and post feedback "
            "(set LOOPML_SERVE_TOKEN).",
            err=True,
        )
    if host in _WILDCARD_ADDRESSES and config["allowed_hosts"] == _allowed_hosts(host, ""):
        typer.echo(
            "Note: only requests with a loopback Host are answered; name the host clients "
            "use with --allowed-hosts.",
            err=True,
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
    from loopml.serving._payloads import PayloadLimits
    from loopml.serving._protocol import HttpLimits, LimitedHttpTools
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
        payload=PayloadLimits(max_rows=config["max_rows"], max_columns=config["max_columns"]),
        allowed_hosts=tuple(config["allowed_hosts"]),
        token=config["token"],
    )
    # Before uvicorn accepts a connection: in a --workers process, it imports the class.
    LimitedHttpTools.configure(HttpLimits(**config["http_limits"]))
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
