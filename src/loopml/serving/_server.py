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
* ``POST /v1/endpoints/{name}/feedback``: labels for earlier request ids.
* The Open Inference Protocol v2: ``/v2``, ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``/v2/models/{name}/infer``
  (``name`` is the endpoint).
* ``GET /metrics``: Prometheus metrics (:mod:`loopml.serving._metrics`).

Every request is first checked by :class:`~loopml.serving._guard.RequestGuard`
(Host allow-list, bearer token, JSON or CSV content type) in :class:`_InferenceApp`,
the one place both the predict route and the FastAPI routes pass through. Bodies
over :data:`INLINE_PARSE_BYTES` are parsed in a worker thread, so a large or
awkward body never stalls the event loop (health checks, other requests), and
every body is bounded by :class:`~loopml.serving._payloads.PayloadLimits` before
its columns are built.

``POST /v1/endpoints/{name}/predict`` is answered straight from the ASGI call,
without Starlette's middleware, routing and request objects (the route is still
declared, so the OpenAPI schema documents it). Measured at concurrency 1, that
took ~0.3 ms off the request's own handling and, with less code run between two
predicts, ~0.4 ms off the model call.

Errors are JSON ``{"error": {"code", "message", ...}}``: 401 without the token,
404 for an unknown endpoint, 413 for a body over ``max_body_bytes`` or a prediction
too large for the prediction log (refused, not answered), 415 for a body that is
neither JSON nor CSV, 421 for a Host not allowed, 422 for a body of the wrong shape,
too large or deep for the limits, with columns the models do not take, input that
does not match the model's signature, or feedback for a request id the endpoint did
not answer, 503 with ``Retry-After`` when the route's queue is full or the
prediction log cannot be written. An unexpected error is logged here and answered
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
import os
import socket
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from loopml._version import __version__
from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter, ModelError, PredictionTooLarge
from loopml.registry._loaded import LoadedModel
from loopml.serving._batching import Batcher, BatchPolicy, LogUnavailable, Outcome, Overloaded
from loopml.serving._deployments import Deployment, model_deployment
from loopml.serving._feedback import MAX_LABEL_DEPTH, RequestIds, record_feedback
from loopml.serving._guard import LOOPBACK_HOSTS, RequestGuard
from loopml.serving._live import LiveEndpoint, LiveEndpoints, route_label
from loopml.serving._metrics import CONTENT_TYPE, ServerMetrics
from loopml.serving._oip import model_metadata, oip_output
from loopml.serving._payloads import (
    DEFAULT_LIMITS,
    FloatRows,
    Payload,
    PayloadError,
    PayloadLimits,
    first_value,
    parse_csv,
    parse_float_split,
    parse_json,
    parse_oip_inputs,
    parse_predict_body,
    row_count,
)
from loopml.serving._predlog import SHADOW_MARK, PredictionLog, SetAside
from loopml.serving._probabilities import (
    BODY_FIELD,
    QUERY_FIELD,
    class_probabilities,
    wants_probabilities,
)
from loopml.serving._routes import Route
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

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
"""Requests with a larger body are refused with 413."""

INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop; larger ones in a worker thread."""
MAX_FEEDBACK_ITEMS = 10_000
"""Labels one feedback request may carry."""

_CSV_TYPES = ("text/csv", "application/csv")
_FEEDBACK_DEPTH = MAX_LABEL_DEPTH + 3  # body → items → item → label
_SHOWN_IDS = 5
_T = TypeVar("_T")
_SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005
_UNSERVED = "-"  # endpoint label of requests to an endpoint not served (bounded cardinality)


class ApiError(Exception):
    """An error answered as JSON with an HTTP status (raised inside request handlers)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body: dict[str, Any] = {"code": code, "message": message, **extra}


