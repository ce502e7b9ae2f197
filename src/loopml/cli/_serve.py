"""``loopml serve``: run the inference server (FastAPI on uvicorn) for deployed endpoints.

The face is thin: it opens the default stores, builds the app with
:func:`loopml.serving._server.create_app` (which loads and warms up every routed
model before the port opens, so a broken deployment fails here with one red line),
and hands it to uvicorn. The app recovers the prediction log at start-up and
closes it, writing every logged prediction as a segment, on shutdown (Ctrl-C or
SIGTERM).

``--model``/``-m`` serves a model version (``credit/3``, ``credit@champion``,
``models:/credit/3``) without a deployment: an endpoint named after the model, with
one primary route to it, kept in memory only (an alias is followed as it moves).

The port is bound first (``--port 0``: any free port), so a busy port is one red
line; once the server answers, a line gives its URL (with ``--json``, one JSON
object on stdout: ``url``, ``host``, ``port``, ``pid``, ``endpoints``, ``workers``).

Every server process (with ``--workers N``, each of the N, which build their apps
from :func:`worker_app`) claims a prediction-log folder of its own (``worker-0``,
``worker-1`` … under the log folder; :mod:`loopml.serving._claim`) and recovers any
folder no running process holds, so several servers share one home.
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
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

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
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0: any free port, announced).")
    ] = 8080,
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
            help="Local folder of the prediction log; each server process writes in a "
            "worker-N folder of its own inside (default: LOOPML_HOME/predictions).",
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
    log_probabilities: Annotated[
        bool | None,
        typer.Option(
            "--log-probabilities/--no-log-probabilities",
            help="Log every request's class probabilities for models that have them, for "
            "monitors that estimate performance before labels arrive (default: "
            "LOOPML_SERVE_LOG_PROBABILITIES; an endpoint's setting overrides it).",
        ),
    ] = None,
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
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Serve this model version without a deployment (credit/3, credit@champion, "
            "models:/credit/3), as an endpoint named after the model; repeatable.",
            metavar="MODEL",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Announce the server as one JSON line on stdout."),
    ] = False,
) -> None:
    """Serve predictions for deployed endpoints over HTTP (/v1, Open Inference v2, /metrics).

    With --model and no ENDPOINT, only the models are served.
    """
    from loopml import settings
    from loopml.serving._claim import default_log_base
    from loopml.serving._listen import bind_socket

    config: dict[str, Any] = {
        "endpoints": endpoints or ([] if models else None),
        "models": list(models or ()),
        "project": settings.project(project),
        "log_folder": str(log_folder if log_folder is not None else default_log_base()),
        "poll_interval": _or_setting(poll_interval, "LOOPML_SERVE_POLL_INTERVAL"),
        "max_batch_size": _or_setting(max_batch_size, "LOOPML_SERVE_MAX_BATCH_SIZE"),
        "max_wait_ms": _or_setting(max_wait_ms, "LOOPML_SERVE_MAX_WAIT_MS"),
        "max_queue": _or_setting(max_queue, "LOOPML_SERVE_MAX_QUEUE"),
        "trust": trust,
        "log_probabilities": _or_setting(log_probabilities, "LOOPML_SERVE_LOG_PROBABILITIES"),
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
    _warn_exposure(host, config)
    sock = bind_socket(host, port)
    try:
        _run(config, sock, host, workers, access_log=access_log, as_json=as_json)
    finally:
        sock.close()


def _run(
    config: dict[str, Any],
    sock: socket.socket,
    host: str,
    workers: int,
    *,
    access_log: bool,
    as_json: bool,
) -> None:
    """Build the app(s) and serve on ``sock`` until Ctrl-C or SIGTERM."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from loopml.serving._listen import AnnouncingServer
    from loopml.serving._protocol import PROTOCOL_PATH, HttpLimits

    limits = HttpLimits(**config["http_limits"])
    port = int(sock.getsockname()[1])
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
        **limits.uvicorn_options(),
    }
    _log_to_stderr()
    if workers == 1:
        app = _build(config)
        server = AnnouncingServer(
            uvicorn.Config(app, **options),
            lambda: _announce(config, host, port, workers, as_json=as_json),
        )
        _exit_zero_on_sigterm()
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        if not server.started:
            raise typer.Exit(3)  # uvicorn logged why (the app's start-up failed)
        return
    _check_deployments(config)
    os.environ[_WORKER_CONFIG] = json.dumps(config)
    with _metrics_shared_by_workers():
        worker_config = uvicorn.Config(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            **{**options, "http": PROTOCOL_PATH},  # workers import it
        )
        # Connections wait in the backlog until a worker has loaded the models.
        sock.listen(worker_config.backlog)
        _announce(config, host, port, workers, as_json=as_json)
        with contextlib.suppress(KeyboardInterrupt):
            Multiprocess(worker_config, sockets=[sock]).run()


def _announce(config: dict[str, Any], host: str, port: int, workers: int, *, as_json: bool) -> None:
    """Say where the server answers: a line on stderr, or a JSON object on stdout."""
    from loopml.serving._listen import server_url

    url = server_url(host, port)
    if as_json:
        served = [*(config["endpoints"] or ()), *(_model_name(m) for m in config["models"])]
        line = {
            "event": "serving",
            "url": url,
            "host": host,
            "port": port,
            "pid": os.getpid(),
            "endpoints": served or None,
            "workers": workers,
        }
        typer.echo(json.dumps(line))
        return
    with_workers = "" if workers == 1 else f" with {workers} workers"
    typer.echo(f"Serving on {url}{with_workers} (Ctrl-C to stop).", err=True)


def _model_name(ref: str) -> str:
    from loopml.registry._refs import parse_model_ref

    return parse_model_ref(ref).name


def _log_to_stderr() -> None:
    """Show loopml's own INFO lines (model swaps, recovery) like uvicorn's on stderr."""
    import logging

    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("loopml")
    if any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


_HANDLER_MARK = "_loopml_serve"


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
    _log_to_stderr()
    return _build(json.loads(os.environ[_WORKER_CONFIG]))


def _or_setting(value: Any, name: str) -> Any:
    from loopml import settings

    return settings.get(name) if value is None else value


def _build(config: dict[str, Any]) -> FastAPI:
    """The app of one server process, on a log folder of its own under the log folder."""
    import socket as socket_module

    from loopml.serving._batching import BatchPolicy
    from loopml.serving._claim import claim_log
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
        log_probabilities=config["log_probabilities"],
        payload=PayloadLimits(max_rows=config["max_rows"], max_columns=config["max_columns"]),
        allowed_hosts=tuple(config["allowed_hosts"]),
        token=config["token"],
    )
    # Before uvicorn accepts a connection: in a --workers process, it imports the class.
    LimitedHttpTools.configure(HttpLimits(**config["http_limits"]))
    log, orphans = claim_log(
        Path(config["log_folder"]),
        tracking.store,
        tracking.artifacts,
        socket_module.gethostname(),
    )
    return create_app(
        tracking.store,
        tracking.artifacts,
        config["endpoints"],
        config["project"],
        log,
        options,
        models=config["models"],
        orphans=orphans,
    )


def _check_deployments(config: dict[str, Any]) -> None:
    """Fail in the parent, with one red line, when an endpoint has no deployment."""
    from loopml.serving._deployments import get_client, model_deployment

    deployments = get_client()
    for name in config["endpoints"] or ():
        deployments.get(name, project=config["project"])
    for ref in config["models"]:
        model_deployment(ref, config["project"])
