"""Adaptive micro-batching: concurrent requests to one route share a model call.

A :class:`Batcher` serves one route of one endpoint with one loaded model version.
Requests are queued; while the model is busy with one call the queue fills, and the
next call takes everything waiting (up to ``max_batch_size`` rows). A lone request
therefore never waits for company, and under load the batch grows with the load:
this is what "adaptive" means here. ``max_wait_ms`` adds an optional pause after
the first request of a batch, for models whose cost hardly grows with the rows.

A model call runs in a worker thread; then each request's prediction is written to
the prediction log (one group commit for the whole batch) and only once it is
durable are the requests answered. When requests are waiting, the log write runs
in another worker thread while the next batch is predicted; when none is, in the
same thread, sparing a lone request a thread hop. When a merged call fails (one
request's input does not match the signature, say) every request of the batch is
predicted on its own, so the bad one gets its error and the others their answers.

A lone request (at most ``max_batch_size`` rows, nothing else queued and no other
request being answered by the server) to a fast model is predicted and logged on
the event loop's own thread instead, when its route allows it (shadows never do).
Under concurrent load that never happens: requests being parsed meanwhile must
not wait for the model, and they batch. Handing a few milliseconds of work to a
pool thread costs more than the hop itself: the thread that wakes up is often on
another core, whose caches hold nothing of the model, and a single-row forest
predict then takes up to twice as long (measured: 5.5 → 10.5 ms). "Fast" means
the route's recent lone calls took at most :data:`INLINE_SECONDS`, so the loop is
never held up for longer than about that; a slower model always predicts in a
worker thread. Such a request skips the queue too (:meth:`Batcher.answer_alone`,
after letting the requests read in the same loop pass reach their routes, so
that a burst still batches), and its log write is made from the loop's thread
rather than handed to the WAL thread: two thread wake-ups fewer, ~0.2 ms.

The queue is bounded: :meth:`Batcher.submit` raises :class:`Overloaded`, with a
Retry-After estimate, rather than let memory grow without limit.

A route that logs class probabilities (``log_probabilities``) calls ``predict_proba``
on the same batch right after ``predict``, and each request's rows of them go to the
log with its predictions. When that second call fails, the predictions are still
answered and logged, without probabilities (a warning says so once per route).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidParameter, PredictionTooLarge
from loopml.registry._loaded import LoadedModel
from loopml.serving._metrics import ServerMetrics
from loopml.serving._payloads import Columns, FloatRows, Payload, to_columns
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.serving._probabilities import logged_probabilities

__all__ = ["INLINE_SECONDS", "BatchPolicy", "Batcher", "LogUnavailable", "Outcome", "Overloaded"]

_log = logging.getLogger(__name__)

INLINE_SECONDS = 0.02
"""A lone request is predicted on the event loop when its route's lone calls take at most this."""


@dataclass(frozen=True)
class BatchPolicy:
    """How a route batches and how many requests may wait.

    Attributes:
        max_batch_size: most rows in one model call (a larger request is called alone).
        max_wait_ms: how long the first request of a batch waits for more (0: no wait).
        max_queue: most requests waiting; beyond it :meth:`Batcher.submit` refuses.
    """

    max_batch_size: int = 64
    max_wait_ms: float = 0.0
    max_queue: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameter(f"{name} must be an int >= 1; got {value!r}.")
        wait = self.max_wait_ms
        if not (isinstance(wait, int | float) and math.isfinite(wait) and wait >= 0):
            raise InvalidParameter(f"max_wait_ms must be a number >= 0; got {wait!r}.")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a request gets: its predictions, the model version that made them and, when
    the route logs them, its rows' class probabilities (columns named by class key)."""

    predictions: list[Any]
    model_version: str
    probabilities: FloatRows | None = None


