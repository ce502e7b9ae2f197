"""Running pipelines: the records a run leaves, parallel steps, failures, retries, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from lp_project import flows, steps

import loopml
from conftest import Marks
from loopml.errors import InvalidParameter, StepFailed
from loopml.pipelines import Event, PipelineRun, get_pipeline_run, list_pipeline_runs, resume
from loopml.store import Node
from loopml.tracking import get_client


@pytest.fixture
def chain_run(fluent_store: str) -> PipelineRun:
    """One run of ``chain`` on the store back-end under test."""
    return flows.chain.run(params={"n": 4, "factor": 3}, max_workers=2)


# -- the lifecycle, on every store back-end --------------------------------------------


def test_a_pipeline_run_is_a_run_of_kind_pipeline_with_its_params(chain_run: PipelineRun) -> None:
    run = loopml.get_run(chain_run.id)

    assert chain_run.status == "finished"
    assert run.kind == "pipeline"
    assert run.status == "finished"
    assert run.name == "chain"
    assert dict(run.params) == {"n": "4", "factor": "3"}
    assert chain_run.output("total") == sum(v * 3 for v in range(4))
    assert chain_run.output("count") == 4
    assert [r.id for r in list_pipeline_runs()] == [chain_run.id]
    assert get_pipeline_run(chain_run.id[:8]).id == chain_run.id


def test_each_step_is_a_finished_child_run_with_its_params_and_resources(
    chain_run: PipelineRun,
) -> None:
    for name, record in chain_run.steps.items():
        assert record.status == "finished", name
        assert record.attempts == 1
        assert record.cached_from is None
        assert record.duration_seconds is not None and record.duration_seconds >= 0
        child = loopml.get_run(record.run_id or "")
        assert child.kind == "step"
        assert child.name == name
        assert child.parent_id == chain_run.id
        assert child.status == "finished"
        assert child.resources is not None
        assert child.resources["cpu_seconds"] >= 0
        assert child.resources["peak_memory_bytes"] > 0
        assert child.resources["wall_seconds"] >= 0
        assert child.duration_seconds is not None
    scale = loopml.get_run(chain_run.steps["scale"].run_id or "")
    assert dict(scale.params) == {"factor": "3"}  # constants, not the input values
    assert dict(loopml.get_run(chain_run.steps["load"].run_id or "").params) == {"n": "4"}


def test_each_step_run_names_its_pipeline_run_and_step_and_shares_its_context(
    chain_run: PipelineRun,
) -> None:
    pipeline_context = dict(loopml.get_run(chain_run.id).context)
    pipeline_context.pop("captured_at")
    for name, record in chain_run.steps.items():
        child = loopml.get_run(record.run_id or "")
        assert child.tags["loopml.pipeline.run_id"] == chain_run.id
        assert child.tags["loopml.pipeline.name"] == "chain"
        assert child.tags["loopml.pipeline.step"] == name
        context = dict(child.context)
        context.pop("captured_at")
        assert context == pipeline_context, name


def test_metrics_logged_inside_a_step_belong_to_its_child_run(chain_run: PipelineRun) -> None:
    scale = loopml.get_run(chain_run.steps["scale"].run_id or "")
    assert scale.metrics == {"count": 4.0, "factor": 3.0}
    assert loopml.get_run(chain_run.id).metrics == {}


def test_a_steps_stdout_and_stderr_are_kept_as_artifacts(
    chain_run: PipelineRun, tmp_path: Path
) -> None:
    client = get_client()
    child = chain_run.steps["scale"].run_id or ""
    paths = {artifact.path for artifact in loopml.get_run(child).artifacts}
    assert {"logs/stdout.txt", "logs/stderr.txt"} <= paths

    stdout = client.download_artifact(child, "logs/stdout.txt", tmp_path / "out.txt")
    stderr = client.download_artifact(child, "logs/stderr.txt", tmp_path / "err.txt")
    assert stdout.read_text(encoding="utf-8") == "scaling 4 values by 3\n"
    assert stderr.read_text(encoding="utf-8") == "scale warns on stderr\n"
    silent = chain_run.steps["load"].run_id or ""
    assert not any(a.path.startswith("logs/") for a in loopml.get_run(silent).artifacts)


def test_lineage_links_each_steps_inputs_and_outputs(chain_run: PipelineRun) -> None:
    client = get_client()
    load, scale, total = (chain_run.steps[n] for n in ("load", "scale", "total"))
    load_out = Node("value", load.outputs[0].digest)
    scale_out = Node("value", scale.outputs[0].digest)
    total_out = Node("value", total.outputs[0].digest)

    upstream = {(e.src, e.dst, e.relation) for e in client.lineage(total_out, "upstream")}
    assert (Node("run", total.run_id or ""), total_out, "output") in upstream
    assert (scale_out, Node("run", total.run_id or ""), "input") in upstream
    assert (Node("run", scale.run_id or ""), scale_out, "output") in upstream
    assert (load_out, Node("run", scale.run_id or ""), "input") in upstream
    assert (Node("run", load.run_id or ""), load_out, "output") in upstream

    downstream = {e.dst for e in client.lineage(load_out, "downstream")}
    assert Node("run", chain_run.steps["count"].run_id or "") in downstream
    assert total_out in downstream


# -- events and parallelism ---------------------------------------------------------------


def test_every_status_change_is_reported_to_on_event() -> None:
    events: list[Event] = []
    run = flows.chain.run(params={"n": 2}, max_workers=1, on_event=events.append)

    seen = [(e.step, e.status) for e in events]
    for name in ("load", "scale", "total", "count"):
        assert seen.index((name, "running")) < seen.index((name, "finished"))
    assert {e.run_id for e in events} == {s.run_id for s in run.steps.values()}


def test_independent_steps_run_at_the_same_time() -> None:
    run = flows.parallel.run(params={"seconds": 1.0}, max_workers=2)

    first_start, first_end = run.output("stamp")
    second_start, second_end = run.output("stamp_2")
    # The sleeps overlapped in time: each began before the other ended.
    assert first_start < second_end
    assert second_start < first_end


# -- failures and resume ------------------------------------------------------------------


def test_a_step_that_raises_fails_the_run_with_its_traceback(
    marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LP_PROJECT_FAIL", "1")
    with pytest.raises(StepFailed) as raised:
        flows.failing.run(params={"n": 3}, max_workers=1)

    error = raised.value
    assert error.step == "fragile"
    assert "ValueError: fragile refuses 3 values" in str(error)
    assert f"loopml pipelines resume {error.run_id}" in str(error)
    run = get_pipeline_run(error.run_id)
    assert run.status == "failed"
    recorded = loopml.get_run(error.run_id)
    assert recorded.status == "failed"
    assert recorded.failure is not None
    assert recorded.failure["type"] == "ValueError"
    assert "fragile refuses 3 values" in recorded.failure["message"]
    assert ", in fragile\n" in recorded.failure["traceback"]
    assert recorded.failure["traceback"].endswith("ValueError: fragile refuses 3 values\n")

    fragile = run.steps["fragile"]
    assert fragile.status == "failed"
    assert fragile.outputs == ()
    assert fragile.error is not None and "fragile refuses 3 values" in fragile.error
    assert loopml.get_run(fragile.run_id or "").status == "failed"
    # Finished steps keep their results.
    assert run.steps["load"].status == "finished"
    assert run.output("load") == [0, 1, 2]


def test_of_two_steps_failing_side_by_side_the_run_reports_the_one_traced_first(
    marks: Marks,
) -> None:
    with pytest.raises(StepFailed) as raised:
        flows.failing_twice.run(params={"seconds": 1.0}, max_workers=2)

    assert raised.value.step == "late_failure"  # though early_failure failed a second sooner
    assert "late_failure gave up" in str(raised.value)
    run = get_pipeline_run(raised.value.run_id)
    assert run.steps["late_failure"].status == run.steps["early_failure"].status == "failed"


def test_resume_after_an_exception_reuses_finished_steps(
    marks: Marks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LP_PROJECT_FAIL", "1")
    with pytest.raises(StepFailed) as raised:
        flows.failing.run(params={"n": 3}, max_workers=1)
    run_id = raised.value.run_id
    before = get_pipeline_run(run_id)
    monkeypatch.delenv("LP_PROJECT_FAIL")  # "fix" the step

    events: list[Event] = []
    resumed = resume(run_id, max_workers=1, on_event=events.append)

    assert resumed.id == run_id
    assert resumed.status == "finished"
    assert loopml.get_run(run_id).status == "finished"
    assert resumed.output("fragile") == 2
    assert resumed.steps["load"].run_id == before.steps["load"].run_id
    assert resumed.steps["load"].outputs == before.steps["load"].outputs
    assert marks["load"] == 1  # not run again
    assert marks["fragile"] == 2  # failed once, then ran again
    assert ("load", "finished", "reused by resume") in {
        (e.step, e.status, e.detail) for e in events
    }


def test_a_failed_steps_traceback_names_its_file_and_source_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LP_PROJECT_FAIL", "1")
    with pytest.raises(StepFailed) as raised:
        flows.failing.run(params={"n": 3}, max_workers=1)

    failure = loopml.get_run(raised.value.run_id).failure
    assert failure is not None
    assert f'File "{steps.__file__}"' in failure["traceback"]
    assert 'raise ValueError(f"fragile refuses' in failure["traceback"]


def test_a_finished_run_cannot_be_resumed() -> None:
    run = flows.chain.run(params={"n": 1}, max_workers=1)
    with pytest.raises(InvalidParameter, match=r"is finished; only failed, interrupted"):
        resume(run.id)


def test_a_step_that_fails_twice_then_succeeds_is_retried(tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    run = flows.retrying.run(params={"counter": str(counter), "failures": 2}, max_workers=1)

    record = run.steps["flaky"]
    assert run.status == "finished"
    assert record.status == "finished"
    assert record.attempts == 3
    assert run.output("flaky") == 3


def test_a_step_that_fails_more_often_than_its_retries_fails_the_run(tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    with pytest.raises(StepFailed, match=r"RuntimeError: flaky failure 3") as raised:
        flows.retrying.run(params={"counter": str(counter), "failures": 5}, max_workers=1)

    record = get_pipeline_run(raised.value.run_id).steps["flaky"]
    assert record.status == "failed"
    assert record.attempts == 3
    assert counter.read_text() == "3"


def test_a_step_that_outlives_its_timeout_fails_with_a_timeout_error() -> None:
    with pytest.raises(StepFailed, match=r"TimeoutError") as raised:
        flows.timing_out.run(params={"seconds": 30.0}, max_workers=1)

    assert "exceeded its timeout of 1 s" in str(raised.value)
    run = get_pipeline_run(raised.value.run_id)
    assert run.status == "failed"
    assert run.steps["sleeper"].status == "timeout"
    failure = loopml.get_run(run.id).failure
    assert failure is not None and failure["type"] == "TimeoutError"


# -- values ---------------------------------------------------------------------------------


def test_a_step_returning_a_value_no_materializer_can_store_fails_naming_its_type() -> None:
    with pytest.raises(StepFailed, match=r"type '_thread.lock'|_thread\.lock") as raised:
        flows.unpicklable.run(max_workers=1)

    message = str(raised.value)
    assert "Step 'lock'" in message
    assert "MaterializerError" in message
    assert get_pipeline_run(raised.value.run_id).steps["lock"].status == "failed"


def test_a_step_returning_a_generator_fails_naming_its_type() -> None:
    with pytest.raises(StepFailed, match=r"generator") as raised:
        flows.unstorable.run(params={"n": 3}, max_workers=1)

    assert "Step 'unstorable'" in str(raised.value)
    assert get_pipeline_run(raised.value.run_id).status == "failed"


def test_values_round_trip_through_the_artifact_store_between_steps() -> None:
    import numpy as np
    import pandas as pd

    run = flows.round_trip.run(params={"n": 10, "test_rows": 3}, max_workers=2)

    assert run.output("describe") == {
        "train": ["DataFrame", 7],
        "test": ["DataFrame", 3],
        "array": ["ndarray", "float64", 67.5],
        "point": ["Point", 6.75, 13.5],
    }
    frame = run.output("make_frame")
    assert isinstance(frame, pd.DataFrame)
    pd.testing.assert_frame_equal(run.output("split", 1), frame.iloc[-3:].reset_index(drop=True))
    np.testing.assert_array_equal(run.output("to_array"), frame["amount"].to_numpy())
    assert run.output("centre") == steps.Point(6.75, 13.5)
    materializers = {name: [v.materializer for v in s.outputs] for name, s in run.steps.items()}
    assert materializers["split"] == ["pandas.parquet", "pandas.parquet"]
    assert materializers["to_array"] == ["numpy.npy"]
    assert materializers["describe"] == ["json"]
    assert materializers["centre"] == ["cloudpickle"]
    assert run.steps["centre"].outputs[0].executable
