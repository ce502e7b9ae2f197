"""The local executor: a pool of warm worker processes on this machine.

Each worker is a process started once (from a forkserver that has already
imported loopml, so starting one is a fork, not an interpreter start) and then
reused: tasks go to it over a pipe and results come back. One thread per worker
slot feeds it from a shared queue, watches the clock for the task's timeout and
notices if the process dies. A worker that times out or dies is replaced at
once, so the pool stays warm.

Workers are started from a forkserver (or spawned), never forked from the
caller, so they inherit no open database connections or writer threads. Like
every such pool, they import the caller's ``__main__`` module when they start:
a script that runs a pipeline at top level needs ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
import weakref
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from types import TracebackType

from loopml.errors import InvalidParameter
from loopml.pipelines._executors._worker import failed_result, serve
from loopml.pipelines._task import StepResult, StepTask

__all__ = ["LocalExecutor"]

_PRELOAD = [
    "loopml.pipelines._executors._worker",
    "loopml.pipelines._materializers",
    "cloudpickle",
]
_STOP_GRACE = 5.0  # seconds an idle worker gets to exit before it is killed

_live: weakref.WeakSet[LocalExecutor] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


class LocalExecutor:
    """Run step tasks in a pool of warm worker processes; independent tasks in parallel.

    Workers start on demand, up to ``max_workers``, and stay warm until
    :meth:`shutdown`. A task that outlives ``task.timeout`` (counted from when
    its worker receives it, over all its attempts) has its worker killed and
    resolves as ``timeout``; a worker that dies (a crash, ``os._exit``, a kill
    from outside) resolves its task as ``failed`` with ``error_type
    "WorkerDied"``. Either way a replacement worker starts at once.

    Args:
        max_workers: most tasks run at once; default ``os.cpu_count()``.

    Raises:
        InvalidParameter: ``max_workers`` is not a positive int.

    Example:
        >>> with LocalExecutor(max_workers=2) as executor:
        ...     result = executor.submit(task).result()
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidParameter(
                f"The 'max_workers' parameter of LocalExecutor must be an int >= 1; "
                f"got {max_workers!r}."
            )
        self.max_workers = max_workers
        self._context = _worker_context()
        self._queue: queue.SimpleQueue[tuple[StepTask, Future[StepResult]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._idle = 0
        self._closed = False
        self._killing = False
        _register(self)

    def submit(self, task: StepTask) -> Future[StepResult]:
        """Queue ``task``; a free worker takes it next.

        Returns:
            A future resolving to the task's :class:`StepResult` (it does not
            raise for the step's own failures).

        Raises:
            RuntimeError: the executor was shut down.
        """
        future: Future[StepResult] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("This LocalExecutor has been shut down.")
            self._queue.put((task, future))
            if self._idle > 0:
                self._idle -= 1  # that idle slot will take it
            elif len(self._slots) < self.max_workers:
                slot = _Slot(self, len(self._slots))
                self._slots.append(slot)
                slot.start()
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Stop every worker and join it; tasks not yet started are cancelled.

        Args:
            wait: let running tasks finish first (True), or kill their workers
                now and resolve them as failed with ``error_type "ExecutorShutdown"``.
        """
        with self._lock:
            self._closed = True
            self._killing = self._killing or not wait
            slots = list(self._slots)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[1].cancel()
            for _ in slots:
                self._queue.put(None)
        if not wait:
            for slot in slots:
                slot.kill_worker()
        for slot in slots:
            slot.join()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=exc_type is None)

    def __repr__(self) -> str:
        return f"LocalExecutor(max_workers={self.max_workers})"


class _Slot:
    """One place in the pool: a thread that owns one worker process at a time."""

    def __init__(self, executor: LocalExecutor, number: int) -> None:
        self._executor = executor
        self._number = number
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._process_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._serve, name=f"loopml-local-executor-{number}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def kill_worker(self) -> None:
        with self._process_lock:
            if self._process is not None and self._process.is_alive():
                self._process.kill()

    def _serve(self) -> None:
        executor = self._executor
        claimed = True  # a new slot is started for the task that needed it
        try:
            while True:
                if not claimed:
                    with executor._lock:
                        executor._idle += 1
                claimed = False
                item = executor._queue.get()
                if item is None:
                    return
                task, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = self._execute(task)
                except BaseException as error:  # never leave a future unresolved
                    future.set_result(
                        failed_result(type(error).__name__, f"Step {task.step_name!r}: {error}")
                    )
                    raise
                future.set_result(result)
                if self._process is None and not executor._closed:
                    self._start_worker()  # replace a killed or dead worker while idle
        finally:
            self._stop_worker()

    def _execute(self, task: StepTask) -> StepResult:
        if self._process is None or not self._process.is_alive():
            self._discard_worker()
            self._start_worker()
        process, connection = self._process, self._connection
        assert process is not None and connection is not None
        started = time.monotonic()
        try:
            connection.send(task)
        except (OSError, EOFError):
            return self._died(task, started, 0)
        except Exception as error:  # the task did not pickle; the pipe is untouched
            return failed_result(
                type(error).__name__, f"Step {task.step_name!r} could not be sent: {error}"
            )
        deadline = None if task.timeout is None else started + task.timeout
        attempts = 0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([connection, process.sentinel], remaining)
            if not ready:
                return self._timed_out(task, started, attempts)
            if connection in ready:
                try:
                    kind, payload = connection.recv()
                except (OSError, EOFError):
                    return self._died(task, started, attempts)
                if kind == "attempt":
                    attempts = int(payload)
                    continue
                result: StepResult = payload
                return result
            return self._died(task, started, attempts)

    def _timed_out(self, task: StepTask, started: float, attempts: int) -> StepResult:
        self.kill_worker()
        self._discard_worker()
        return failed_result(
            "TimeoutError",
            f"Step {task.step_name!r} exceeded its timeout of {task.timeout:g} s; "
            "its worker process was killed.",
            status="timeout",
            attempts=attempts,
            wall_seconds=time.monotonic() - started,
        )

    def _died(self, task: StepTask, started: float, attempts: int) -> StepResult:
        process = self._process
        code = None
        if process is not None:
            process.join(_STOP_GRACE)
            code = process.exitcode
        self._discard_worker()
        if self._executor._killing:
            return failed_result(
                "ExecutorShutdown",
                f"Step {task.step_name!r} was stopped: its executor was shut down.",
                attempts=attempts,
                wall_seconds=time.monotonic() - started,
            )
        return failed_result(
            "WorkerDied",
            f"The worker process running step {task.step_name!r} died "
            f"(exit code {_describe_exit(code)}).",
            attempts=attempts,
            wall_seconds=time.monotonic() - started,
        )

    def _start_worker(self) -> None:
        context = self._executor._context
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(  # type: ignore[attr-defined]
            target=serve,
            args=(theirs, dict(os.environ)),
            name=f"loopml-worker-{self._number}",
            daemon=False,  # daemonic processes may not start their own (n_jobs=…)
        )
        process.start()
        theirs.close()
        with self._process_lock:
            self._process, self._connection = process, ours

    def _discard_worker(self) -> None:
        with self._process_lock:
            process, connection = self._process, self._connection
            self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            process.join(_STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()

    def _stop_worker(self) -> None:
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(OSError, EOFError):
                connection.send(None)
        self._discard_worker()


def _worker_context() -> BaseContext:
    """A forkserver context that preloads the worker module, or spawn where there is none."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return f"{code}, {signal.Signals(-code).name}"
        except ValueError:
            return str(code)
    return str(code)


def _register(executor: LocalExecutor) -> None:
    """Shut ``executor`` down at interpreter exit if its owner did not."""
    global _exit_hook_registered
    with _exit_hook_lock:
        _live.add(executor)
        if not _exit_hook_registered:
            # Registered after multiprocessing's own hook, so it runs before it: that
            # hook joins non-daemonic children, which must be told to stop first.
            atexit.register(_shutdown_all)
            _exit_hook_registered = True


def _shutdown_all() -> None:
    for executor in list(_live):
        executor.shutdown(wait=False)
