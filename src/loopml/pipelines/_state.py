"""What the store keeps about pipeline runs: rows in, records out, cache look-ups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, select, update

from loopml.errors import RunNotFound
from loopml.pipelines._records import PipelineRun, StepRecord
from loopml.pipelines._task import StoredValue
from loopml.store import Store, now_ms, tables

__all__ = [
    "find_cached",
    "insert_pipeline_run",
    "list_pipeline_runs",
    "load_pipeline_run",
    "record_step",
    "step_outputs",
]

_run = tables.RUN
_project = tables.PROJECT
_pipeline_run = tables.PIPELINE_RUN
_step_run = tables.STEP_RUN
_step_output = tables.STEP_OUTPUT
_approval = tables.APPROVAL


def insert_pipeline_run(
    store: Store,
    run_id: str,
    *,
    pipeline: str,
    reference: str | None,
    params: dict[str, Any],
    graph: dict[str, Any],
    executor: str,
    use_cache: bool,
    git_commit: str | None,
) -> None:
    """Record what a pipeline run runs."""
    with store.write() as conn:
        conn.execute(
            _pipeline_run.insert().values(
                run_id=run_id,
                pipeline=pipeline,
                reference=reference,
                params=params,
                graph=graph,
                executor=executor,
                use_cache=use_cache,
                git_commit=git_commit,
            )
        )


def update_graph(store: Store, run_id: str, graph: dict[str, Any], executor: str) -> None:
    """Store the DAG a resumed run was rebuilt as."""
    with store.write() as conn:
        conn.execute(
            update(_pipeline_run)
            .where(_pipeline_run.c.run_id == run_id)
            .values(graph=graph, executor=executor)
        )


def record_step(
    store: Store,
    *,
    pipeline_run_id: str,
    step: str,
    run_id: str,
    status: str,
    cache_key: str | None,
    cached_from: str | None,
    attempts: int,
    started_at: int,
    ended_at: int | None,
    outputs: Sequence[StoredValue] = (),
    output_names: Sequence[str] = (),
) -> None:
    """Write (or replace, on resume) the row of one step of a pipeline run, with outputs."""
    with store.write() as conn:
        conn.execute(
            delete(_step_run).where(
                _step_run.c.pipeline_run_id == pipeline_run_id, _step_run.c.step == step
            )
        )
        conn.execute(
            _step_run.insert().values(
                run_id=run_id,
                pipeline_run_id=pipeline_run_id,
                step=step,
                status=status,
                cache_key=cache_key,
                cached_from=cached_from,
                attempts=attempts,
                started_at=started_at,
                ended_at=ended_at,
            )
        )
        if outputs:
            conn.execute(
                _step_output.insert(),
                [
                    {
                        "run_id": run_id,
                        "position": i,
                        "name": output_names[i] if i < len(output_names) else "output",
                        "materializer": value.materializer,
                        "digest": value.digest,
                        "content_hash": value.content_hash,
                        "type_name": value.type_name,
                        "executable": value.executable,
                    }
                    for i, value in enumerate(outputs)
                ],
            )


_CACHE_CANDIDATES = 50
"""How many of a key's newest executions a look-up considers before running the step."""


def find_cached(
    store: Store, cache_key: str, identity: str | None
) -> tuple[str, tuple[StoredValue, ...]] | None:
    """The newest successful execution with ``cache_key`` that ``identity`` may reuse.

    Returns (the run that produced the outputs, the outputs), or None. Outputs that
    are executable (pickled: loading them runs code their writer chose) are reused
    only from executions that ``identity`` ran itself; a teammate's pickled value is
    never loaded in this process by a cache hit, the step simply runs again.
    """
    with store.read() as conn:
        rows = conn.execute(
            select(_step_run.c.run_id, _step_run.c.cached_from)
            .where(_step_run.c.cache_key == cache_key, _step_run.c.status == "finished")
            .order_by(_step_run.c.ended_at.desc())
            .limit(_CACHE_CANDIDATES)
        ).all()
        if not rows:
            return None
        producers = {row.run_id: row.cached_from or row.run_id for row in rows}
        outputs = _outputs(conn, list(producers))
        users: dict[str, str | None] = {
            run_id: user
            for run_id, user in conn.execute(
                select(_run.c.id, _run.c.user).where(_run.c.id.in_(set(producers.values())))
            )
        }
    for row in rows:
        values = outputs.get(row.run_id, ())
        producer = producers[row.run_id]
        executable = any(value.executable for value in values)
        if not executable or (identity is not None and users.get(producer) == identity):
            return producer, values
    return None


def step_outputs(store: Store, run_id: str) -> tuple[StoredValue, ...]:
    """The stored outputs of one step execution."""
    with store.read() as conn:
        return _outputs(conn, [run_id]).get(run_id, ())


