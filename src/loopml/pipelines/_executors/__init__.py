"""Where steps run: worker processes on this machine, or a Ray cluster.

The pipeline runner builds a :class:`~loopml.pipelines._task.StepTask` per step
and submits it to an executor; every executor runs it with :func:`run_task` and
resolves a future with the :class:`~loopml.pipelines._task.StepResult`.
"""

from __future__ import annotations

from loopml.pipelines._executors._factory import EXECUTORS, Executor, create_executor
from loopml.pipelines._executors._local import LocalExecutor
from loopml.pipelines._executors._ray import RayExecutor
from loopml.pipelines._executors._worker import run_task

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "create_executor", "run_task"]