class Overloaded(Exception):
    """The route's queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"The server is saturated; retry after {retry_after} s.")
        self.retry_after = retry_after


class LogUnavailable(Exception):
    """The prediction could not be logged durably, so it is not answered."""


@dataclass(slots=True)
class _Pending:
    request_id: str
    payload: Payload
    rows: int
    future: asyncio.Future[Outcome] | None  # None: answer_alone returns its outcome itself
    arrived: float


class Batcher:
    """Queues requests for one route and predicts them in adaptive micro-batches.

    Use it from the event loop's thread only (the model calls run in ``executor``).

    Args:
        model: the loaded model version that answers.
        endpoint: the endpoint (logged with every prediction, a metric label).
        route: the route's label, e.g. ``primary:credit@champion``.
        log: the prediction log every answered prediction goes to first.
        executor: where model calls run.
        metrics: the server's metrics.
        policy: batch size, wait and queue bound.
        quiet: tells whether the server is answering no other request; a lone
            request to a fast model is then predicted on the event loop (see the
            module docstring). None for routes whose calls must never hold up the
            loop, such as shadows.
        log_probabilities: also compute and log class probabilities (ignored, with a
            warning, for a model without ``predict_proba``).
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        endpoint: str,
        route: str,
        log: PredictionLog,
        executor: Executor,
        metrics: ServerMetrics,
        policy: BatchPolicy,
        quiet: Callable[[], bool] | None = None,
        log_probabilities: bool = False,
    ) -> None:
        self.model = model
        self.endpoint = endpoint
        self.route = route
        self.policy = policy
        self._log_to = log
        log.note_signature(model.version.ref, model.signature)
        self._executor = executor
        self._queue: deque[_Pending] = deque()
        self._arrival = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._logging: set[asyncio.Task[None]] = set()
        self._seconds_per_call = 0.0
        self._quiet = quiet
        self._log_probabilities = log_probabilities and model.has_proba
        if log_probabilities and not model.has_proba:
            _log.warning(
                "Endpoint %r, route %r: model %s has no predict_proba, so no class "
                "probabilities are logged for it.",
                endpoint,
                route,
                model.version.ref,
            )
        self._proba_failed = False
        # Moving average of the calls for one request of few rows; None until the first,
        # which runs in a worker thread (a slow model must not hold up the loop even once).
        self._lone_seconds: float | None = None
        signature = model.signature
        self._float_inputs = (
            signature.input_names
            if signature is not None
            and signature.inputs
            and all(c.type == "float" for c in signature.inputs)
            else None
        )
        labels = (endpoint, route, model.version.ref)
        self._depth = metrics.queue_depth.labels(*labels)
        self._batch_rows = metrics.batch_rows.labels(*labels)
        self._batch_requests = metrics.batch_requests.labels(*labels)
        self._call_seconds = metrics.model_seconds.labels(*labels)
        self.answered = metrics.requests.labels(*labels, "200")
        """Counter of this route's answered requests (the server counts them)."""
        self.latency = metrics.latency.labels(*labels)
        """Histogram of this route's request latency (the server observes it)."""

    @property
    def float_inputs(self) -> bool:
        """Whether the model takes float columns only (so :class:`FloatRows` input suits it)."""
        return self._float_inputs is not None

    @property
    def lone_seconds(self) -> float | None:
        """The moving average of this route's lone calls, in seconds (None before the first).

        A lone request may be predicted on the event loop only while it is at most
        :data:`INLINE_SECONDS` (and the route answers traffic, and the server is quiet).
        """
        return self._lone_seconds

    @property
    def version(self) -> str:
        """The model version that answers (``credit/7``)."""
        return self.model.version.ref

    def submit(self, request_id: str, payload: Payload, rows: int) -> asyncio.Future[Outcome]:
        """Queue a request; the future resolves once it is predicted and logged.

        The future fails with the model's error for this input (e.g. a
        :class:`~loopml.errors.SignatureError`), or :class:`LogUnavailable`.

        Raises:
            Overloaded: the queue already holds ``max_queue`` requests.
        """
        if len(self._queue) >= self.policy.max_queue:
            raise Overloaded(self._retry_after())
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.append(_Pending(request_id, payload, rows, future, time.perf_counter()))
        self._depth.inc()
        self._arrival.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"loopml-batcher-{self.route}")
        return future

    async def idle(self) -> None:
        """Return once every queued request has been answered."""
        while (self._task is not None and not self._task.done()) or self._logging:
            pending = [*self._logging, *([self._task] if self._task is not None else [])]
            await asyncio.wait(pending)

    async def answer_alone(self, request_id: str, payload: Payload, rows: int) -> Outcome | None:
        """Predict and log a lone request right here on the event loop, if the route allows.

        That is when nothing is queued or being predicted for this route and the
        request may go inline (see the module docstring); it then skips the queue,
        the batching task and their hand-offs. Returns None otherwise, and the
        caller then uses :meth:`submit`.

        Raises:
            Exception: the model's error for this input, or :class:`LogUnavailable`.
        """
        if not (self._idle() and self._may_inline(rows)):
            return None
        arrived = time.perf_counter()
        # Requests read in the same loop pass run first: if one reaches the server, all batch.
        await asyncio.sleep(0)
        if not (self._idle() and self._may_inline(rows)):
            return None
        item = _Pending(request_id, payload, rows, None, arrived)
        self._count_batch(rows, 1)
        results, _ = self._timed_call([item], lone=True)  # nothing queued: logs too
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _idle(self) -> bool:
        """Whether nothing is queued or being predicted for this route."""
        return not self._queue and (self._task is None or self._task.done())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = await self._gather()
            # A lone request of at most a batch's rows: its call time says whether it is fast.
            lone = (
                len(batch) == 1 and not self._queue and batch[0].rows <= self.policy.max_batch_size
            )
            try:
                if lone and self._may_inline(batch[0].rows):
                    results, logged = self._timed_call(batch, lone=True)
                else:
                    started = time.perf_counter()
                    results, logged = await loop.run_in_executor(
                        self._executor, self._predict_and_log_when_idle, batch
                    )
                    self._note_call(time.perf_counter() - started, lone=lone)
            except Exception as exc:
                results, logged = [exc] * len(batch), True
            if logged:
                _answer(batch, results)
            else:  # log (and answer) this batch while the next one is predicted
                logging = loop.create_task(self._log_and_answer(batch, results))
                self._logging.add(logging)
                logging.add_done_callback(self._logging.discard)

    def _may_inline(self, rows: int) -> bool:
        """Whether a lone request of ``rows`` rows may be predicted on the event loop."""
        average = self._lone_seconds
        return (
            rows <= self.policy.max_batch_size
            and average is not None
            and average <= INLINE_SECONDS
            and self._quiet is not None
            and self._quiet()
        )

    def _timed_call(
        self, batch: list[_Pending], *, lone: bool
    ) -> tuple[list[Outcome | BaseException], bool]:
        """:meth:`_predict_and_log_when_idle` on the event loop, its time noted.

        The log write is led from here too: waking the WAL thread and being woken
        by it would take about as long as the write and its sync.
        """
        started = time.perf_counter()
        try:
            return self._predict_and_log_when_idle(batch, lead=True)
        finally:
            self._note_call(time.perf_counter() - started, lone=lone)

    def _note_call(self, elapsed: float, *, lone: bool) -> None:
        """Fold one call's time into the moving averages (Retry-After; inline decisions)."""
        self._seconds_per_call = 0.8 * self._seconds_per_call + 0.2 * elapsed
        if lone:
            average = self._lone_seconds
            self._lone_seconds = elapsed if average is None else 0.8 * average + 0.2 * elapsed

    def _predict_and_log_when_idle(
        self, batch: list[_Pending], *, lead: bool = False
    ) -> tuple[list[Outcome | BaseException], bool]:
        """Predict; log too when no request waits (one thread hop fewer for a lone request).

        ``lead``: write the log in this thread (see :meth:`PredictionLog.append_many`).
        """
        started = time.perf_counter()
        results = self._predict(batch)
        self._call_seconds.observe(time.perf_counter() - started)
        if self._queue:
            return results, False
        return self._log(batch, results, lead=lead), True

    async def _log_and_answer(
        self, batch: list[_Pending], results: list[Outcome | BaseException]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._log, batch, results)
        except Exception as exc:
            results = [exc] * len(batch)
        _answer(batch, results)

    async def _gather(self) -> list[_Pending]:
        """Take the next batch: what is queued, after waiting ``max_wait_ms`` to fill."""
        limit = self.policy.max_batch_size
        if self.policy.max_wait_ms > 0:
            deadline = time.perf_counter() + self.policy.max_wait_ms / 1000
            while sum(p.rows for p in self._queue) < limit:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), remaining)
                except TimeoutError:
                    break
        batch = [self._queue.popleft()]
        rows = batch[0].rows
        while self._queue and rows + self._queue[0].rows <= limit:
            item = self._queue.popleft()
            batch.append(item)
            rows += item.rows
        self._depth.dec(len(batch))
        self._count_batch(rows, len(batch))
        return batch

    def _count_batch(self, rows: int, requests: int) -> None:
        self._batch_rows.observe(rows)
        self._batch_requests.observe(requests)

    def _log(
        self,
        batch: Sequence[_Pending],
        results: list[Outcome | BaseException],
        *,
        lead: bool = False,
    ) -> list[Outcome | BaseException]:
        """Log the batch's predictions and wait until they are durable."""
        now = time.perf_counter()
        version = self.version
        records = [
            PredictionRecord(
                request_id=item.request_id,
                endpoint=self.endpoint,
                route=self.route,
                model_version=version,
                inputs=item.payload,
                output=result.predictions,
                latency_ms=(now - item.arrived) * 1000,
                probabilities=result.probabilities,
            )
            for item, result in zip(batch, results, strict=True)
            if isinstance(result, Outcome)
        ]
        if records:
            try:
                self._log_to.append_many(records, wait=True, lead=lead)
            except PredictionTooLarge as exc:  # the batch's other records are logged
                refused = set(exc.request_ids)
                return [
                    exc if item.request_id in refused else result
                    for item, result in zip(batch, results, strict=True)
                ]
            except Exception as exc:
                failure = LogUnavailable(f"The prediction log could not be written: {exc}")
                return [failure if isinstance(r, Outcome) else r for r in results]
        return results

    def _predict(self, batch: Sequence[_Pending]) -> list[Outcome | BaseException]:
        if len(batch) == 1:
            return [self._predict_one(batch[0].payload)]
        try:
            values, probabilities = self._call(_merge([item.payload for item in batch]))
        except Exception:
            return [self._predict_one(item.payload) for item in batch]
        results: list[Outcome | BaseException] = []
        start = 0
        for item in batch:
            end = start + item.rows
            rows = (
                None
                if probabilities is None
                else FloatRows(probabilities.names, probabilities.values[start:end])
            )
            results.append(Outcome(values[start:end], self.version, rows))
            start = end
        return results

    def _predict_one(self, payload: Payload) -> Outcome | BaseException:
        try:
            values, probabilities = self._call(payload)
        except Exception as exc:
            return exc
        return Outcome(values, self.version, probabilities)

    def _call(self, payload: Payload) -> tuple[list[Any], FloatRows | None]:
        """The predictions of ``payload``'s rows and, when logged, their class probabilities."""
        frame = _frame(payload, self._float_inputs)
        result = self.model.predict(frame)
        values: list[Any] = result.tolist() if hasattr(result, "tolist") else list(result)
        return values, self._probabilities(frame) if self._log_probabilities else None

    def _probabilities(self, frame: pd.DataFrame) -> FloatRows | None:
        """The rows' class probabilities to log; None (warned once) when they cannot be had."""
        try:
            found = logged_probabilities(self.model, frame)
            problem = None if found is not None else "two of its classes have the same key"
        except Exception as exc:
            found, problem = None, f"predict_proba failed: {exc}"
        if problem is not None and not self._proba_failed:
            self._proba_failed = True
            _log.warning(
                "Endpoint %r, route %r: the class probabilities of model %s are not logged "
                "(%s); its predictions are.",
                self.endpoint,
                self.route,
                self.version,
                problem,
            )
        return found

    def _retry_after(self) -> int:
        calls_waiting = len(self._queue) / max(1, self.policy.max_batch_size) + 1
        return max(1, math.ceil(calls_waiting * self._seconds_per_call))


