"""The Ray executor: same outputs as the local one, resource requests, timeouts, Ray missing."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from loopml.errors import PipelineDefinitionError
from loopml.pipelines._executors import LocalExecutor, RayExecutor, create_executor
from loopml.pipelines._materializers import store_value
from loopml.pipelines._task import Resources, StepTask
from loopml.tracking import TrackingClient

# Starting Ray takes tens of seconds on a busy machine (the module shares one).
pytestmark = pytest.mark.slow


def scale(values: list[int], factor: int) -> dict[str, Any]:
    print("scaling", len(values))
    return {"scaled": [v * factor for v in values], "factor": factor}


def sleepy(seconds: float) -> None:
    time.sleep(seconds)


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    pytest.importorskip("ray")
    executor = RayExecutor(num_cpus=2)
    try:
        yield executor
    finally:
        executor.shutdown()


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[TrackingClient]:
    client = TrackingClient(f"sqlite:///{tmp_path / 'loopml.db'}", str(tmp_path / "artifacts"))
    yield client
    client.close()


def by_value(function: Any) -> bytes:
    """Pickle ``function`` with its code: Ray workers cannot import this test module."""
    module = sys.modules[function.__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(function))
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def make_task(
    client: TrackingClient,
    function: Any,
    *,
    inputs: dict[str, object] | None = None,
    constants: dict[str, Any] | None = None,
    timeout: float | None = None,
    resources: Resources | None = None,
) -> StepTask:
    return StepTask(
        run_id=client.create_run(project="p", kind="step"),
        step_name=function.__name__,
        function=by_value(function),
        inputs={k: store_value(v, client.artifacts) for k, v in (inputs or {}).items()},
        constants=constants or {},
        output_names=None,
        store_uri=client._store_uri,
        artifact_uri=client._artifact_uri,
        timeout=timeout,
        retries=0,
        backoff=0.0,
        resources=resources or Resources(),
    )


def test_a_step_gives_the_same_output_on_ray_as_locally(
    ray_executor: RayExecutor, tracking: TrackingClient
) -> None:
    def task() -> StepTask:
        return make_task(tracking, scale, inputs={"values": [1, 2, 3]}, constants={"factor": 3})

    on_ray = ray_executor.submit(task()).result(timeout=60)
    with LocalExecutor(max_workers=1) as local:
        here = local.submit(task()).result(timeout=60)

    assert on_ray.status == "finished", on_ray.traceback
    assert here.status == "finished", here.traceback
    assert "scaling 3" in on_ray.stdout
    assert [v.content_hash for v in on_ray.outputs] == [v.content_hash for v in here.outputs]


def test_a_step_asking_for_resources_runs(
    ray_executor: RayExecutor, tracking: TrackingClient
) -> None:
    task = make_task(
        tracking,
        scale,
        inputs={"values": [1]},
        constants={"factor": 2},
        resources=Resources(cpus=1, memory="64MiB"),
    )

    result = ray_executor.submit(task).result(timeout=60)

    assert result.status == "finished", result.traceback


def test_a_step_past_its_timeout_is_cancelled(
    ray_executor: RayExecutor, tracking: TrackingClient
) -> None:
    task = make_task(tracking, sleepy, constants={"seconds": 60}, timeout=1.0)

    result = ray_executor.submit(task).result(timeout=60)

    assert result.status == "timeout"
    assert result.error_message is not None
    assert "'sleepy'" in result.error_message


def test_without_ray_the_ray_executor_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)

    with pytest.raises(PipelineDefinitionError, match=r"pip install 'loopml\[ray\]'"):
        create_executor("ray")
