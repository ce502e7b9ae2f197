"""The inference server: FastAPI over live endpoints, micro-batching and the prediction log.

:func:`create_app` loads the live revision of each endpoint and every model version
its routes name (warmed up on their input examples) before it returns, then keeps
following the store (:mod:`loopml.serving._live`: new revisions and alias moves are
loaded and warmed up before traffic moves). It answers:

* ``POST /v1/endpoints/{name}/predict``: JSON (records, columns or dataframe_split)
  or CSV. A route is chosen (sticky on the deployment's ``sticky_key`` when set),
  the request joins the route's micro-batch
  (:mod:`loopml.serving._batching`), and is answered once its prediction is
  durably in the prediction log. Shadow routes get a copy afterwards; their
  answers are logged as ``<request id>:shadow:<model>``, never returned.
* ``POST /v1/endpoints/{name}/feedback``: labels for earlier request ids
  (:mod:`loopml.serving._feedback_route`).
* The Open Inference Protocol v2: ``/v2``, ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``/v2/models/{name}/infer``
  (``name`` is the endpoint; :mod:`loopml.serving._oip_routes`).
* ``GET /metrics``: Prometheus metrics (:mod:`loopml.serving._metrics`), and the latest
  results of the monitors of the served endpoints (:mod:`loopml.serving._monitor_metrics`).

Every request is first checked by :class:`~loopml.serving._guard.RequestGuard`
(Host allow-list, bearer token, JSON or CSV content type) in
:class:`~loopml.serving._asgi.InferenceApp`, the one place both the predict route
and the FastAPI routes pass through. Bodies
over :data:`INLINE_PARSE_BYTES` are parsed in a worker thread, so a large or
awkward body never stalls the event loop (health checks, other requests), and
every body is bounded by :class:`~loopml.serving._payloads.PayloadLimits` before
its columns are built.

``POST /v1/endpoints/{name}/predict`` is answered straight from the ASGI call
(:mod:`loopml.serving._asgi`); what the handlers share is
:class:`~loopml.serving._core.ServerCore`.

Errors are JSON ``{"error": {"code", "message", ...}}``: 401 without the token,
404 for an unknown endpoint, 413 for a body over ``max_body_bytes`` or a prediction
too large for the prediction log (refused, not answered), 415 for a body that is
neither JSON nor CSV, 421 for a Host not allowed, 422 for a body of the wrong shape,
too large or deep for the limits, with columns the models do not take, input that
does not match the model's signature, or feedback for a request id the endpoint did
not answer, 503 with ``Retry-After`` when the route's queue is full or the
prediction log cannot be written. An unexpected error is logged by the server and answered
as a bare 500, never with a traceback; no error body carries a server path or an
exception's text about the server's files.

Readiness (``/v2/health/ready``, ``/v2/models/{name}/ready``) answers 503 while the
prediction log cannot be written (predictions are refused then), and 200 again
once the log has recovered by itself (:mod:`loopml.serving._wal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopml._version import __version__
from loopml.artifacts import ArtifactStore
from loopml.serving._asgi import InferenceApp
from loopml.serving._core import INLINE_PARSE_BYTES, ServerCore
from loopml.serving._deployments import model_deployment
from loopml.serving._feedback_route import MAX_FEEDBACK_ITEMS, add_feedback_route
from loopml.serving._guard import RequestGuard
from loopml.serving._http import INTERNAL_ERROR, JSON_TYPE, ApiError, json_response
from loopml.serving._metrics import CONTENT_TYPE
from loopml.serving._monitor_metrics import MonitorMetrics
from loopml.serving._oip_routes import add_oip_routes
from loopml.serving._options import DEFAULT_MAX_BODY_BYTES, ServerOptions
from loopml.serving._predlog import PredictionLog
from loopml.store import Store

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "INLINE_PARSE_BYTES",
    "MAX_FEEDBACK_ITEMS",
    "ApiError",
    "ServerOptions",
    "create_app",
]

_log = logging.getLogger(__name__)

_SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005


def create_app(
    store: Store,
    artifacts: ArtifactStore,
    endpoints: Sequence[str] | None,
    project: str,
    log: Path | PredictionLog,
    options: ServerOptions | None = None,
    *,
    models: Sequence[str] = (),
    orphans: Sequence[PredictionLog] = (),
) -> FastAPI:
    """Build the inference server for ``endpoints`` of ``project`` (and ``models``).

    Models are loaded and warmed up here, so a bad deployment fails before the
    server starts. The prediction log is recovered when the app starts and closed
    (every record written as a segment) when it shuts down.

    Args:
        store: the metadata store.
        artifacts: the artifact store (models and prediction segments).
        endpoints: the endpoints to serve; ``None`` serves every endpoint of ``project``
            (and endpoints deployed later).
        project: the project.
        log: the local WAL folder of the prediction log (one server per folder), or
            a :class:`PredictionLog` already opened on one; the app closes it.
        options: batching, limits and polling (defaults: :class:`ServerOptions`).
        models: model references to serve without a deployment, each as the endpoint
            of its model's name (:func:`~loopml.serving._deployments.model_deployment`).
        orphans: logs that crashed servers left (opened, so held): recovered when the
            app starts, before ``log``'s own records, counted in its metrics, then closed.

    Returns:
        The FastAPI app (run it with uvicorn).

    Raises:
        DeploymentNotFound: an endpoint has no deployment.
        ModelNotFound: a route names a model version that no longer exists.
        ModelError: a model cannot be loaded or fails on its input example.
        InvalidParameter: the log folder is in use by another server, a model is not
            a reference, or an endpoint would be served twice (a model named like a
            deployment of the project, say).
    """
    options = options or ServerOptions()
    prediction_log = (
        log
        if isinstance(log, PredictionLog)
        else PredictionLog(log, store, artifacts, options.source or socket.gethostname())
    )
    try:
        fixed = [model_deployment(ref, project) for ref in models]
        server = ServerCore(store, artifacts, endpoints, project, prediction_log, options, fixed)
    except BaseException:
        prediction_log.close()
        for orphan in orphans:
            orphan.close()
        raise
    server.orphans = list(orphans)
    for orphan in orphans:
        orphan.on_quarantine(server.count_set_aside)
    return _build_app(server, options)


def _build_app(server: ServerCore, options: ServerOptions) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The loaded models are long-lived: keep the cyclic GC from re-scanning them
        # (a full collection over a large forest is a latency spike).
        gc.freeze()
        # Models predict in worker threads holding the GIL; a shorter switch interval
        # lets the event loop take in requests meanwhile (they join the next batch)
        # instead of waiting up to 5 ms for its turn.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(_SWITCH_INTERVAL)
        for log in [server.log, *server.orphans]:
            recovered = await run_in_threadpool(log.recover)
            if recovered:
                _log.info("Recovered %d logged predictions from %s.", recovered, log.folder)
        for orphan in server.orphans:
            await run_in_threadpool(orphan.close)
        watcher = (
            asyncio.create_task(server.live.watch(options.poll_interval))
            if options.poll_interval > 0
            else None
        )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await server.drain()
            await run_in_threadpool(server.close)
            server.metrics.close()
            sys.setswitchinterval(switch_interval)

    app = InferenceApp(
        server,
        RequestGuard(options.allowed_hosts, options.token),
        title="loopml inference server",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.prediction_log = server.log
    app.state.live = server.live

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        server.count_error(request.path_params.get("name"), exc.body["code"], exc.status)
        return json_response({"error": exc.body}, exc.status, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        _log.error("Error answering %s %s", request.method, request.url.path, exc_info=exc)
        server.count_error(request.path_params.get("name"), "internal_error", 500)
        return json_response({"error": INTERNAL_ERROR}, 500)

    @app.post("/v1/endpoints/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        """Predict the rows of the body (answered by :class:`InferenceApp` directly)."""
        headers = request.headers
        status, body, answer_headers = await server.predict(
            name,
            headers.get("content-type"),
            headers.get("content-length"),
            request.receive,
            request.url.query,
        )
        return Response(body, status_code=status, headers=answer_headers, media_type=JSON_TYPE)

    add_feedback_route(app, server)
    add_oip_routes(app, server)

    monitors = MonitorMetrics(server.store, server.live.names)

    @app.get("/metrics")
    async def metrics() -> Response:
        monitored = await run_in_threadpool(monitors.render)
        return Response(server.metrics.render() + monitored, media_type=CONTENT_TYPE)

    return app
