"""What runs in a worker process: one step task in, one :class:`StepResult` out.

:func:`run_task` is shared by every executor (a local worker process, a Ray
task). :func:`serve` is the loop of a local worker process: tasks arrive over a
pipe, results go back; the process stays warm between tasks.

Resource figures in a result are the worker process's: ``cpu_seconds`` and
``wall_seconds`` cover this task (loading inputs, every attempt, storing
outputs), but ``peak_memory_bytes`` is the process's high-water mark so far
(``VmHWM``), which in a reused worker includes earlier tasks — the OS keeps no
per-task peak.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal

import cloudpickle

from loopml.errors import MaterializerError
from loopml.pipelines._task import StepResult, StepTask, StoredValue
from loopml.tracking import _fluent
from loopml.tracking._client import TrackingClient
from loopml.tracking._context import ResourceMeter

if TYPE_CHECKING:
    from loopml.artifacts import ArtifactStore

__all__ = ["OUTPUT_LIMIT", "failed_result", "qualified_name", "run_task", "serve"]

OUTPUT_LIMIT = 1024 * 1024
"""Bytes of captured stdout (and, separately, stderr) kept per task."""

_clients: dict[tuple[str, str], TrackingClient] = {}


def qualified_name(error: BaseException | type[BaseException]) -> str:
    """``module.QualName`` of an exception or exception type (builtins unprefixed)."""
    kind = error if isinstance(error, type) else type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def failed_result(
    error_type: str,
    message: str,
    *,
    status: Literal["failed", "timeout"] = "failed",
    error_traceback: str | None = None,
    attempts: int = 0,
    wall_seconds: float = 0.0,
) -> StepResult:
    """A result for a task that did not finish, when the worker could not say more.

    Used by executors for what happens outside :func:`run_task` (a timeout, a
    worker that died); the resource figures are unknown and left at zero.
    """
    return StepResult(
        status=status,
        outputs=(),
        error_type=error_type,
        error_message=message,
        traceback=error_traceback,
        attempts=attempts,
        stdout="",
        stderr="",
        cpu_seconds=0.0,
        peak_memory_bytes=0,
        wall_seconds=wall_seconds,
    )


def run_task(task: StepTask, on_attempt: Callable[[int], None] | None = None) -> StepResult:
    """Run one step task in this process and report how it went.

    The step's child run (``task.run_id``) is the active run while the function
    runs, so ``loopml.log_metric`` inside a step logs to it. Inputs are loaded
    from the artifact store, the function is called with inputs and constants as
    keyword arguments, stdout and stderr are captured (Python-level writes only;
    the first and last half MiB of each are kept), a raised exception is retried
    ``task.retries`` times (retry ``k`` waits ``task.backoff * 2 ** (k - 1)``
    seconds; inputs are loaded afresh for each attempt), outputs are stored, and
    buffered metrics are written before returning.

    Args:
        task: the step to run.
        on_attempt: called with the attempt number (1, 2, …) as each attempt
            starts; a local worker uses it to tell its executor.

    Returns:
        ``finished`` with the stored outputs, or ``failed`` with the error's
        qualified type, message and traceback. User errors never raise.
    """
    meter = ResourceMeter()
    stdout = _CappedText(OUTPUT_LIMIT)
    stderr = _CappedText(OUTPUT_LIMIT)
    attempts = 0

    def done(
        status: Literal["finished", "failed"],
        outputs: tuple[StoredValue, ...] = (),
        error: tuple[str, str, str | None] | None = None,
    ) -> StepResult:
        usage = meter.stop()
        return StepResult(
            status=status,
            outputs=outputs,
            error_type=None if error is None else error[0],
            error_message=None if error is None else error[1],
            traceback=None if error is None else error[2],
            attempts=attempts,
            stdout=stdout.getvalue(),
            stderr=stderr.getvalue(),
            cpu_seconds=usage.cpu_seconds,
            peak_memory_bytes=usage.peak_memory_bytes,
            wall_seconds=usage.wall_seconds,
        )

    try:
        client = _client_for(task.store_uri, task.artifact_uri)
        function = cloudpickle.loads(task.function)
        # Imported after the function, which may bring its own module imports.
        from loopml.pipelines import _materializers
    except Exception as error:
        return done("failed", error=_describe(error, f"Step {task.step_name!r} could not start"))

    run = _activate(task.run_id, client)
    try:
        value: Any = None
        failure: tuple[str, str, str | None] | None = None
        for attempts in range(1, max(0, task.retries) + 2):
            if attempts > 1:
                time.sleep(max(0.0, task.backoff) * 2 ** (attempts - 2))
            if on_attempt is not None:
                on_attempt(attempts)
            try:
                arguments = {
                    name: _materializers.load_value(stored, client.artifacts)
                    for name, stored in task.inputs.items()
                }
                arguments.update(task.constants)
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    value = function(**arguments)
            except (Exception, SystemExit) as error:
                failure = _describe(error, f"Step {task.step_name!r} failed")
                continue
            failure = None
            break
        if failure is not None:
            return _flushed(client, done("failed", error=failure))
        try:
            values = _split_outputs(task, value)
        except _OutputMismatch as error:
            return _flushed(client, done("failed", error=("ValueError", str(error), None)))
        try:
            outputs = tuple(_store(task.step_name, v, client.artifacts) for v in values)
        except Exception as error:
            context: str | None = f"Step {task.step_name!r}: its outputs could not be stored"
            if isinstance(error, MaterializerError):
                context = None  # the message names the step and the type already
            return _flushed(client, done("failed", error=_describe(error, context)))
        return _flushed(client, done("finished", outputs))
    finally:
        _deactivate(run)


def serve(connection: Connection, environ: dict[str, str] | None = None) -> None:
    """The loop of a local worker process: run each task received, send its result.

    Messages to the executor are ``("attempt", n)`` as each attempt starts and
    ``("result", StepResult)`` when the task is done. ``None`` (or a closed pipe,
    as when the executor's process dies) ends the loop.

    Args:
        connection: this worker's end of the pipe.
        environ: the executor's environment when it started this worker (a
            forkserver's children would otherwise inherit the forkserver's).
    """
    # Ctrl-C reaches the whole process group; the executor decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    try:
        while True:
            try:
                task = connection.recv()
            except (EOFError, OSError):
                return
            except Exception as error:  # a task that does not unpickle here
                reply = failed_result(qualified_name(error), f"The task did not unpickle: {error}")
                connection.send(("result", reply))
                continue
            if task is None:
                return
            try:
                result = run_task(task, lambda n: connection.send(("attempt", n)))
            except Exception as error:  # a bug here, not in the step: report, keep serving
                result = failed_result(
                    qualified_name(error),
                    f"Step {getattr(task, 'step_name', '?')!r}: the worker failed: {error}",
                    error_traceback="".join(traceback.format_exception(error)),
                )
            connection.send(("result", result))
    finally:
        for client in _clients.values():
            with contextlib.suppress(Exception):
                client.close()
        _clients.clear()


# -- helpers --------------------------------------------------------------------


class _OutputMismatch(Exception):
    pass


def _client_for(store_uri: str, artifact_uri: str) -> TrackingClient:
    """This process's client for the stores (opened once, then reused)."""
    key = (store_uri, artifact_uri)
    client = _clients.get(key)
    if client is None:
        client = TrackingClient(store_uri, artifact_uri)
        # Open the store before anything asks for the metric writer: the writer
        # property opens the store under the same (non-reentrant) lock, so a
        # client whose first call is log_metric would deadlock.
        _ = client.store
        _clients[key] = client
    return client