@dataclass(frozen=True)
class ServerOptions:
    """How the server batches, bounds and follows the store.

    Attributes:
        max_body_bytes: larger request bodies are refused with 413.
        batch: the default batching of every route (an endpoint's deployment
            settings ``max_batch_size`` / ``max_wait_ms`` override it).
        poll_interval: seconds between checks of the store for new revisions and
            alias moves; 0 never checks (the loaded models are served until restart).
        source: who writes the prediction segments (default: the host name).
        trust: load executable (pickled) flavors registered by another identity.
        payload: rows, columns, cells and JSON depth one request may hold.
        allowed_hosts: the Host names (any port) the server answers to; ``*``: any.
            Add the bound address when it is not a loopback one.
        token: when set, every request but health probes needs ``Authorization: Bearer
            <token>``.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    poll_interval: float = 2.0
    source: str | None = None
    trust: bool = False
    payload: PayloadLimits = DEFAULT_LIMITS
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_body_bytes, bool) or not (
            isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 1
        ):
            raise InvalidParameter(
                f"max_body_bytes must be an int >= 1; got {self.max_body_bytes!r}."
            )
        if not (isinstance(self.poll_interval, int | float) and self.poll_interval >= 0):
            raise InvalidParameter(
                f"poll_interval must be a number of seconds >= 0; got {self.poll_interval!r}."
            )


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
        server = _Server(store, artifacts, endpoints, project, prediction_log, options, fixed)
    except BaseException:
        prediction_log.close()
        for orphan in orphans:
            orphan.close()
        raise
    server.orphans = list(orphans)
    for orphan in orphans:
        orphan.on_quarantine(server.count_set_aside)
    return _build_app(server, options)


def _build_app(server: _Server, options: ServerOptions) -> FastAPI:
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

    app = _InferenceApp(
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
        return _json({"error": exc.body}, exc.status, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        _log.error("Error answering %s %s", request.method, request.url.path, exc_info=exc)
        server.count_error(request.path_params.get("name"), "internal_error", 500)
        return _json({"error": _INTERNAL_ERROR}, 500)

    @app.post("/v1/endpoints/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        """Predict the rows of the body (answered by :class:`_InferenceApp` directly)."""
        headers = request.headers
        status, body, answer_headers = await server.predict(
            name,
            headers.get("content-type"),
            headers.get("content-length"),
            request.receive,
            request.url.query,
        )
        return Response(body, status_code=status, headers=answer_headers, media_type=_JSON)

    @app.post("/v1/endpoints/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        server.endpoint(name)
        body = await server.read_body(request)
        items = await server.off_loop(len(body), _feedback_items, body)
        unknown = [rid for rid, _ in items if not server.request_ids.answered(name, rid)]
        if unknown:
            shown = ", ".join(repr(rid[:64]) for rid in unknown[:_SHOWN_IDS])
            raise ApiError(
                422,
                "unknown_request_id",
                f"Endpoint {name!r} did not answer the request ids {shown}"
                f"{' …' if len(unknown) > _SHOWN_IDS else ''}; feedback is taken only for "
                "the request_id of an answered prediction. Nothing was stored.",
                request_ids=[rid[:64] for rid in unknown[:_SHOWN_IDS]],
            )
        client = request.client.host if request.client is not None else "unknown"
        try:
            recorded = await run_in_threadpool(
                record_feedback, server.store, name, items, source=f"http {client}"
            )
        except InvalidParameter as exc:
            raise ApiError(422, "invalid_feedback", str(exc)) from None
        return _json({"recorded": recorded})

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json({"name": "loopml", "version": __version__, "extensions": []})

    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if not server.log.ready:
            return _json({"ready": False, "reason": _LOG_DOWN}, 503, _RETRY_SOON)
        return _json({"ready": True})

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> Response:
        return _json(model_metadata(name, server.endpoint(name)))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        server.endpoint(name)
        if not server.log.ready:
            return _json({"name": name, "ready": False, "reason": _LOG_DOWN}, 503, _RETRY_SOON)
        return _json({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        live = server.endpoint(name)
        raw = await server.read_body(request)
        body, payload = await server.off_loop(len(raw), server.parse_infer, live, raw)
        answer = await server.answer(live, payload)
        given_id = body.get("id") if isinstance(body, dict) else None
        return _json(
            {
                "model_name": name,
                "model_version": answer.outcome.model_version,
                "id": given_id if isinstance(given_id, str) else answer.request_id,
                "outputs": [oip_output(answer.outcome.predictions)],
            },
            headers={"X-Request-Id": answer.request_id},
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.render(), media_type=CONTENT_TYPE)

    return app


class _InferenceApp(FastAPI):
    """The FastAPI app behind the guard; predict goes straight to :meth:`_Server.predict`."""

    def __init__(self, server: _Server, guard: RequestGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._server = server
        self._guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await super().__call__(scope, receive, send)
            return
        found: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            if key in _READ_HEADERS:
                found[key] = value
        content_type = found.get(b"content-type")
        refusal = self._guard.check(
            scope["method"],
            scope["path"],
            found.get(b"host"),
            found.get(b"authorization"),
            content_type,
        )
        if refusal is not None:
            self._server.count_error(None, refusal.code, refusal.status)
            body = _dumps({"error": {"code": refusal.code, "message": refusal.message}})
            await _send(send, refusal.status, body, refusal.headers)
            return
        name = _predict_endpoint(scope)
        if name is None:
            await super().__call__(scope, receive, send)
            return
        length = found.get(b"content-length")
        status, body, headers = await self._server.predict(
            name,
            None if content_type is None else content_type.decode("latin-1"),
            None if length is None else length.decode("latin-1"),
            receive,
            scope["query_string"],
        )
        await _send(send, status, body, headers)


_READ_HEADERS = frozenset({b"host", b"authorization", b"content-type", b"content-length"})


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Send a whole JSON answer from the ASGI call."""
    response_headers = [
        (b"content-type", _JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


_PREDICT_PREFIX, _PREDICT_SUFFIX = "/v1/endpoints/", "/predict"


def _predict_endpoint(scope: Scope) -> str | None:
    """The endpoint named by a ``POST /v1/endpoints/{name}/predict`` request, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX)):
        return None
    name = path[len(_PREDICT_PREFIX) : -len(_PREDICT_SUFFIX)]
    return name if name and "/" not in name else None


@dataclass(frozen=True)
class _Answer:
    request_id: str
    route: str
    outcome: Outcome
    probabilities: tuple[list[Any], list[Any]] | None = None  # (classes, rows) when asked


def _asked_in_query(query: bytes | str) -> bool | None:
    try:
        return wants_probabilities(query)
    except ValueError as exc:
        raise ApiError(
            422,
            "invalid_query",
            f"The query parameter {QUERY_FIELD!r} must be {exc}.",
            field=QUERY_FIELD,
            expected="true or false",
        ) from None


class _Server:
    """What the request handlers share: live endpoints, the log, metrics, the executor."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        endpoints: Sequence[str] | None,
        project: str,
        log: PredictionLog,
        options: ServerOptions,
        fixed: Sequence[Deployment] = (),
    ) -> None:
        self.store = store
        self.log = log
        self.metrics = ServerMetrics()
        self.orphans: list[PredictionLog] = []
        log.on_quarantine(self.count_set_aside)
        self._limit = options.max_body_bytes
        self._payload_limits = options.payload
        self._default_batch = options.batch
        self._executor = ThreadPoolExecutor(
            max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="loopml-predict"
        )
        self._batchers: weakref.WeakSet[Batcher] = weakref.WeakSet()  # live and retired
        self._shadows: set[asyncio.Future[Outcome]] = set()
        self._answering = 0  # requests between parsed and answered (event loop only)
        self.request_ids = RequestIds.of_store(store)
        try:
            self.live = LiveEndpoints(
                store,
                artifacts,
                endpoints,
                project,
                trust=options.trust,
                make_batcher=self._make_batcher,
                metrics=self.metrics,
                fixed=fixed,
            )
            self.live.load()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def _make_batcher(self, deployment: Deployment, route: Route, model: LoadedModel) -> Batcher:
        settings = deployment.settings
        default = self._default_batch
        batcher = Batcher(
            model,
            endpoint=deployment.endpoint,
            route=route_label(route),
            log=self.log,
            executor=self._executor,
            metrics=self.metrics,
            policy=BatchPolicy(
                max_batch_size=settings.max_batch_size or default.max_batch_size,
                max_wait_ms=(
                    default.max_wait_ms if settings.max_wait_ms is None else settings.max_wait_ms
                ),
                max_queue=default.max_queue,
            ),
            # A shadow's call must never hold up the traffic that is answered.
            quiet=None if route.mode == "shadow" else self._quiet,
        )
        self._batchers.add(batcher)
        return batcher

    def _quiet(self) -> bool:
        """Whether the server is answering one request at most (the one asking)."""
        return self._answering <= 1

    def endpoint(self, name: str) -> LiveEndpoint:
        found = self.live.get(name)
        if found is None:
            raise ApiError(
                404,
                "not_found",
                f"No endpoint named {name!r} is served here; "
                f"served: {', '.join(self.live.names()) or 'none'}.",
            )
        return found

    async def read_body(self, request: Request) -> bytes:
        """The request's body, refused with 413 beyond ``max_body_bytes``."""
        return await self._receive_body(request.headers.get("content-length"), request.receive)

    async def _receive_body(self, declared: str | None, receive: Receive) -> bytes:
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def predict(
        self,
        name: str,
        content_type: str | None,
        content_length: str | None,
        receive: Receive,
        query: bytes | str = b"",
    ) -> tuple[int, bytes, dict[str, str]]:
        """Answer ``POST /v1/endpoints/{name}/predict``: status, JSON body and headers.

        Errors are answered here too (as JSON, counted in the metrics), so the
        request needs nothing from FastAPI's error handlers.
        """
        try:
            live = self.endpoint(name)
            asked = _asked_in_query(query)
            body = await self._receive_body(content_length, receive)
            payload, in_body = await self.off_loop(
                len(body), self._predict_payload, live, content_type, body
            )
            answer = await self.answer(live, payload, probabilities=bool(asked or in_body))
        except ApiError as exc:
            self.count_error(name, exc.body["code"], exc.status)
            return exc.status, _dumps({"error": exc.body}), exc.headers or {}
        except ClientDisconnect:  # nobody to answer: uvicorn drops what is sent
            return 400, _dumps({"error": {"code": "disconnected", "message": "Gone."}}), {}
        except Exception as exc:
            _log.error("Error answering POST /v1/endpoints/%s/predict", name, exc_info=exc)
            self.count_error(name, "internal_error", 500)
            return 500, _dumps({"error": _INTERNAL_ERROR}), {}
        answered = {
            "request_id": answer.request_id,
            "model_version": answer.outcome.model_version,
            "route": answer.route,
            "predictions": answer.outcome.predictions,
        }
        if answer.probabilities is not None:
            answered["classes"], answered["probabilities"] = answer.probabilities
        return 200, _dumps(answered), {"X-Request-Id": answer.request_id}

    async def off_loop(self, size: int, parse: Callable[..., _T], *args: Any) -> _T:
        """``parse(*args)``: inline for a body of ``size`` up to :data:`INLINE_PARSE_BYTES`,
        else in a worker thread, so the event loop keeps answering meanwhile."""
        if size <= INLINE_PARSE_BYTES:
            return parse(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, parse, *args)

    def _predict_payload(
        self, live: LiveEndpoint, content_type: str | None, body: bytes
    ) -> tuple[Payload, bool]:
        """The request's columns, and whether its body asks for class probabilities."""
        names, limits = live.input_names, self._payload_limits
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind in _CSV_TYPES:
            columns: Payload = _parse(parse_csv, body, names, limits)
            return columns, False
        if live.takes_float_rows:
            rows: FloatRows | None = _parse(parse_float_split, body, names, limits)
            if rows is not None:  # only the payload's keys: no BODY_FIELD
                return rows, False
        document = _parse(parse_json, body, limits.max_depth)
        found: Payload = _parse(parse_predict_body, document, names, limits)
        asked = document.get(BODY_FIELD, False)
        if not isinstance(asked, bool):
            raise ApiError(
                422,
                "invalid_body",
                f"The field {BODY_FIELD!r} must be true or false; got {asked!r:.40}.",
                field=BODY_FIELD,
                expected="true or false",
            )
        return found, asked

    def parse_infer(self, live: LiveEndpoint, body: bytes) -> tuple[object, Payload]:
        """The decoded body of an OIP ``infer`` request and its columns."""
        limits = self._payload_limits
        document = _parse(parse_json, body, limits.max_depth)
        columns = _parse(parse_oip_inputs, document, live.input_names, limits)
        return document, columns

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "body_too_large", f"The request body must be at most {self._limit} bytes."
        )

    async def answer(
        self, live: LiveEndpoint, payload: Payload, *, probabilities: bool = False
    ) -> _Answer:
        self._answering += 1
        try:
            return await self._answer(live, payload, probabilities)
        finally:
            self._answering -= 1

    async def _answer(self, live: LiveEndpoint, payload: Payload, probabilities: bool) -> _Answer:
        started = time.perf_counter()
        sticky = live.deployment.settings.sticky_key
        key = first_value(payload, sticky) if sticky is not None else None
        route = live.router.choose(None if key is None else str(key))
        batcher = live.batchers[route.model]
        if probabilities and not batcher.model.has_proba:
            raise ApiError(
                422,
                "probabilities_unavailable",
                f"Model {batcher.version} ({batcher.model.version.flavor}) has no "
                "predict_proba; ask without probabilities.",
                field=BODY_FIELD,
            )
        request_id = self.request_ids.issue(live.deployment.endpoint)
        rows = row_count(payload)
        outcome = await self._submit(batcher, request_id, payload, rows)
        classes = await self._probabilities(batcher.model, payload) if probabilities else None
        for shadow in live.router.shadows():
            self._shadow(
                live.batchers[shadow.model],
                f"{request_id}{SHADOW_MARK}{shadow.model}",
                payload,
                rows,
            )
        batcher.answered.inc()
        batcher.latency.observe(time.perf_counter() - started)
        return _Answer(request_id, batcher.route, outcome, classes)

    async def _probabilities(
        self, model: LoadedModel, payload: Payload
    ) -> tuple[list[Any], list[Any]]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, class_probabilities, model, payload)
        except (InvalidParameter, ModelError) as exc:
            raise ApiError(422, "invalid_input", str(exc)) from None

    async def _submit(
        self, batcher: Batcher, request_id: str, payload: Payload, rows: int
    ) -> Outcome:
        try:
            alone = await batcher.answer_alone(request_id, payload, rows)
            return alone if alone is not None else await batcher.submit(request_id, payload, rows)
        except Overloaded as exc:
            raise ApiError(
                503, "overloaded", str(exc), headers={"Retry-After": str(exc.retry_after)}
            ) from None
        except LogUnavailable:  # its text is for the server log, not the client
            raise ApiError(503, "log_unavailable", _LOG_DOWN, headers=_RETRY_SOON) from None
        except PredictionTooLarge as exc:
            raise ApiError(413, "prediction_too_large", str(exc)) from None
        except (InvalidParameter, ModelError) as exc:  # SignatureError is a ModelError
            raise ApiError(422, "invalid_input", str(exc)) from None

    def _shadow(self, batcher: Batcher, request_id: str, payload: Payload, rows: int) -> None:
        """Send a copy to a shadow route; its answer is logged, never returned."""
        try:
            future = batcher.submit(request_id, payload, rows)
        except Overloaded:
            self.metrics.shadow_dropped.labels(
                batcher.endpoint, batcher.route, batcher.version
            ).inc()
            return
        self._shadows.add(future)
        future.add_done_callback(self._shadow_done)

    def _shadow_done(self, future: asyncio.Future[Outcome]) -> None:
        self._shadows.discard(future)
        if not future.cancelled() and future.exception() is not None:
            _log.warning("A shadow prediction failed: %s", future.exception())

    def count_set_aside(self, found: SetAside) -> None:
        """Count a file the prediction log set aside (a listener of the log)."""
        self.metrics.log_set_aside_files.inc()
        self.metrics.log_set_aside_bytes.inc(found.unreadable_bytes)

    def count_error(self, name: object, code: str, status: int) -> None:
        endpoint = name if isinstance(name, str) and self.live.get(name) is not None else _UNSERVED
        self.metrics.errors.labels(endpoint, code).inc()
        self.metrics.requests.labels(endpoint, "", "", str(status)).inc()

    async def drain(self) -> None:
        """Wait until every queued request (shadows included) has been answered."""
        for batcher in list(self._batchers):
            await batcher.idle()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.log.close()


