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

The queue is bounded: :meth:`Batcher.submit` raises :class:`Overloaded`, with a
Retry-After estimate, rather than let memory grow without limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidParameter
from loopml.registry._loaded import LoadedModel
from loopml.serving._metrics import ServerMetrics
from loopml.serving._payloads import Columns
from loopml.serving._predlog import PredictionLog, PredictionRecord

__all__ = ["BatchPolicy", "Batcher", "LogUnavailable", "Outcome", "Overloaded"]


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
    """What a request gets: its predictions, and the model version that made them."""

    predictions: list[Any]
    model_version: str


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
    columns: Columns
    rows: int
    future: asyncio.Future[Outcome]
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
    ) -> None:
        self.model = model
        self.endpoint = endpoint
        self.route = route
        self.policy = policy
        self._log_to = log
        self._executor = executor
        self._queue: deque[_Pending] = deque()
        self._arrival = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._logging: set[asyncio.Task[None]] = set()
        self._seconds_per_call = 0.0
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
        self.answered = metrics.requests.labels(*labels, "200")
        """Counter of this route's answered requests (the server counts them)."""
        self.latency = metrics.latency.labels(*labels)
        """Histogram of this route's request latency (the server observes it)."""

    @property
    def version(self) -> str:
        """The model version that answers (``credit/7``)."""
        return self.model.version.ref

    def submit(self, request_id: str, columns: Columns, rows: int) -> asyncio.Future[Outcome]:
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
        self._queue.append(_Pending(request_id, columns, rows, future, time.perf_counter()))
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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = await self._gather()
            started = time.perf_counter()
            try:
                results, logged = await loop.run_in_executor(
                    self._executor, self._predict_and_log_when_idle, batch
                )
            except Exception as exc:
                results, logged = [exc] * len(batch), True
            elapsed = time.perf_counter() - started
            self._seconds_per_call = 0.8 * self._seconds_per_call + 0.2 * elapsed
            if logged:
                _answer(batch, results)
            else:  # log (and answer) this batch while the next one is predicted
                logging = loop.create_task(self._log_and_answer(batch, results))
                self._logging.add(logging)
                logging.add_done_callback(self._logging.discard)

    def _predict_and_log_when_idle(
        self, batch: list[_Pending]
    ) -> tuple[list[Outcome | BaseException], bool]:
        """Predict; log too when no request waits (one thread hop fewer for a lone request)."""
        results = self._predict(batch)
        if self._queue:
            return results, False
        return self._log(batch, results), True

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
        self._batch_rows.observe(rows)
        self._batch_requests.observe(len(batch))
        return batch

    def _log(
        self, batch: Sequence[_Pending], results: list[Outcome | BaseException]
    ) -> list[Outcome | BaseException]:
        """Log the batch's predictions and wait until they are durable (worker thread)."""
        now = time.perf_counter()
        version = self.version
        records = [
            PredictionRecord(
                request_id=item.request_id,
                endpoint=self.endpoint,
                route=self.route,
                model_version=version,
                inputs=item.columns,
                output=result.predictions,
                latency_ms=(now - item.arrived) * 1000,
            )
            for item, result in zip(batch, results, strict=True)
            if isinstance(result, Outcome)
        ]
        if records:
            try:
                self._log_to.append_many(records, wait=True)
            except Exception as exc:
                failure = LogUnavailable(f"The prediction log could not be written: {exc}")
                return [failure if isinstance(r, Outcome) else r for r in results]
        return results

    def _predict(self, batch: Sequence[_Pending]) -> list[Outcome | BaseException]:
        if len(batch) == 1:
            return [self._predict_one(batch[0].columns)]
        try:
            values = self._values(_merge([item.columns for item in batch]))
        except Exception:
            return [self._predict_one(item.columns) for item in batch]
        results: list[Outcome | BaseException] = []
        start = 0
        for item in batch:
            results.append(Outcome(values[start : start + item.rows], self.version))
            start += item.rows
        return results

    def _predict_one(self, columns: Columns) -> Outcome | BaseException:
        try:
            return Outcome(self._values(columns), self.version)
        except Exception as exc:
            return exc

    def _values(self, columns: Columns) -> list[Any]:
        result = self.model.predict(_frame(columns, self._float_inputs))
        values: list[Any] = result.tolist() if hasattr(result, "tolist") else list(result)
        return values

    def _retry_after(self) -> int:
        calls_waiting = len(self._queue) / max(1, self.policy.max_batch_size) + 1
        return max(1, math.ceil(calls_waiting * self._seconds_per_call))


def _answer(batch: Sequence[_Pending], results: Sequence[Outcome | BaseException]) -> None:
    """Resolve each request's future with its outcome or error."""
    for item, result in zip(batch, results, strict=True):
        if item.future.done():  # the client went away
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)


_SMALL = 256  # rows: below this, checking each value's type costs less than pandas' dict path


def _frame(columns: Columns, float_inputs: list[str] | None) -> pd.DataFrame:
    """The DataFrame of ``columns``; for an all-float signature, built as one 2-D block.

    Building from a 2-D array is several times faster than from a dict of lists,
    which matters for single-row requests. It is taken only when the columns are
    exactly the signature's and every value is a float, so the signature check
    sees the same frame either way.
    """
    if float_inputs is not None and len(columns) == len(float_inputs):
        rows = len(next(iter(columns.values())))
        if rows <= _SMALL and all(name in columns for name in float_inputs):
            ordered = [columns[name] for name in float_inputs]
            if all(type(v) is float for column in ordered for v in column):
                return pd.DataFrame(np.array(ordered).T, columns=float_inputs, copy=False)
    return pd.DataFrame(columns)


def _merge(requests: Sequence[Columns]) -> Columns:
    """One request's worth of columns from several (missing columns are None)."""
    names = list(dict.fromkeys(chain.from_iterable(requests)))
    merged: Columns = {}
    for name in names:
        merged[name] = list(
            chain.from_iterable(
                columns[name] if name in columns else [None] * len(next(iter(columns.values())))
                for columns in requests
            )
        )
    return merged
