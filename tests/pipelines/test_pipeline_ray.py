"""The Ray executor on a local Ray: same pipeline, same outputs as the local executor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lp_project import flows

import loopml
from conftest import PROJECT
from loopml.errors import StepFailed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray for this module; the executor connects to it instead of starting one."""
    ray = pytest.importorskip("ray")
    previous = os.environ.get("PYTHONPATH")
    # Ray workers import the project's steps (classes by reference, as on the local executor).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), previous]))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def content_hashes(run: loopml.pipelines.PipelineRun) -> dict[str, list[str]]:
    return {name: [v.content_hash for v in s.outputs] for name, s in run.steps.items()}


@pytest.mark.parametrize(
    ("pipeline", "params"),
    [
        (flows.chain, {"n": 6, "factor": 3}),
        (flows.round_trip, {"n": 12, "test_rows": 4}),
    ],
    ids=["chain", "round_trip"],
)
def test_ray_and_local_executors_store_equal_outputs(
    ray_cluster: Any, pipeline: loopml.pipelines.Pipeline, params: dict[str, Any]
) -> None:
    on_ray = pipeline.run(params=params, executor="ray", cache=False)
    on_local = pipeline.run(params=params, executor="local", cache=False, max_workers=2)

    assert on_ray.status == on_local.status == "finished"
    assert on_ray.executor == "ray"
    assert {s.status for s in on_ray.steps.values()} == {"finished"}
    assert content_hashes(on_ray) == content_hashes(on_local)
    assert all(content_hashes(on_ray).values())


def test_a_step_on_ray_logs_metrics_and_output_to_its_child_run(ray_cluster: Any) -> None:
    run = flows.chain.run(params={"n": 4, "factor": 2}, executor="ray", cache=False)

    scale = loopml.get_run(run.steps["scale"].run_id or "")
    assert scale.parent_id == run.id
    assert scale.metrics == {"count": 4.0, "factor": 2.0}
    assert "logs/stdout.txt" in {a.path for a in scale.artifacts}


def test_retries_and_timeouts_hold_on_ray(ray_cluster: Any, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    run = flows.retrying.run(
        params={"counter": str(counter), "failures": 2}, executor="ray", cache=False
    )
    assert run.steps["flaky"].attempts == 3

    with pytest.raises(StepFailed, match=r"TimeoutError"):
        flows.timing_out.run(params={"seconds": 30.0}, executor="ray")


def test_ray_step_runs_carry_the_pipeline_runs_code_context(ray_cluster: Any) -> None:
    """Issue 12 item 17: step runs on Ray record the pipeline run's context, like local ones."""
    run = flows.chain.run(params={"n": 4, "factor": 2}, executor="ray", cache=False)
    parent = loopml.get_run(run.id).context
    assert parent["git"]["commit"]  # the test project lives in this repository
    for name, step in run.steps.items():
        context = loopml.get_run(step.run_id).context
        assert context["git"] == parent["git"], name
        assert context.get("entry_point") == parent.get("entry_point"), name
        assert context["python_version"] == parent["python_version"], name
