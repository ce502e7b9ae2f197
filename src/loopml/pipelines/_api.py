"""Module-level pipeline functions: look up, list and resume pipeline runs."""

from __future__ import annotations

from collections.abc import Callable

from loopml import settings
from loopml.pipelines import _state
from loopml.pipelines._records import PipelineRun
from loopml.pipelines._runner import Event, Runner
from loopml.store import read_only
from loopml.tracking import get_client

__all__ = ["get_pipeline_run", "list_pipeline_runs", "resume"]


@read_only()
def get_pipeline_run(run_id: str) -> PipelineRun:
    """Return a pipeline run with the state of every step.

    Raises:
        RunNotFound: no pipeline run has that id.
    """
    client = get_client()
    return _state.load_pipeline_run(client.store, client.resolve_run_id(run_id))


@read_only()
def list_pipeline_runs(
    project: str | None = None, pipeline: str | None = None, limit: int = 50
) -> list[PipelineRun]:
    """Return the pipeline runs of a project, newest first; deleted runs are left out."""
    name = settings.project(project)
    return _state.list_pipeline_runs(get_client().store, name, pipeline, limit)


def resume(
    run_id: str,
    *,
    executor: str = "local",
    max_workers: int | None = None,
    ray_address: str | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> PipelineRun:
    """Continue a failed, interrupted or approval-waiting pipeline run.

    Finished steps are reused; a gate that was approved is passed, a rejected one
    ends the run as ``rejected``.

    Raises:
        StepFailed: a step failed again.
        InvalidParameter: the run already finished or was rejected.
    """
    runner = Runner(
        executor=executor, max_workers=max_workers, ray_address=ray_address, on_event=on_event
    )
    return runner.resume(get_client().resolve_run_id(run_id))