def _activate(run_id: str, client: TrackingClient) -> _fluent.ActiveRun:
    """Make ``run_id`` the fluent API's active run, logging through ``client``."""
    run = _fluent.ActiveRun(run_id, client)
    with _fluent._lock:
        if _fluent._client is not client or _fluent._client_pid != os.getpid():
            _fluent._client = client
            _fluent._client_pid = os.getpid()
        _fluent._stack.append(run)
    return run


def _deactivate(run: _fluent.ActiveRun) -> None:
    with _fluent._lock:
        if run in _fluent._stack:
            _fluent._stack.remove(run)


def _flushed(client: TrackingClient, result: StepResult) -> StepResult:
    """``result``, once the metrics the step logged are written (failed if they cannot be)."""
    try:
        client.flush()
    except Exception as error:
        if result.status != "finished":
            return result
        kind, message, trace = _describe(error, "The step's metrics could not be written")
        return dataclasses.replace(
            result,
            status="failed",
            outputs=(),
            error_type=kind,
            error_message=message,
            traceback=trace,
        )
    return result


def _split_outputs(task: StepTask, value: Any) -> tuple[Any, ...]:
    names = task.output_names
    if names is None:
        return (value,)
    if not isinstance(value, tuple) or len(value) != len(names):
        got = (
            f"a tuple of {len(value)}"
            if isinstance(value, tuple)
            else f"a {type(value).__module__}.{type(value).__qualname__}"
        )
        raise _OutputMismatch(
            f"Step {task.step_name!r} must return a tuple of {len(names)} values "
            f"({', '.join(names)}); it returned {got}."
        )
    return value


def _store(step_name: str, value: Any, artifacts: ArtifactStore) -> StoredValue:
    from loopml.pipelines import _materializers

    try:
        return _materializers.store_value(value, artifacts)
    except MaterializerError as error:
        kind = type(value)
        raise MaterializerError(
            f"Step {step_name!r}: its output of type {kind.__module__}.{kind.__qualname__} "
            f"could not be stored: {error}"
        ) from error


def _describe(error: BaseException, context: str | None) -> tuple[str, str, str]:
    """Qualified type, message (after ``context``) and traceback of ``error``."""
    message = str(error) or qualified_name(error)
    if context is not None:
        message = f"{context}: {message}"
    return qualified_name(error), message, "".join(traceback.format_exception(error))


class _CappedText(io.TextIOBase):
    """A text sink keeping the first and the last ``limit / 2`` bytes (UTF-8) written."""

    def __init__(self, limit: int) -> None:
        self._half = limit // 2
        self._head: list[str] = []
        self._head_bytes = 0
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self._dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        room = self._half - self._head_bytes
        if room > 0:
            kept = data[:room]
            self._head.append(kept.decode("utf-8", "ignore"))
            self._head_bytes += len(kept)
            data = data[room:]
        if data:
            self._tail.append(data.decode("utf-8", "ignore"))
            self._tail_bytes += len(data)
            while self._tail_bytes > self._half:
                first = self._tail[0].encode("utf-8")
                excess = self._tail_bytes - self._half
                if len(first) <= excess:
                    self._tail.popleft()
                    self._tail_bytes -= len(first)
                    self._dropped += len(first)
                else:
                    self._tail[0] = first[excess:].decode("utf-8", "ignore")
                    self._tail_bytes -= excess
                    self._dropped += excess
        return len(text)

    def getvalue(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)
        if self._dropped:
            return f"{head}\n[… {self._dropped} bytes not kept …]\n{tail}"
        return head + tail
