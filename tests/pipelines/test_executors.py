"""The local executor and the worker's run_task: outputs, capture, retries, timeouts, deaths."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import loopml
from loopml.errors import InvalidParameter, PipelineDefinitionError
from loopml.pipelines._executors import LocalExecutor, create_executor
from loopml.pipelines._executors._worker import OUTPUT_LIMIT, _CappedText
from loopml.pipelines._materializers import load_value, store_value
from loopml.pipelines._task import Resources, StepTask, StoredValue
from loopml.tracking import TrackingClient

# -- steps (module-level, so workers import them by reference) ----------------------


def add(a: int, b: int, scale: int) -> int:
    print("adding", a, b)
    print("a warning", file=sys.stderr)
    loopml.log_metric("seen", float(a + b))
    loopml.log_param("scale", scale)
    run = loopml.active_run()
    assert run is not None
    loopml.set_tag("active", run.id)
    return (a + b) * scale


def two_outputs(x: int) -> tuple[int, int]:
    return x, x * 2


def one_output_for_two(x: int) -> int:
    return x


def stamp(seconds: float) -> list[float]:
    start = time.time()
    time.sleep(seconds)
    return [start, time.time()]


def flaky(path: str, failures: int) -> int:
    counter = Path(path)
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    if seen < failures:
        print(f"attempt {seen + 1}")
        raise RuntimeError(f"flaky failure {seen + 1}")
    return seen + 1


def pid() -> int:
    return os.getpid()


def sleepy(seconds: float) -> None:
    time.sleep(seconds)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unstorable() -> object:
    return threading.Lock()


def chatty(size: int) -> int:
    sys.stdout.write("x" * size)
    return size


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def executor() -> Iterator[LocalExecutor]:
    with LocalExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[TrackingClient]:
    client = TrackingClient(f"sqlite:///{tmp_path / 'loopml.db'}", str(tmp_path / "artifacts"))
    yield client
    client.close()


def make_task(
    client: TrackingClient,
    function: Any,
    *,
    inputs: dict[str, object] | None = None,
    constants: dict[str, Any] | None = None,
    output_names: tuple[str, ...] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    resources: Resources | None = None,
) -> StepTask:
    """A task for ``function`` with a fresh child run (inputs stored first)."""
    run_id = client.create_run(project="p", kind="step")
    return StepTask(
        run_id=run_id,
        step_name=function.__name__,
        function=cloudpickle.dumps(function),
        inputs={
            name: store_value(value, client.artifacts) for name, value in (inputs or {}).items()
        },
        constants=constants or {},
        output_names=output_names,
        store_uri=client._store_uri,
        artifact_uri=client._artifact_uri,
        timeout=timeout,
        retries=retries,
        backoff=0.01,
        resources=resources or Resources(),
    )


def load(client: TrackingClient, stored: StoredValue) -> Any:
    return load_value(stored, client.artifacts)


# -- tests ---------------------------------------------------------------------------


def test_a_step_runs_with_its_run_active_and_its_output_stored(
    executor: LocalExecutor, tracking: TrackingClient
) -> None:
    task = make_task(tracking, add, inputs={"a": 2, "b": 3}, constants={"scale": 10})

    result = executor.submit(task).result(timeout=30)

    assert result.status == "finished", result.traceback
    assert result.attempts == 1
    assert [load(tracking, stored) for stored in result.outputs] == [50]
    assert "adding 2 3" in result.stdout
    assert "a warning" in result.stderr
    assert result.wall_seconds > 0
    assert result.cpu_seconds >= 0
    assert result.peak_memory_bytes > 0
    run = tracking.get_run(task.run_id)
    assert run.metrics == {"seen": 5.0}
    assert run.params == {"scale": "10"}
    assert run.tags["active"] == task.run_id


def test_a_tuple_is_split_into_the_named_outputs(
    executor: LocalExecutor, tracking: TrackingClient
) -> None:
    task = make_task(tracking, two_outputs, constants={"x": 4}, output_names=("x", "double"))

    result = executor.submit(task).result(timeout=30)

    assert result.status == "finished", result.traceback
    assert [load(tracking, stored) for stored in result.outputs] == [4, 8]


def test_a_wrong_number_of_outputs_fails_with_what_was_expected(
    executor: LocalExecutor, tracking: TrackingClient
) -> None:
    task = make_task(tracking, one_output_for_two, constants={"x": 1}, output_names=("a", "b"))

    result = executor.submit(task).result(timeout=30)

    assert result.status == "failed"
    assert result.outputs == ()
    assert result.error_message is not None
    assert "'one_output_for_two'" in result.error_message
    assert "tuple of 2 values (a, b)" in result.error_message
    assert "builtins.int" in result.error_message


def test_an_output_that_cannot_be_stored_names_the_step_and_type(
    executor: LocalExecutor, tracking: TrackingClient
) -> None:
    result = executor.submit(make_task(tracking, unstorable)).result(timeout=30)

    assert result.status == "failed"
    assert result.error_type == "loopml.errors.MaterializerError"
    assert result.error_message is not None
    assert "'unstorable'" in result.error_message
    assert "lock" in result.error_message


def test_independent_steps_run_at_the_same_time(
    executor: LocalExecutor, tracking: TrackingClient
) -> None:
    tasks = [make_task(tracking, stamp, constants={"seconds": 1.0}) for _ in range(2)]

    futures = [executor.submit(task) for task in tasks]
    results = [future.result(timeout=30) for future in futures]

    (start_1, end_1), (start_2, end_2) = (load(tracking, r.outputs[0]) for r in results)
    assert max(start_1, start_2) < min(end_1, end_2)  # the two intervals overlap


def test_a_failing_step_is_retried_with_backoff(
    executor: LocalExecutor, tracking: TrackingClient, tmp_path: Path
) -> None:
    counter = str(tmp_path / "counter")
    task = make_task(tracking, flaky, constants={"path": counter, "failures": 2}, retries=2)

    result = executor.submit(task).result(timeout=30)

    assert result.status == "finished", result.traceback
    assert result.attempts == 3
    assert load(tracking, result.outputs[0]) == 3
    assert "attempt 1" in result.stdout
    assert "attempt 2" in result.stdout


def test_a_step_out_of_retries_fails_with_its_error(
    executor: LocalExecutor, tracking: TrackingClient, tmp_path: Path
) -> None:
    counter = str(tmp_path / "counter")
    task = make_task(tracking, flaky, constants={"path": counter, "failures": 5}, retries=1)

    result = executor.submit(task).result(timeout=30)

    assert result.status == "failed"
    assert result.attempts == 2
    assert result.error_type == "RuntimeError"
    assert result.error_message == "Step 'flaky' failed: flaky failure 2"
    assert result.traceback is not None
    assert "in flaky" in result.traceback


def test_a_step_past_its_timeout_is_killed_and_its_worker_replaced(
    tracking: TrackingClient,
) -> None:
    with LocalExecutor(max_workers=1) as pool:
        before = load(tracking, pool.submit(make_task(tracking, pid)).result(30).outputs[0])

        result = pool.submit(
            make_task(tracking, sleepy, constants={"seconds": 60}, timeout=0.5)
        ).result(timeout=30)

        assert result.status == "timeout"
        assert result.error_type == "TimeoutError"
        assert result.error_message is not None
        assert "'sleepy'" in result.error_message
        assert "0.5 s" in result.error_message
        assert result.attempts == 1
        after = pool.submit(make_task(tracking, pid)).result(timeout=30)
        assert after.status == "finished"
        assert load(tracking, after.outputs[0]) != before


def test_a_worker_killed_from_outside_fails_its_step_and_is_replaced(
    executor: LocalExecutor, tracking: TrackingClient
) -> None:
    result = executor.submit(make_task(tracking, kill_myself)).result(timeout=30)

    assert result.status == "failed"
    assert result.error_type == "WorkerDied"
    assert result.error_message is not None
    assert "'kill_myself'" in result.error_message
    assert "-9, SIGKILL" in result.error_message
    after = executor.submit(make_task(tracking, pid)).result(timeout=30)
    assert after.status == "finished"


def test_shutdown_without_waiting_stops_running_and_cancels_queued_steps(
    tracking: TrackingClient,
) -> None:
    pool = LocalExecutor(max_workers=1)
    running = pool.submit(make_task(tracking, stamp, constants={"seconds": 0.05}))
    running.result(timeout=30)  # the worker is warm
    running = pool.submit(make_task(tracking, sleepy, constants={"seconds": 60}))
    queued = pool.submit(make_task(tracking, pid))
    while not running.running():
        time.sleep(0.01)

    pool.shutdown(wait=False)

    assert running.result(timeout=10).error_type == "ExecutorShutdown"
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(make_task(tracking, pid))


def test_captured_output_keeps_its_head_and_tail_within_the_limit() -> None:
    sink = _CappedText(OUTPUT_LIMIT)
    sink.write("start")
    for _ in range(3 * 1024):
        sink.write("y" * 1024)
    sink.write("end")

    text = sink.getvalue()

    assert text.startswith("start")
    assert text.endswith("end")
    assert "bytes not kept" in text
    assert len(text.encode()) < OUTPUT_LIMIT + 100


def test_create_executor_builds_the_local_one_and_rejects_unknown_names() -> None:
    executor = create_executor("local", max_workers=1)
    assert isinstance(executor, LocalExecutor)
    executor.shutdown()

    with pytest.raises(PipelineDefinitionError, match=r"\['local', 'ray'\].*'dask'"):
        create_executor("dask")
    with pytest.raises(InvalidParameter, match="max_workers"):
        create_executor("local", max_workers=0)
