"""The step cache: a step is reused when its code, parameters and input data are unchanged.

Change nothing → every step is a hit, pointing at the execution it reuses. Change a
step's code, a parameter or the data a step reads → a miss for the steps that see the
change and for those downstream whose inputs then differ; every other step is a hit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cloudpickle
import pytest
from lp_project import flows

import loopml
from conftest import Marks
from identity_support import act_as
from loopml.errors import MaterializerError
from loopml.pipelines import Pipeline, PipelineRun
from loopml.pipelines._loader import load_pipeline
from loopml.store import Node
from loopml.tracking import get_client


def statuses(run: PipelineRun) -> dict[str, str]:
    return {name: record.status for name, record in run.steps.items()}


# -- change nothing ------------------------------------------------------------------------


def test_an_unchanged_rerun_reuses_every_step_from_the_first_run(marks: Marks) -> None:
    first = flows.chain.run(params={"n": 4}, max_workers=2)
    second = flows.chain.run(params={"n": 4}, max_workers=2)

    assert second.status == "finished"
    assert statuses(second) == dict.fromkeys(("load", "scale", "total", "count"), "cached")
    for name, record in second.steps.items():
        original = first.steps[name]
        assert record.cached_from == original.run_id
        assert record.run_id != original.run_id  # a child run of its own, saying so
        assert record.outputs == original.outputs
        assert record.cache_key == original.cache_key
        assert record.attempts == 0
        child = loopml.get_run(record.run_id or "")
        assert child.parent_id == second.id
        assert child.status == "finished"
        assert child.tags["loopml.cached_from"] == original.run_id
    assert marks.counts() == {"load": 1, "scale": 1, "total": 1, "count": 1}
    assert second.output("total") == first.output("total")


def test_a_cache_hit_of_a_cache_hit_points_at_the_original_execution() -> None:
    first = flows.chain.run(params={"n": 3}, max_workers=2)
    flows.chain.run(params={"n": 3}, max_workers=2)
    third = flows.chain.run(params={"n": 3}, max_workers=2)

    assert {n: r.cached_from for n, r in third.steps.items()} == {
        n: r.run_id for n, r in first.steps.items()
    }


def test_cached_steps_are_reported_as_cached_events() -> None:
    flows.chain.run(params={"n": 3}, max_workers=2)
    events: list[loopml.pipelines.Event] = []
    flows.chain.run(params={"n": 3}, max_workers=2, on_event=events.append)

    assert {(e.step, e.status) for e in events} == {
        (name, "cached") for name in ("load", "scale", "total", "count")
    }


def test_a_deleted_run_is_neither_reused_nor_listed(marks: Marks) -> None:
    first = flows.chain.run(params={"n": 5}, max_workers=2)
    loopml.delete_run(first.id)  # its step runs go with it

    again = flows.chain.run(params={"n": 5}, max_workers=2)

    assert set(statuses(again).values()) == {"finished"}
    assert marks.counts() == {"load": 2, "scale": 2, "total": 2, "count": 2}
    listed = [run.id for run in loopml.pipelines.list_pipeline_runs()]
    assert again.id in listed
    assert first.id not in listed


def test_cache_false_runs_every_step_again(marks: Marks) -> None:
    flows.chain.run(params={"n": 3}, max_workers=2)
    again = flows.chain.run(params={"n": 3}, max_workers=2, cache=False)

    assert set(statuses(again).values()) == {"finished"}
    assert all(record.cached_from is None for record in again.steps.values())
    assert marks.counts() == {"load": 2, "scale": 2, "total": 2, "count": 2}


# -- change a parameter ------------------------------------------------------------------


def test_a_changed_parameter_misses_from_the_first_step_that_uses_it(marks: Marks) -> None:
    flows.chain.run(params={"n": 4, "factor": 2}, max_workers=2)
    changed = flows.chain.run(params={"n": 4, "factor": 5}, max_workers=2)

    assert statuses(changed) == {
        "load": "cached",
        "scale": "finished",
        "total": "finished",
        "count": "cached",
    }
    assert changed.output("total") == 5 * sum(range(4))
    assert marks.counts() == {"load": 1, "scale": 2, "total": 2, "count": 1}


def test_a_parameter_of_the_first_step_misses_everything() -> None:
    flows.chain.run(params={"n": 4}, max_workers=2)
    changed = flows.chain.run(params={"n": 5}, max_workers=2)

    assert set(statuses(changed).values()) == {"finished"}


def test_going_back_to_an_earlier_parameter_hits_the_earlier_execution() -> None:
    first = flows.chain.run(params={"n": 4, "factor": 2}, max_workers=2)
    flows.chain.run(params={"n": 4, "factor": 5}, max_workers=2)
    back = flows.chain.run(params={"n": 4, "factor": 2}, max_workers=2)

    assert back.steps["scale"].cached_from == first.steps["scale"].run_id
    assert set(statuses(back).values()) == {"cached"}


# -- change the code ---------------------------------------------------------------------

FLOW = '''\
"""A pipeline file, as a user would write and then edit it."""

import loopml


@loopml.step
def load(n: int) -> list[int]:
    return list(range(n))


@loopml.step
def scale(values: list[int], factor: int = 2) -> list[int]:
{scale}


@loopml.step
def total(values: list[int]) -> int:
    return sum(values)


@loopml.step
def count(values: list[int]) -> int:
    return len(values)


@loopml.pipeline
def flow(n: int = 4, factor: int = 2) -> None:
    values = load(n)
    total(scale(values, factor=factor))
    count(values)
'''

ORIGINAL = "    return [v * factor for v in values]"


@pytest.fixture
def flow_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], Pipeline]]:
    """Write a version of a pipeline file (own folder, so a fresh module) and load it."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader adds each file's folder
    loaded: list[str] = []

    def write(version: str, scale: str) -> Pipeline:
        folder = tmp_path / version
        folder.mkdir()
        path = folder / "flow.py"
        path.write_text(FLOW.format(scale=scale), encoding="utf-8")
        before = set(sys.modules)
        pipeline = load_pipeline(f"{path}:flow")
        loaded.extend(set(sys.modules) - before)
        return pipeline

    yield write
    for name in loaded:
        module = sys.modules.pop(name, None)
        if module is not None and name.startswith("loopml_pipeline_"):
            cloudpickle.unregister_pickle_by_value(module)


