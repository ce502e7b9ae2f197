"""The executor seam: what the pipeline runner needs of an executor, and picking one by name."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol

from loopml.errors import PipelineDefinitionError
from loopml.pipelines._task import StepResult, StepTask

__all__ = ["EXECUTORS", "Executor", "create_executor"]

EXECUTORS = ("local", "ray")
"""Names :func:`create_executor` accepts."""


class Executor(Protocol):
    """Runs step tasks somewhere and reports back through futures."""

    def submit(self, task: StepTask) -> Future[StepResult]:
        """Start ``task``; the future resolves to its result and never raises for step errors."""
        ...

    def shutdown(self) -> None:
        """Stop and release the workers; tasks not yet started are cancelled."""
        ...


def create_executor(name: str, **options: Any) -> Executor:
    """Build the executor called ``name``.

    Args:
        name: ``"local"`` (worker processes on this machine) or ``"ray"``.
        **options: keyword arguments of the executor: ``max_workers`` for
            ``"local"``; ``address`` and ``ray.init`` options for ``"ray"``.

    Returns:
        A started executor; call ``shutdown()`` (or use it as a context manager).

    Raises:
        PipelineDefinitionError: an unknown name, or ``"ray"`` without Ray installed.
        InvalidParameter: a bad option value.

    Example:
        >>> executor = create_executor("local", max_workers=2)
        >>> executor.shutdown()
    """
    if name == "local":
        from loopml.pipelines._executors._local import LocalExecutor

        return LocalExecutor(**options)
    if name == "ray":
        from loopml.pipelines._executors._ray import RayExecutor

        return RayExecutor(**options)
    raise PipelineDefinitionError(
        f"The 'executor' parameter must be one of {list(EXECUTORS)}; got {name!r}."
    )
