"""The inference server: FastAPI over deployments, the registry and the prediction log.

:func:`create_app` loads the live revision of each endpoint and every model version
its routes name, once (an alias is resolved at load time: the server keeps serving
the version it loaded until it restarts). Then it answers:

* ``POST /v1/endpoints/{name}/predict``: a route is chosen (sticky on the
  deployment's ``sticky_key`` when set), the model predicts, the prediction is
  durably logged, *then* the answer goes out. Shadow routes predict the same input
  in a background task; their answers are logged as ``shadow:…``, never returned.
* ``POST /v1/endpoints/{name}/feedback``: labels for earlier request ids.
* The Open Inference Protocol v2: ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}`` and ``/v2/models/{name}/infer`` (``name`` is the endpoint).

Errors are JSON ``{"error": {"code", "message", ...}}``: 404 for an unknown endpoint,
413 for a body over ``max_body_bytes``, 422 for a body of the wrong shape or input
that does not match the model's signature. An unexpected error is logged here and
answered as a bare 500, never with a traceback.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound, InvalidParameter, SignatureError
from loopml.registry._client import RegistryClient
from loopml.registry._loaded import LoadedModel
from loopml.serving._deployments import Deployment, DeploymentClient
from loopml.serving._feedback import record_feedback
from loopml.serving._payloads import (
    OIP_DATATYPES,
    PayloadError,
    oip_datatype,
    parse_json,
    parse_oip_inputs,
    parse_predict_body,
)
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.serving._routes import Route
from loopml.serving._routing import Router
from loopml.store import Store

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ApiError", "create_app"]

_log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
"""Requests with a larger body are refused with 413."""

Record = dict[str, Any]


class ApiError(Exception):
    """An error answered as JSON with an HTTP status (raised inside request handlers)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message, **extra}


@dataclass(frozen=True)
class _Endpoint:
    """One endpoint as served: its revision, router and loaded models (by route ref)."""

    deployment: Deployment
    router: Router
    models: dict[str, LoadedModel]

    def versions(self) -> list[str]:
        return list(dict.fromkeys(self.models[r.model].version.ref for r in self.router.routes))


@dataclass(frozen=True)
class _Answer:
    request_id: str
    route: str
    model_version: str
    predictions: list[Any]


def create_app(
    store: Store,
    artifacts: ArtifactStore,
    endpoints: Sequence[str] | None,
    project: str,
    log_folder: Path,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    source: str | None = None,
    trust: bool = False,
) -> FastAPI:
    """Build the inference server for ``endpoints`` of ``project``.

    Models are loaded here, so a bad deployment fails before the server starts. The
    prediction log in ``log_folder`` is recovered when the app starts and closed
    (every record written as a segment) when it shuts down.

    Args:
        store: the metadata store.
        artifacts: the artifact store (models and prediction segments).
        endpoints: the endpoints to serve; ``None`` serves every endpoint of ``project``.
        project: the project.
        log_folder: the local WAL folder of the prediction log (one server per folder).
        max_body_bytes: larger request bodies are refused with 413.
        source: who writes the prediction segments (default: the host name).
        trust: load executable (pickled) flavors not registered by a known identity.

    Returns:
        The FastAPI app (run it with uvicorn).

    Raises:
        DeploymentNotFound: an endpoint has no deployment.
        ModelNotFound: a route names a model version that no longer exists.
        InvalidParameter: no endpoint to serve, or a bad ``max_body_bytes``.
    """
    if max_body_bytes < 1:
        raise InvalidParameter(
            "The 'max_body_bytes' parameter of create_app must be an int >= 1. "
            f"Got {max_body_bytes!r} instead."
        )
    served = _load_endpoints(store, artifacts, endpoints, project, trust)
    log = PredictionLog(log_folder, store, artifacts, source or socket.gethostname())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        recovered = await run_in_threadpool(log.recover)
        if recovered:
            _log.info("Recovered %d logged predictions from %s.", recovered, log_folder)
        try:
            yield
        finally:
            await run_in_threadpool(log.close)

    app = FastAPI(title="loopml inference server", lifespan=lifespan)
    app.state.prediction_log = log
    server = _Server(served, log, store, max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.body}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error("Error answering %s %s", request.method, request.url.path, exc_info=exc)
        body = {"code": "internal_error", "message": "Internal server error; see the server log."}
        return JSONResponse({"error": body}, status_code=500)

    @app.post("/v1/endpoints/{name}/predict")
    async def predict(name: str, request: Request, tasks: BackgroundTasks) -> JSONResponse:
        endpoint = server.endpoint(name)
        records = _parse(parse_predict_body, await server.read_json(request))
        answer = await server.answer(endpoint, records, tasks)
        return JSONResponse(
            {
                "request_id": answer.request_id,
                "model_version": answer.model_version,
                "route": answer.route,
                "predictions": answer.predictions,
            },
            headers={"X-Request-Id": answer.request_id},
        )

    @app.post("/v1/endpoints/{name}/feedback")
    async def feedback(name: str, request: Request) -> JSONResponse:
        server.endpoint(name)
        items = _feedback_items(await server.read_json(request))
        try:
            recorded = await run_in_threadpool(record_feedback, store, name, items)
        except InvalidParameter as exc:
            raise ApiError(422, "invalid_feedback", str(exc)) from None
        return JSONResponse({"recorded": recorded})

    @app.get("/v2/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": True})

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> JSONResponse:
        return JSONResponse(_metadata(name, server.endpoint(name)))

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request, tasks: BackgroundTasks) -> JSONResponse:
        endpoint = server.endpoint(name)
        body = await server.read_json(request)
        records = _parse(parse_oip_inputs, body)
        answer = await server.answer(endpoint, records, tasks)
        given_id = body.get("id") if isinstance(body, dict) else None
        return JSONResponse(
            {
                "model_name": name,
                "model_version": answer.model_version,
                "id": given_id if isinstance(given_id, str) else answer.request_id,
                "outputs": [
                    {
                        "name": "predict",
                        "shape": [len(answer.predictions)],
                        "datatype": oip_datatype(answer.predictions),
                        "data": answer.predictions,
                    }
                ],
            },
            headers={"X-Request-Id": answer.request_id},
        )

    return app


