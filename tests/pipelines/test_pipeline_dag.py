"""Building a pipeline's DAG, and the inputs refused before any step runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from lp_project import flows, steps

import loopml
from loopml.errors import PipelineDefinitionError, ProjectNotFound, StoreNotFound
from loopml.pipelines import Pipeline, list_pipeline_runs
from loopml.pipelines._graph import OutputRef
from loopml.pipelines._loader import load_pipeline
from loopml.tracking import get_client


def nothing_ran() -> bool:
    """No run of any kind was recorded (the store may not even exist yet)."""
    try:
        return get_client().search_runs() == [] and list_pipeline_runs() == []
    except (StoreNotFound, ProjectNotFound):
        return True  # reading creates neither: no store or no project, so no run


# -- the DAG ------------------------------------------------------------------------------


def test_a_pipeline_traces_its_steps_into_a_dag_in_call_order() -> None:
    graph = flows.chain.build(flows.chain.resolve_params({"n": 3}))

    assert list(graph.nodes) == ["load", "scale", "total", "count"]
    assert graph.nodes["load"].upstream == []
    assert graph.nodes["scale"].upstream == ["load"]
    assert graph.nodes["total"].upstream == ["scale"]
    assert graph.nodes["count"].upstream == ["load"]
    assert graph.nodes["load"].constants == {"n": 3}
    assert graph.nodes["scale"].constants == {"factor": 2}
    assert graph.nodes["scale"].inputs == {"values": OutputRef("load")}


def test_a_step_called_twice_gets_a_numbered_node() -> None:
    graph = flows.parallel.build({"seconds": 0.0})

    assert list(graph.nodes) == ["stamp", "stamp_2"]
    assert graph.nodes["stamp_2"].constants == {"seconds": 0.0, "label": "b"}
    assert all(node.upstream == [] for node in graph.nodes.values())


def test_steps_with_several_outputs_return_one_placeholder_each() -> None:
    graph = flows.round_trip.build({"n": 5, "test_rows": 2})

    describe = graph.nodes["describe"]
    assert describe.inputs["train"] == OutputRef("split", 0, "train")
    assert describe.inputs["test"] == OutputRef("split", 1, "test")
    assert describe.upstream == ["centre", "split", "to_array"]


def test_an_approval_gate_waits_for_everything_before_it_and_blocks_everything_after() -> None:
    graph = flows.gated.build({"n": 3})

    assert list(graph.nodes) == ["load", "approval", "total"]
    gate = graph.nodes["approval"]
    assert gate.kind == "gate"
    assert gate.message == "Ship the total?"
    assert gate.upstream == ["load"]
    assert graph.nodes["total"].upstream == ["approval", "load"]
    described = graph.describe()["nodes"]
    assert [node["kind"] for node in described] == ["step", "gate", "step"]


def test_the_recorded_graph_and_params_are_stored_with_the_run() -> None:
    run = flows.chain.run(params={"n": 2, "factor": "3"}, max_workers=1)

    assert run.params == {"n": 2, "factor": 3}  # text from a CLI is coerced to the type
    assert run.reference == "lp_project.flows:chain"
    assert [node["name"] for node in run.graph["nodes"]] == ["load", "scale", "total", "count"]
    assert run.executor == "local"


# -- bad definitions ---------------------------------------------------------------------


def test_a_step_called_outside_a_pipeline_is_refused_with_the_way_out() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"'load' was called outside a pipeline"):
        steps.load(3)
    assert steps.load.function(3) == [0, 1, 2]


def test_a_pipeline_called_like_a_function_says_how_to_run_it() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"chain\.run\(params="):
        flows.chain(n=3)


def test_a_cycle_is_refused_before_any_step_runs() -> None:
    @loopml.pipeline
    def cyclic() -> None:
        # Tracing makes cycles impossible with real outputs; forge a reference forward.
        first = steps.scale(OutputRef("total"))
        steps.total(first)

    with pytest.raises(PipelineDefinitionError, match=r"cycle through 'scale' and 'total'"):
        cyclic.run()
    assert nothing_ran()


def test_a_reference_to_a_step_outside_the_pipeline_is_refused() -> None:
    @loopml.pipeline
    def dangling() -> None:
        steps.total(OutputRef("elsewhere"))

    with pytest.raises(PipelineDefinitionError, match=r"'elsewhere', which is not part"):
        dangling.run()
    assert nothing_ran()


def test_a_pipeline_without_steps_is_refused() -> None:
    @loopml.pipeline
    def empty() -> None:
        return None

    with pytest.raises(PipelineDefinitionError, match=r"calls no step"):
        empty.run()
    assert nothing_ran()


def test_a_step_output_cannot_be_branched_on_while_building() -> None:
    @loopml.pipeline
    def branching() -> None:
        if steps.load(3):
            steps.count(steps.load(3))

    with pytest.raises(PipelineDefinitionError, match=r"decide inside a step"):
        branching.run()
    assert nothing_ran()


def test_unpacking_a_single_output_names_the_fix() -> None:
    @loopml.pipeline
    def unpacking() -> None:
        _a, _b = steps.load(3)

    with pytest.raises(PipelineDefinitionError, match=r"outputs=\('a', 'b'\)"):
        unpacking.run()


def test_a_constant_that_is_not_json_is_refused_naming_step_and_argument() -> None:
    @loopml.pipeline
    def odd_constant() -> None:
        steps.count(values={1, 2})

    with pytest.raises(
        PipelineDefinitionError, match=r"Argument 'values' of step 'count' is a set"
    ):
        odd_constant.run()
    assert nothing_ran()


def test_wrong_step_arguments_are_refused_naming_the_step() -> None:
    @loopml.pipeline
    def wrong_arguments() -> None:
        steps.load(3, 4)

    with pytest.raises(PipelineDefinitionError, match=r"Step 'load'"):
        wrong_arguments.run()
    assert nothing_ran()


# -- bad parameters ----------------------------------------------------------------------


def test_a_missing_parameter_is_named_with_its_type() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"needs parameter 'n' \(int\)"):
        flows.typed.run()
    assert nothing_ran()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": "three"}, r"Parameter 'n' of pipeline 'typed' must be int; got str 'three'"),
        ({"n": 1.5}, r"Parameter 'n' of pipeline 'typed' must be int; got float 1.5"),
        ({"n": True}, r"Parameter 'n' of pipeline 'typed' must be int; got bool True"),
        ({"n": 1, "ratio": "half"}, r"Parameter 'ratio' of pipeline 'typed' must be float"),
        ({"n": 1, "label": 7}, r"Parameter 'label' of pipeline 'typed' must be str; got int 7"),
    ],
)
def test_a_parameter_of_the_wrong_type_is_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineDefinitionError, match=message):
        flows.typed.run(params=params)
    assert nothing_ran()


def test_an_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"no parameter\(s\) \['m'\].*'n', 'label'"):
        flows.typed.run(params={"n": 1, "m": 2})
    assert nothing_ran()


def test_parameters_given_as_text_are_coerced_to_their_annotated_types() -> None:
    resolved = flows.typed.resolve_params({"n": "3", "ratio": "0.25"})
    assert resolved == {"n": 3, "label": "x", "ratio": 0.25}


# -- bad references -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("lp_project.nowhere:chain", r"Cannot import module 'lp_project.nowhere'"),
        ("lp_project.flows:nothing", r"has no 'nothing'"),
        ("lp_project.steps:load", r"is a Step, not a pipeline"),
        ("lp_project.flows", r"is not a pipeline reference; use MODULE:PIPELINE"),
        ("missing/file.py:chain", r"No pipeline file missing/file.py"),
    ],
)
def test_an_unknown_module_or_pipeline_is_a_clear_error(reference: str, message: str) -> None:
    with pytest.raises(PipelineDefinitionError, match=message):
        load_pipeline(reference)


def test_a_known_reference_loads_the_pipeline() -> None:
    loaded = load_pipeline("lp_project.flows:chain")
    assert loaded is flows.chain
    assert isinstance(loaded, Pipeline)


def test_a_pipeline_file_that_fails_to_import_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "broken_flow.py"
    broken.write_text("import loopml\nraise RuntimeError('no config')\n", encoding="utf-8")
    try:
        with pytest.raises(PipelineDefinitionError, match=r"RuntimeError: no config"):
            load_pipeline(f"{broken}:flow")
    finally:
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


# -- executors ----------------------------------------------------------------------------


def test_ray_requested_but_not_installed_fails_before_any_step_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError

    with pytest.raises(PipelineDefinitionError, match=r"needs Ray: pip install 'loopml\[ray\]'"):
        flows.chain.run(executor="ray")
    assert nothing_ran()


def test_an_unknown_executor_is_refused_before_any_step_runs() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"Unknown executor 'dask'"):
        flows.chain.run(executor="dask")
    assert nothing_ran()