def _answer(batch: Sequence[_Pending], results: Sequence[Outcome | BaseException]) -> None:
    """Resolve each request's future with its outcome or error."""
    for item, result in zip(batch, results, strict=True):
        if item.future is None or item.future.done():  # no future to resolve; or client gone
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)


_SMALL = 256  # rows: below this, checking each value's type costs less than pandas' dict path


def _frame(payload: Payload, float_inputs: list[str] | None) -> pd.DataFrame:
    """The DataFrame of a request; for an all-float signature, built as one 2-D block.

    Building from a 2-D array is several times faster than from a dict of lists,
    which matters for single-row requests. From columns, it is taken only when they
    are exactly the signature's and every value is a float, so the signature check
    sees the same frame either way.
    """
    if isinstance(payload, FloatRows):
        return pd.DataFrame(payload.values, columns=_index(payload.names), copy=False)
    if float_inputs is not None and len(payload) == len(float_inputs):
        rows = len(next(iter(payload.values())))
        if rows <= _SMALL and all(name in payload for name in float_inputs):
            ordered = [payload[name] for name in float_inputs]
            if all(type(v) is float for column in ordered for v in column):
                return pd.DataFrame(
                    np.array(ordered).T, columns=_index(tuple(float_inputs)), copy=False
                )
    return pd.DataFrame(payload)


@functools.lru_cache(maxsize=64)
def _index(names: tuple[str, ...]) -> pd.Index:
    """The column index of ``names`` (built once: an Index of strings costs ~35 µs)."""
    return pd.Index(names)


def _merge(requests: Sequence[Payload]) -> Payload:
    """One request's worth of rows from several (missing columns are None)."""
    floats = [r for r in requests if isinstance(r, FloatRows)]
    if len(floats) == len(requests) and all(r.names == floats[0].names for r in floats):
        return FloatRows(floats[0].names, np.concatenate([r.values for r in floats]))
    every = [to_columns(r) for r in requests]
    names = list(dict.fromkeys(chain.from_iterable(every)))
    merged: Columns = {}
    for name in names:
        merged[name] = list(
            chain.from_iterable(
                columns[name] if name in columns else [None] * len(next(iter(columns.values())))
                for columns in every
            )
        )
    return merged
