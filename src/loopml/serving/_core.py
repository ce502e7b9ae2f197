"""What the inference server's request handlers share: :class:`ServerCore`.

It holds the live endpoints, the prediction log, the metrics and the worker threads,
and answers a predict request from its parts (endpoint name, content type, declared
length, the ASGI ``receive`` and the query string), so that the ASGI fast path
(:mod:`loopml.serving._asgi`) and the FastAPI routes share one implementation:
the body is read within ``max_body_bytes``, parsed inline when small (else in a
worker thread, :data:`INLINE_PARSE_BYTES`), routed, batched, logged, then shadowed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter, ModelError, PredictionTooLarge
from loopml.registry._loaded import LoadedModel
from loopml.serving._batching import Batcher, BatchPolicy, LogUnavailable, Outcome, Overloaded
from loopml.serving._deployments import Deployment
from loopml.serving._feedback import RequestIds
from loopml.serving._http import INTERNAL_ERROR, LOG_DOWN, RETRY_SOON, ApiError, dumps, parsed
from loopml.serving._live import LiveEndpoint, LiveEndpoints, route_label
from loopml.serving._metrics import ServerMetrics
from loopml.serving._options import ServerOptions
from loopml.serving._payloads import (
    FloatRows,
    Payload,
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
    class_labels,
    class_probabilities,
    wants_probabilities,
)
from loopml.serving._routes import Route
from loopml.store import Store

__all__ = ["INLINE_PARSE_BYTES", "Answer", "ServerCore"]

_log = logging.getLogger(__name__)

INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop; larger ones in a worker thread."""

_CSV_TYPES = ("text/csv", "application/csv")
_T = TypeVar("_T")
_UNSERVED = "-"  # endpoint label of requests to an endpoint not served (bounded cardinality)


@dataclass(frozen=True)
class Answer:
    """A predict request's answer: its id, route, outcome and (when asked) probabilities."""

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


class ServerCore:
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
        self._log_probabilities = options.log_probabilities
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
            log_probabilities=(
                self._log_probabilities
                if settings.log_probabilities is None
                else settings.log_probabilities
            ),
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
            return exc.status, dumps({"error": exc.body}), exc.headers or {}
        except ClientDisconnect:  # nobody to answer: uvicorn drops what is sent
            return 400, dumps({"error": {"code": "disconnected", "message": "Gone."}}), {}
        except Exception as exc:
            _log.error("Error answering POST /v1/endpoints/%s/predict", name, exc_info=exc)
            self.count_error(name, "internal_error", 500)
            return 500, dumps({"error": INTERNAL_ERROR}), {}
        answered = {
            "request_id": answer.request_id,
            "model_version": answer.outcome.model_version,
            "route": answer.route,
            "predictions": answer.outcome.predictions,
        }
        if answer.probabilities is not None:
            answered["classes"], answered["probabilities"] = answer.probabilities
        return 200, dumps(answered), {"X-Request-Id": answer.request_id}

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
            columns: Payload = parsed(parse_csv, body, names, limits)
            return columns, False
        if live.takes_float_rows:
            rows: FloatRows | None = parsed(parse_float_split, body, names, limits)
            if rows is not None:  # only the payload's keys: no BODY_FIELD
                return rows, False
        document = parsed(parse_json, body, limits.max_depth)
        found: Payload = parsed(parse_predict_body, document, names, limits)
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
        document = parsed(parse_json, body, limits.max_depth)
        columns = parsed(parse_oip_inputs, document, live.input_names, limits)
        return document, columns

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "body_too_large", f"The request body must be at most {self._limit} bytes."
        )

    async def answer(
        self, live: LiveEndpoint, payload: Payload, *, probabilities: bool = False
    ) -> Answer:
        self._answering += 1
        try:
            return await self._answer(live, payload, probabilities)
        finally:
            self._answering -= 1

    async def _answer(self, live: LiveEndpoint, payload: Payload, probabilities: bool) -> Answer:
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
        classes = None
        if probabilities:
            logged = outcome.probabilities
            classes = (
                await self._probabilities(batcher.model, payload)
                if logged is None
                else (class_labels(batcher.model, len(logged.names)), logged.values.tolist())
            )
        for shadow in live.router.shadows():
            self._shadow(
                live.batchers[shadow.model],
                f"{request_id}{SHADOW_MARK}{shadow.model}",
                payload,
                rows,
            )
        batcher.answered.inc()
        batcher.latency.observe(time.perf_counter() - started)
        return Answer(request_id, batcher.route, outcome, classes)

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
            raise ApiError(503, "log_unavailable", LOG_DOWN, headers=RETRY_SOON) from None
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
