"""The Ray executor: each step task becomes a Ray task with the step's resource request."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from loopml.errors import PipelineDefinitionError
from loopml.pipelines._executors._worker import failed_result, qualified_name, run_task
from loopml.pipelines._task import StepResult, StepTask

__all__ = ["RayExecutor"]

_MISSING = "the ray executor needs Ray: pip install 'loopml[ray]'"


class RayExecutor:
    """Run each step task as a Ray task, asking Ray for the step's cpus, gpus and memory.

    Connects to the Ray cluster at ``address``, or to the one already
    initialised in this process, or starts a local Ray (which sees the whole
    machine) when there is none. A task that outlives ``task.timeout`` —
    counted from submission, so time spent waiting for resources counts — is
    cancelled (its Ray worker killed) and resolves as ``timeout``. Ray does not
    retry tasks itself: a step's retries happen inside :func:`run_task`, and a
    Ray worker that dies resolves the task as ``failed`` (``"WorkerDied"``).

    Args:
        address: a Ray cluster address (``"ray://host:10001"``, ``"auto"``), or
            None for the initialised or a new local Ray.
        **init_options: more keyword arguments for ``ray.init`` (for example
            ``num_cpus=2``), used only when this executor starts Ray.

    Raises:
        PipelineDefinitionError: Ray is not installed.

    Example:
        >>> with RayExecutor() as executor:
        ...     result = executor.submit(task).result()
    """

    def __init__(self, address: str | None = None, **init_options: Any) -> None:
        try:
            import ray
        except ImportError as error:
            raise PipelineDefinitionError(_MISSING) from error
        self._ray = ray
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(
                **{
                    "address": address,
                    "ignore_reinit_error": True,
                    "include_dashboard": False,
                    "log_to_driver": False,
                    **init_options,
                }
            )
            self._started_ray = True
        # Ray's own retries would re-run a step that crashed its worker, silently.
        self._remote = ray.remote(max_retries=0)(run_task)
        self._closed = False

    def submit(self, task: StepTask) -> Future[StepResult]:
        """Submit ``task`` to Ray.

        Returns:
            A future resolving to the task's :class:`StepResult` (it does not
            raise for the step's own failures, nor for a dead Ray worker).

        Raises:
            RuntimeError: the executor was shut down.
        """
        if self._closed:
            raise RuntimeError("This RayExecutor has been shut down.")
        resources = task.resources
        options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus}
        if resources.memory_bytes is not None:
            options["memory"] = resources.memory_bytes
        started = time.monotonic()
        ref = self._remote.options(**options).remote(task)
        result: Future[StepResult] = Future()
        result.set_running_or_notify_cancel()
        timed_out = threading.Event()
        timer: threading.Timer | None = None
        if task.timeout is not None:
            timer = threading.Timer(task.timeout, self._cancel, (ref, timed_out))
            timer.daemon = True
            timer.start()

        def resolve(ray_future: Future[Any]) -> None:
            if timer is not None:
                timer.cancel()
            error = ray_future.exception()
            if error is None:
                result.set_result(ray_future.result())
            else:
                result.set_result(self._failure(task, error, timed_out.is_set(), started))

        ref.future().add_done_callback(resolve)
        return result

    def shutdown(self) -> None:
        """Stop accepting tasks; shut Ray down only if this executor started it."""
        self._closed = True
        if self._started_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _cancel(self, ref: Any, timed_out: threading.Event) -> None:
        timed_out.set()
        # Already finished, or Ray is gone: nothing to stop then.
        with contextlib.suppress(Exception):
            self._ray.cancel(ref, force=True)

    def _failure(
        self, task: StepTask, error: BaseException, timed_out: bool, started: float
    ) -> StepResult:
        elapsed = time.monotonic() - started
        if timed_out:
            return failed_result(
                "TimeoutError",
                f"Step {task.step_name!r} exceeded its timeout of {task.timeout:g} s; "
                "its Ray task was cancelled.",
                status="timeout",
                wall_seconds=elapsed,
            )
        exceptions = self._ray.exceptions
        if isinstance(error, exceptions.WorkerCrashedError | exceptions.NodeDiedError):
            return failed_result(
                "WorkerDied",
                f"The Ray worker running step {task.step_name!r} died: {error}",
                wall_seconds=elapsed,
            )
        return failed_result(
            qualified_name(error),
            f"Step {task.step_name!r} could not run on Ray: {error}",
            wall_seconds=elapsed,
        )