def test_changed_step_code_misses_for_that_step_and_its_dependents_only(
    flow_version: Callable[[str, str], Pipeline],
) -> None:
    first = flow_version("v1", ORIGINAL).run(max_workers=2)
    second = flow_version("v2", "    return [v * factor + 1 for v in values]").run(max_workers=2)

    assert statuses(second) == {
        "load": "cached",
        "scale": "finished",
        "total": "finished",
        "count": "cached",
    }
    assert second.steps["load"].cached_from == first.steps["load"].run_id
    assert second.output("total") == first.output("total") + 4


def test_changed_code_with_the_same_output_lets_dependents_hit(
    flow_version: Callable[[str, str], Pipeline],
) -> None:
    first = flow_version("v1", ORIGINAL).run(max_workers=2)
    second = flow_version("v2", "    return [factor * v for v in values]").run(max_workers=2)

    assert statuses(second)["scale"] == "finished"
    assert second.steps["scale"].outputs[0].content_hash == (
        first.steps["scale"].outputs[0].content_hash
    )
    assert statuses(second)["total"] == "cached"  # its input's content is unchanged


def test_comments_and_docstrings_are_not_code_changes(
    flow_version: Callable[[str, str], Pipeline],
) -> None:
    flow_version("v1", ORIGINAL).run(max_workers=2)
    edited = '    """Multiply."""\n    # scale each value\n' + ORIGINAL.replace("*", " * ")
    second = flow_version("v2", edited).run(max_workers=2)

    assert set(statuses(second).values()) == {"cached"}


# -- change the input data -------------------------------------------------------------------


@pytest.mark.slow
def test_changed_dataset_data_misses_for_the_steps_that_read_it(marks: Marks) -> None:
    import pandas as pd

    v1 = loopml.data.register("sales", pd.DataFrame({"amount": [1.0, 2.0, 3.0]}))
    first = flows.from_dataset.run(max_workers=1)
    same = flows.from_dataset.run(max_workers=1)
    v2 = loopml.data.register("sales", pd.DataFrame({"amount": [1.0, 2.0, 30.0]}))
    changed = flows.from_dataset.run(max_workers=1)

    assert first.output("dataset_total") == 6.0
    assert first.steps["resolve_dataset"].outputs[0].content_hash == v1.content_hash
    # The resolving step never caches (cache=False); the data's hash decides the rest.
    assert statuses(same) == {"resolve_dataset": "finished", "dataset_total": "cached"}
    assert statuses(changed) == {"resolve_dataset": "finished", "dataset_total": "finished"}
    assert changed.steps["resolve_dataset"].outputs[0].content_hash == v2.content_hash
    assert changed.output("dataset_total") == 33.0
    assert marks.counts() == {"resolve_dataset": 3, "dataset_total": 2}

    edges = get_client().lineage(
        Node("run", changed.steps["dataset_total"].run_id or ""), "upstream"
    )
    assert Node("dataset_version", str(v2.id)) in {edge.src for edge in edges}


# -- whose values a cache hit may load ----------------------------------------------------


def test_a_teammates_pickled_output_is_never_reused_from_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12 (item 7's pattern in the step cache): a cached output stored with
    cloudpickle runs its writer's code when loaded, so a cache hit reuses it only
    from a step run of the same identity; anyone else's step simply runs again.
    Data values (Parquet, NumPy, JSON) are still shared."""
    act_as(monkeypatch, "alice")
    first = flows.round_trip.run(params={"n": 10}, max_workers=2)
    assert first.steps["centre"].outputs[0].executable

    act_as(monkeypatch, "bob")
    second = flows.round_trip.run(params={"n": 10}, max_workers=2)
    assert second.status == "finished"
    assert statuses(second)["centre"] == "finished"  # alice's pickle was not loaded
    assert statuses(second)["make_frame"] == "cached"
    assert second.steps["centre"].cached_from is None
    with pytest.raises(MaterializerError, match="trust_executable=True"):
        first.output("centre")
    assert first.output("centre", trust_executable=True) == second.output("centre")

    act_as(monkeypatch, "alice")
    third = flows.round_trip.run(params={"n": 10}, max_workers=2)
    assert statuses(third)["centre"] == "cached"
    assert third.steps["centre"].cached_from == first.steps["centre"].run_id