class _Server:
    """What the request handlers share: the endpoints, the log and the body limit."""

    def __init__(
        self, endpoints: dict[str, _Endpoint], log: PredictionLog, store: Store, limit: int
    ) -> None:
        self._endpoints = endpoints
        self._log = log
        self._store = store
        self._limit = limit

    def endpoint(self, name: str) -> _Endpoint:
        found = self._endpoints.get(name)
        if found is None:
            raise ApiError(
                404,
                "not_found",
                f"No endpoint named {name!r} is served here; "
                f"served: {', '.join(sorted(self._endpoints)) or 'none'}.",
            )
        return found

    async def read_json(self, request: Request) -> object:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._limit:
                raise self._too_large()
            chunks.append(chunk)
        return _parse(parse_json, b"".join(chunks))

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "body_too_large", f"The request body must be at most {self._limit} bytes."
        )

    async def answer(
        self, endpoint: _Endpoint, records: list[Record], tasks: BackgroundTasks
    ) -> _Answer:
        deployment = endpoint.deployment
        sticky = deployment.settings.sticky_key
        key = records[0].get(sticky) if sticky is not None else None
        route = endpoint.router.choose(None if key is None else str(key))
        model = endpoint.models[route.model]
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        predictions = await run_in_threadpool(_predict, model, records)
        record = PredictionRecord(
            request_id=request_id,
            endpoint=deployment.endpoint,
            route=_route_label(route),
            model_version=model.version.ref,
            inputs=records,
            output=predictions,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        await run_in_threadpool(self._log.append, record, wait=True)
        for shadow in endpoint.router.shadows():
            tasks.add_task(self._shadow, endpoint, shadow, request_id, records)
        return _Answer(request_id, record.route, record.model_version, predictions)

    def _shadow(
        self, endpoint: _Endpoint, route: Route, request_id: str, records: list[Record]
    ) -> None:
        """Predict with a shadow route and log it; failures are logged, never raised."""
        model = endpoint.models[route.model]
        started = time.perf_counter()
        try:
            predictions = _predict(model, records)
            self._log.append(
                PredictionRecord(
                    # One row per request id in the log: the shadow's id derives from the
                    # answered one, so both can be joined.
                    request_id=f"{request_id}:shadow:{route.model}",
                    endpoint=endpoint.deployment.endpoint,
                    route=_route_label(route),
                    model_version=model.version.ref,
                    inputs=records,
                    output=predictions,
                    latency_ms=(time.perf_counter() - started) * 1000,
                ),
                wait=False,
            )
        except Exception:
            _log.exception("Shadow route %s of %s failed.", route, endpoint.deployment.endpoint)


def _load_endpoints(
    store: Store,
    artifacts: ArtifactStore,
    names: Sequence[str] | None,
    project: str,
    trust: bool,
) -> dict[str, _Endpoint]:
    registry = RegistryClient(store, artifacts)
    deployments = DeploymentClient(store, registry)
    if names is None:
        live = deployments.list(project=project)
    else:
        live = [deployments.get(name, project=project) for name in dict.fromkeys(names)]
    if not live:
        raise DeploymentNotFound(
            f"Project {project!r} has no deployment to serve; see `loopml deployments set`."
        )
    loaded: dict[str, LoadedModel] = {}  # by concrete version, so each loads once
    served: dict[str, _Endpoint] = {}
    for deployment in live:
        models: dict[str, LoadedModel] = {}
        for route in deployment.routes:
            version = registry.get_version(route.model, project=project).ref
            if version not in loaded:
                loaded[version] = registry.load(version, project=project, trust=trust)
            models[route.model] = loaded[version]
        served[deployment.endpoint] = _Endpoint(
            deployment, Router.for_deployment(deployment), models
        )
    return served


def _predict(model: LoadedModel, records: list[Record]) -> list[Any]:
    try:
        result = model.predict(records)
    except SignatureError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from None
    values: list[Any] = result.tolist() if hasattr(result, "tolist") else list(result)
    return values


def _parse(parser: Any, value: Any) -> Any:
    try:
        return parser(value)
    except PayloadError as exc:
        raise ApiError(
            422, "invalid_body", str(exc), field=exc.field, expected=exc.expected
        ) from None


def _feedback_items(body: object) -> list[tuple[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
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


def _route_label(route: Route) -> str:
    return f"{route.mode}:{route.model}"


def _metadata(name: str, endpoint: _Endpoint) -> dict[str, Any]:
    primary = endpoint.models[endpoint.router.routes[0].model]
    signature = primary.signature
    inputs = (
        []
        if signature is None
        else [
            {"name": c.name, "datatype": OIP_DATATYPES.get(c.type, "BYTES"), "shape": [-1]}
            for c in signature.inputs
        ]
    )
    return {
        "name": name,
        "versions": endpoint.versions(),
        "platform": "loopml",
        "inputs": inputs,
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
    }