_JSON = "application/json"
_LOG_DOWN = "The prediction log cannot be written right now, so predictions are refused."
_RETRY_SOON = {"Retry-After": "1"}
_INTERNAL_ERROR = {
    "code": "internal_error",
    "message": "Internal server error; see the server log.",
}


def _dumps(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(body), status_code=status, headers=headers, media_type=_JSON)


def _parse(parser: Callable[..., Any], value: Any, *args: Any) -> Any:
    try:
        return parser(value, *args)
    except PayloadError as exc:
        raise ApiError(
            422, "invalid_body", str(exc), field=exc.field, expected=exc.expected
        ) from None


def _feedback_items(raw: bytes) -> list[tuple[str, Any]]:
    body = _parse(parse_json, raw, _FEEDBACK_DEPTH)
    items = body.get("items") if isinstance(body, dict) else None
    if isinstance(items, list) and len(items) > MAX_FEEDBACK_ITEMS:
        raise ApiError(
            422,
            "invalid_body",
            f"The field 'items' must hold at most {MAX_FEEDBACK_ITEMS} labels; got {len(items)}.",
            field="items",
            expected=f"at most {MAX_FEEDBACK_ITEMS} items",
        )
    if not isinstance(items, list) or not items:
        raise ApiError(
            422,
            "invalid_body",
            "The field 'items' must be a non-empty list.",
            field="items",
            expected="a non-empty list of {request_id, label}",
        )
    found: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("request_id"), str)
            or ("label" not in item)
        ):
            raise ApiError(
                422,
                "invalid_body",
                f"The field 'items[{i}]' must be an object with a string request_id and a label.",
                field=f"items[{i}]",
                expected="an object with request_id and label",
            )
        found.append((item["request_id"], item["label"]))
    return found