def load_pipeline_run(store: Store, run_id: str) -> PipelineRun:
    """Everything recorded about a pipeline run.

    Raises:
        RunNotFound: no pipeline run has that id.
    """
    with store.read() as conn:
        row = conn.execute(
            select(
                _pipeline_run,
                _run.c.status,
                _run.c.start_time,
                _run.c.end_time,
                _run.c.heartbeat_at,
            )
            .join(_run, _run.c.id == _pipeline_run.c.run_id)
            .where(_pipeline_run.c.run_id == run_id)
        ).first()
        if row is None:
            raise RunNotFound(f"No pipeline run with id {run_id!r}.")
        steps = _steps(conn, run_id, row.graph)
    return PipelineRun(
        id=row.run_id,
        pipeline=row.pipeline,
        reference=row.reference,
        status=row.status,
        params=dict(row.params),
        executor=row.executor,
        use_cache=row.use_cache,
        git_commit=row.git_commit,
        start_time=row.start_time,
        end_time=row.end_time,
        graph=dict(row.graph),
        steps=steps,
        resumed_from=row.resumed_from,
    )


def list_pipeline_runs(
    store: Store, project: str, pipeline: str | None = None, limit: int = 50
) -> list[PipelineRun]:
    """Pipeline runs of a project, newest first."""
    query = (
        select(_pipeline_run.c.run_id)
        .join(_run, _run.c.id == _pipeline_run.c.run_id)
        .join(_project, _project.c.id == _run.c.project_id)
        .where(_project.c.name == project)
        .order_by(_run.c.start_time.desc())
        .limit(limit)
    )
    if pipeline is not None:
        query = query.where(_pipeline_run.c.pipeline == pipeline)
    with store.read() as conn:
        ids = list(conn.execute(query).scalars())
    return [load_pipeline_run(store, run_id) for run_id in ids]


def _steps(conn: Connection, run_id: str, graph: dict[str, Any]) -> dict[str, StepRecord]:
    rows = {
        r.step: r
        for r in conn.execute(select(_step_run).where(_step_run.c.pipeline_run_id == run_id))
    }
    outputs = _outputs(conn, [r.run_id for r in rows.values()])
    errors = {
        r.id: r.failure_message
        for r in conn.execute(
            select(_run.c.id, _run.c.failure_message).where(
                _run.c.id.in_([r.run_id for r in rows.values()])
            )
        )
    }
    approvals = {
        r.gate: r
        for r in conn.execute(
            select(_approval).where(
                _approval.c.object_kind == "pipeline_run", _approval.c.object_id == run_id
            )
        )
    }
    steps: dict[str, StepRecord] = {}
    for node in graph.get("nodes", []):
        name = node["name"]
        if node["kind"] == "gate":
            approval = approvals.get(name)
            status = "pending" if approval is None else _gate_status(approval.status)
            steps[name] = StepRecord(
                name,
                "gate",
                status,
                approval_id=None if approval is None else approval.id,
                started_at=None if approval is None else approval.requested_at,
                ended_at=None if approval is None else approval.decided_at,
            )
            continue
        row = rows.get(name)
        if row is None:
            steps[name] = StepRecord(name, "step", "pending")
            continue
        status = "cached" if row.cached_from and row.status == "finished" else row.status
        steps[name] = StepRecord(
            name,
            "step",
            status,
            run_id=row.run_id,
            cached_from=row.cached_from,
            cache_key=row.cache_key,
            attempts=row.attempts,
            started_at=row.started_at,
            ended_at=row.ended_at,
            outputs=outputs.get(row.run_id, ()),
            error=errors.get(row.run_id),
        )
    return steps


def _gate_status(approval_status: str) -> str:
    return "waiting_for_approval" if approval_status == "pending" else approval_status


def _outputs(conn: Connection, run_ids: Sequence[str]) -> dict[str, tuple[StoredValue, ...]]:
    if not run_ids:
        return {}
    found: dict[str, list[StoredValue]] = {}
    rows = conn.execute(
        select(_step_output)
        .where(_step_output.c.run_id.in_(list(run_ids)))
        .order_by(_step_output.c.run_id, _step_output.c.position)
    )
    for r in rows:
        found.setdefault(r.run_id, []).append(
            StoredValue(r.materializer, r.digest, r.content_hash, r.type_name, r.executable)
        )
    return {k: tuple(v) for k, v in found.items()}


def mark_stale_steps(store: Store, pipeline_run_id: str) -> list[str]:
    """On resume: steps left ``running`` by a killed process count as not run.

    Returns the ids of their step runs, which the caller ends.
    """
    with store.write() as conn:
        stale = list(
            conn.execute(
                select(_step_run.c.run_id).where(
                    _step_run.c.pipeline_run_id == pipeline_run_id,
                    _step_run.c.status == "running",
                )
            ).scalars()
        )
        conn.execute(
            update(_step_run)
            .where(_step_run.c.run_id.in_(stale))
            .values(status="interrupted", ended_at=now_ms())
        )
    return stale
