"""Run housekeeping through the SDK on every back-end: delete and restore (children
follow), mark failed, remove tags, read environments, search views, name lengths."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

import loopml.tracking
from loopml.errors import (
    EnvironmentNotCaptured,
    InvalidParameter,
    LoopmlWarning,
    ReservedKeyError,
    RunNotFound,
    RunStateError,
    TagNotFound,
)
from loopml.store import tables
from loopml.tracking import TrackingClient


def _run(client: TrackingClient, project: str = "p", **kwargs: object) -> str:
    run_id = client.create_run(project=project, capture_context=False, **kwargs)  # type: ignore[arg-type]
    client.end_run(run_id)
    return run_id


def _lose(client: TrackingClient, run_id: str) -> None:
    """Make a running run look like its process died: no heartbeat for a long time."""
    client.writer.untrack(run_id)
    with client.store.write() as conn:
        conn.execute(update(tables.RUN).where(tables.RUN.c.id == run_id).values(heartbeat_at=0))


def _ids(client: TrackingClient, **kwargs: object) -> set[str]:
    runs = client.search_runs("p", **kwargs)  # type: ignore[call-overload]
    return {run.id for run in runs}


def test_delete_and_restore_a_run_with_its_children(client: TrackingClient) -> None:
    parent = _run(client, name="sweep")
    trials = [_run(client, name=f"trial-{i}", parent_id=parent) for i in range(2)]
    grandchild = _run(client, parent_id=trials[0])
    other = _run(client)

    deleted = client.delete_run(parent)
    assert deleted[0] == parent and set(deleted) == {parent, *trials, grandchild}
    assert _ids(client) == {other}
    assert _ids(client, view="deleted") == set(deleted)
    assert _ids(client, view="all") == {other, *deleted}
    shown = client.get_run(trials[1])
    assert shown.deleted and shown.deleted_at is not None and shown.status == "finished"

    restored = client.restore_runs([parent, trials[0]])  # the trial comes back with it
    assert restored[0] == parent and set(restored) == set(deleted)
    assert _ids(client) == {parent, *trials, grandchild, other}
    assert client.get_run(parent).deleted_at is None


def test_a_child_deleted_on_its_own_stays_deleted_when_its_parent_comes_back(
    client: TrackingClient,
) -> None:
    parent = _run(client)
    early, late = _run(client, parent_id=parent), _run(client, parent_id=parent)
    client.delete_run(early)
    client.delete_run(parent)
    with pytest.raises(RunStateError, match=f"restore {parent}"):
        client.restore_run(late)  # its parent is deleted: restore that instead
    assert client.restore_run(parent) == [parent, late]
    assert client.get_run(early).deleted
    assert client.restore_run(early) == [early]


def test_deleting_twice_or_restoring_a_live_run_is_a_clear_error(client: TrackingClient) -> None:
    run_id = _run(client)
    with pytest.raises(RunStateError, match="not deleted"):
        client.restore_run(run_id)
    client.delete_run(run_id)
    with pytest.raises(RunStateError, match="already deleted"):
        client.delete_run(run_id)
    with pytest.raises(RunNotFound):
        client.delete_run("f" * 32)
    with pytest.raises(RunNotFound):
        client.restore_run("f" * 32)


def test_delete_runs_is_all_or_nothing(client: TrackingClient) -> None:
    first, second = _run(client), _run(client)
    with pytest.raises(RunNotFound):
        client.delete_runs([first, "0" * 32, second])
    assert _ids(client) == {first, second}
    assert set(client.delete_runs([first, second, first])) == {first, second}


def test_a_running_run_is_deleted_only_when_forced(client: TrackingClient) -> None:
    parent = _run(client)
    child = client.create_run(parent_id=parent, capture_context=False)  # still running
    with pytest.raises(RunStateError, match=f"Run {child} \\(part of run {parent}\\) is still"):
        client.delete_run(parent)
    assert _ids(client) == {parent, child}
    assert set(client.delete_run(parent, force=True)) == {parent, child}


def test_a_lost_run_can_be_deleted_without_force(client: TrackingClient) -> None:
    run_id = client.create_run(project="p", capture_context=False)
    _lose(client, run_id)
    assert client.get_run(run_id).status == "lost"
    assert client.delete_run(run_id) == [run_id]


def test_mark_failed_ends_a_running_run_with_the_reason(client: TrackingClient) -> None:
    run_id = client.create_run(project="p", capture_context=False)
    _lose(client, run_id)
    client.mark_run_failed(run_id, "node preempted")
    run = client.get_run(run_id)
    assert run.status == "failed" and run.end_time is not None
    assert run.failure is not None
    assert run.failure["message"] == "node preempted"
    assert run.failure["type"] == "loopml.MarkedFailed"
    assert _ids(client, filter="status = 'failed'") == {run_id}

    with pytest.raises(RunStateError, match="is failed, not running"):
        client.mark_run_failed(run_id)
    finished = _run(client)
    with pytest.raises(RunStateError, match="is finished, not running"):
        client.mark_run_failed(finished, "too late")
    assert client.get_run(finished).failure is None
    with pytest.raises(RunNotFound):
        client.mark_run_failed("a" * 32)


def test_mark_failed_without_a_reason_says_who(client: TrackingClient) -> None:
    run_id = client.create_run(project="p", capture_context=False)
    client.mark_run_failed(run_id)
    failure = client.get_run(run_id).failure
    assert failure is not None and failure["message"].startswith("marked failed by ")


def test_delete_tag_keeps_the_json_copy_in_step(client: TrackingClient) -> None:
    run_id = _run(client, tags={"team": "vision", "stage": "tuned", "keep": "1"})
    client.delete_tag(run_id, "team")
    assert dict(client.get_run(run_id).tags) == {"stage": "tuned", "keep": "1"}
    with pytest.warns(LoopmlWarning, match="unknown filter key tags.team"):
        assert _ids(client, filter="tags.team = 'vision'") == set()  # no run has it now
    with pytest.raises(TagNotFound, match="no tag 'team'; its tags are: keep, stage"):
        client.delete_tag(run_id, "team")
    with pytest.raises(TagNotFound, match="'nope'"):
        client.delete_tags(run_id, ["stage", "nope"])
    assert dict(client.get_run(run_id).tags) == {"stage": "tuned", "keep": "1"}  # none removed
    client.delete_tags(run_id, ["stage", "keep"])
    run = client.get_run(run_id)
    assert dict(run.tags) == {}
    with client.store.read() as conn:
        stored = conn.execute(
            select(tables.RUN.c.tags_json).where(tables.RUN.c.id == run_id)
        ).scalar()
    assert stored == "{}"


def test_reserved_tags_cannot_be_removed(client: TrackingClient) -> None:
    from loopml.tracking._reserved import set_loopml_tags

    run_id = _run(client)
    set_loopml_tags(client, run_id, {"loopml.cached_from": "x"})
    with pytest.raises(ReservedKeyError):
        client.delete_tag(run_id, "loopml.cached_from")
    with pytest.raises(ReservedKeyError):
        client.delete_tag(run_id, "LOOPML.cached_from")
    assert client.get_run(run_id).tags == {"loopml.cached_from": "x"}
    with pytest.raises(RunNotFound):
        client.delete_tag("b" * 32, "team")
    with pytest.raises(InvalidParameter, match="list of keys"):
        client.delete_tags(run_id, "team")


def test_the_captured_environment_reads_back(client: TrackingClient) -> None:
    captured = client.create_run(project="p")
    packages = client.get_environment(captured)
    assert packages["sqlalchemy"] and list(packages) == sorted(packages)
    bare = _run(client)
    with pytest.raises(EnvironmentNotCaptured, match=f"Run {bare} has no captured environment"):
        client.get_environment(bare)
    with pytest.raises(RunNotFound):
        client.get_environment("c" * 32)


def test_search_across_projects(client: TrackingClient) -> None:
    mine, theirs = _run(client, "p"), _run(client, "q")
    client.delete_run(_run(client, "q"))
    found = client.search_runs(all_projects=True)
    assert {(run.project, run.id) for run in found} == {("p", mine), ("q", theirs)}
    assert len(client.search_runs(all_projects=True, view="all")) == 3
    with pytest.raises(InvalidParameter, match="not both"):
        client.search_runs("p", all_projects=True)
    with pytest.raises(InvalidParameter, match="'view' parameter"):
        client.search_runs("p", view="gone")  # type: ignore[call-overload]


def test_project_summaries_count_what_each_project_holds(client: TrackingClient) -> None:
    _run(client, "p")
    _run(client, "p")
    client.delete_run(_run(client, "p"))
    _run(client, "q")
    summaries = {s.name: s for s in client.project_summaries()}
    assert (summaries["p"].runs, summaries["p"].deleted_runs) == (2, 1)
    assert (summaries["q"].runs, summaries["q"].deleted_runs) == (1, 0)
    assert summaries["p"].datasets == summaries["p"].models == summaries["p"].endpoints == 0
    assert summaries["p"].last_activity is not None


def test_project_summaries_skip_a_dataset_whose_versions_are_all_deleted(
    client: TrackingClient,
) -> None:
    import pandas as pd

    from loopml.data import DataClient

    data = DataClient(client.store, client.artifacts)
    data.register("kept", pd.DataFrame({"a": [1]}), project="p")
    data.register("gone", pd.DataFrame({"a": [1]}), project="p")
    data.register("gone", pd.DataFrame({"a": [2]}), project="p")
    assert {s.name: s for s in client.project_summaries()}["p"].datasets == 2
    data.delete("gone:1", project="p")
    assert {s.name: s for s in client.project_summaries()}["p"].datasets == 2
    data.delete("gone:2", project="p")
    assert {s.name: s for s in client.project_summaries()}["p"].datasets == 1


def test_restore_runs_takes_a_child_and_its_parent_in_any_order(client: TrackingClient) -> None:
    parent = _run(client)
    child = _run(client, parent_id=parent)
    alone = _run(client, parent_id=parent)
    grandchild = _run(client, parent_id=alone)
    client.delete_run(alone)  # on its own, before its parent
    client.delete_run(parent)

    restored = client.restore_runs([grandchild, alone, child, parent])
    assert restored[0] == parent and set(restored) == {parent, child, alone, grandchild}
    assert _ids(client) == {parent, child, alone, grandchild}


def test_a_step_run_is_deleted_only_with_its_pipeline_run(
    client: TrackingClient, fluent_store: str
) -> None:
    import sys
    from pathlib import Path

    project = str(Path(__file__).parents[1] / "pipelines" / "project")
    if project not in sys.path:
        sys.path.insert(0, project)
    from lp_project import flows

    done = flows.chain.run(params={"n": 3}, max_workers=1)
    step = done.steps["load"].run_id
    assert step is not None
    with pytest.raises(RunStateError, match=f"pipeline run {done.id}.*Delete pipeline run"):
        client.delete_run(step)
    with pytest.raises(RunStateError, match=f"pipeline run {done.id}"):
        client.delete_runs([step, _run(client)])
    assert not client.get_run(step).deleted
    deleted = client.delete_runs([step, done.id])  # with its pipeline run, it may go
    assert set(deleted) >= {step, done.id}
    assert client.get_run(step).deleted


def test_names_and_keys_longer_than_the_column_are_refused_up_front(
    client: TrackingClient,
) -> None:
    with pytest.raises(InvalidParameter, match="'name' parameter of a run must be at most 250"):
        client.create_run(project="p", name="n" * 251, capture_context=False)
    with pytest.raises(InvalidParameter, match="at most 250"):
        client.create_run(project="p", params={"k" * 251: 1}, capture_context=False)
    with pytest.raises(InvalidParameter, match="at most 250"):
        client.create_run(project="p", tags={"k" * 251: 1}, capture_context=False)
    run_id = client.create_run(
        project="p", name="n" * 250, tags={"t" * 250: "v"}, capture_context=False
    )
    client.set_tag(run_id, "u" * 250, "v")
    client.log_param(run_id, "k" * 250, 1)
    assert client.get_run(run_id).name == "n" * 250
    with pytest.raises(InvalidParameter, match="at most 250"):
        client.set_tag(run_id, "u" * 251, "v")
    with pytest.raises(InvalidParameter, match="'name' parameter of a run must be a str"):
        client.create_run(project="p", name=3, capture_context=False)  # type: ignore[arg-type]


def test_the_fluent_api_deletes_and_restores(fluent_store: str) -> None:
    with loopml.tracking.start_run(project="p") as run:
        pass
    assert loopml.tracking.delete_run(run.id) == [run.id]
    assert loopml.tracking.search_runs("p") == []
    assert [r.id for r in loopml.tracking.search_runs("p", view="deleted")] == [run.id]
    assert loopml.tracking.restore_run(run.id) == [run.id]
    assert [r.id for r in loopml.tracking.search_runs("p")] == [run.id]


# A tree of runs, then random deletes and restores: the live view is always the model's.
_tree = st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=8)
_ops = st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=20)), max_size=8)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parents=_tree, ops=_ops)
def test_delete_and_restore_agree_with_a_model(
    client: TrackingClient, parents: list[int], ops: list[tuple[bool, int]]
) -> None:
    import uuid

    project = uuid.uuid4().hex
    ids: list[str] = []
    parent_of: dict[str, str | None] = {}
    for index, parent in enumerate(parents):
        parent_id = ids[parent % index] if index and parent % 3 else None
        run_id = _run(client, project, parent_id=parent_id)
        ids.append(run_id)
        parent_of[run_id] = parent_id
    deleted_at: dict[str, int] = {}  # run → the delete that took it
    for counter, (is_delete, pick) in enumerate(ops):
        target = ids[pick % len(ids)]
        if is_delete:
            if target in deleted_at:
                with pytest.raises(RunStateError):
                    client.delete_run(target)
                continue
            client.delete_run(target)
            stack = [target]
            while stack:
                node = stack.pop()
                if node not in deleted_at:
                    deleted_at[node] = counter
                stack.extend(r for r, p in parent_of.items() if p == node)
        else:
            parent = parent_of[target]
            if target not in deleted_at or (parent is not None and parent in deleted_at):
                with pytest.raises(RunStateError):
                    client.restore_run(target)
                continue
            client.restore_run(target)
            stamp = deleted_at.pop(target)
            stack = [target]
            while stack:
                node = stack.pop()
                for child, p in parent_of.items():
                    if p == node and deleted_at.get(child) == stamp:
                        del deleted_at[child]
                        stack.append(child)
        live = {r.id for r in client.search_runs(project, max_results=100)}
        assert live == set(ids) - set(deleted_at)
