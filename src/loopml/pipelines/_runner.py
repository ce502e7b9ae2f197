"""Running a pipeline's DAG: cache look-ups, dispatch to an executor, gates, resume.

The runner lives in the process that started (or resumed) the run; steps run in
executor workers. Every state change is written to the store as it happens, so a
run killed at any moment can be resumed: finished steps (and their outputs) are
reused, steps left ``running`` run again, and a half-written output is never
reused because outputs are recorded only after their blobs are complete.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml._identity import current_identity
from loopml.approvals import ApprovalClient
from loopml.errors import InvalidParameter, PipelineDefinitionError, StepFailed
from loopml.pipelines import _state
from loopml.pipelines._cache_key import cache_key
from loopml.pipelines._executors import create_executor
from loopml.pipelines._fingerprint import code_fingerprint
from loopml.pipelines._graph import Graph, Node
from loopml.pipelines._records import PipelineRun, StepRecord
from loopml.pipelines._step import function_payload
from loopml.pipelines._task import StepResult, StepTask, StoredValue
from loopml.store import Node as LineageNode
from loopml.store import now_ms
from loopml.tracking import TrackingClient, get_client
from loopml.tracking._reserved import set_loopml_tags

if TYPE_CHECKING:
    from loopml.pipelines._executors import Executor
    from loopml.pipelines._pipeline import Pipeline

__all__ = ["PIPELINE_NAME_TAG", "PIPELINE_RUN_TAG", "PIPELINE_STEP_TAG", "Event", "Runner"]

PIPELINE_RUN_TAG = "loopml.pipeline.run_id"
"""Tag of a step run: the id of its pipeline run."""
PIPELINE_NAME_TAG = "loopml.pipeline.name"
"""Tag of a step run: the name of its pipeline."""
PIPELINE_STEP_TAG = "loopml.pipeline.step"
"""Tag of a step run: the name of its step."""

_MAX_LOG_ARTIFACT = 1 << 20


@dataclass(frozen=True)
class Event:
    """A node changed state: ``status`` is ``running``, ``cached``, ``finished``, ``failed``,
    ``timeout``, ``waiting_for_approval``, ``approved``, ``rejected`` or ``skipped``."""

    step: str
    status: str
    run_id: str | None = None
    detail: str | None = None


class Runner:
    """Runs one pipeline run to its end, a failure, or an approval gate."""

    def __init__(
        self,
        executor: str = "local",
        max_workers: int | None = None,
        ray_address: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        client: TrackingClient | None = None,
    ) -> None:
        if executor not in ("local", "ray"):
            raise PipelineDefinitionError(
                f"Unknown executor {executor!r}; choose 'local' or 'ray'."
            )
        if executor == "ray":
            _require_ray()
        self.executor_name = executor
        self.max_workers = max_workers
        self.ray_address = ray_address
        self.on_event = on_event
        self.client = client or get_client()
        self._executor: Executor | None = None
        self._source: str | None = None  # the pipeline's file: its repository is the code
        self._pipeline_name: str | None = None

    # -- entry points -----------------------------------------------------------------

    def start(
        self,
        pipeline: Pipeline,
        graph: Graph,
        params: dict[str, Any],
        *,
        cache: bool,
        project: str | None,
    ) -> PipelineRun:
        """Record a new pipeline run and run it."""
        client = self.client
        self._source = _source_file(pipeline)
        self._pipeline_name = pipeline.name
        run_id = client.create_run(
            project=project,
            name=pipeline.name,
            params={k: _param_text(v) for k, v in params.items()},
            kind="pipeline",
            source=self._source,
        )
        git = client.get_run(run_id).context.get("git") or {}
        _state.insert_pipeline_run(
            client.store,
            run_id,
            pipeline=pipeline.name,
            reference=pipeline.reference,
            params=_jsonable(params),
            graph=graph.describe(),
            executor=self.executor_name,
            use_cache=cache,
            git_commit=git.get("commit"),
        )
        return self._run(run_id, graph, cache=cache, finished={})

    def resume(self, run_id: str) -> PipelineRun:
        """Continue a failed, interrupted or approval-waiting run, reusing finished steps.

        Raises:
            InvalidParameter: the run already finished or was rejected.
            PipelineDefinitionError: its pipeline can no longer be imported or built.
        """
        from loopml.pipelines._loader import load_pipeline

        recorded = _state.load_pipeline_run(self.client.store, run_id)
        if recorded.status in ("finished", "rejected"):
            raise InvalidParameter(
                f"Pipeline run {run_id} is {recorded.status}; only failed, interrupted or "
                "waiting runs can be resumed."
            )
        if recorded.reference is None:
            raise PipelineDefinitionError(
                f"Pipeline run {run_id} recorded no importable reference."
            )
        pipeline = load_pipeline(recorded.reference)
        self._source = _source_file(pipeline)
        self._pipeline_name = recorded.pipeline
        graph = pipeline.build(pipeline.resolve_params(recorded.params))
        for child in _state.mark_stale_steps(self.client.store, run_id):
            # A step whose process was killed: its run ended when the process did.
            self.client.end_run(child, "killed")
        _state.update_graph(self.client.store, run_id, graph.describe(), self.executor_name)
        finished = {
            name: step
            for name, step in _state.load_pipeline_run(self.client.store, run_id).steps.items()
            if step.kind == "step" and step.status in ("finished", "cached") and step.run_id
        }
        self.client.set_run_status(run_id, "running")
        return self._run(run_id, graph, cache=recorded.use_cache, finished=finished)

    # -- the loop ---------------------------------------------------------------------------

    def _run(
        self, run_id: str, graph: Graph, *, cache: bool, finished: dict[str, StepRecord]
    ) -> PipelineRun:
        state = _Progress()
        order = {name: i for i, name in enumerate(graph.nodes)}
        try:
            while True:
                if state.failure is None and state.paused is None:
                    self._schedule(run_id, graph, state, cache, finished)
                if not state.running:
                    break
                completed, _ = concurrent.futures.wait(
                    state.running, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in completed:
                    node, child, key, started = state.running.pop(future)
                    result = future.result()
                    self._record_result(run_id, node, child, key, started, result)
                    if result.status == "finished":
                        state.outputs[node.name] = result.outputs
                        state.done.add(node.name)
                    # Steps running side by side may both fail, in either order: the
                    # run reports the one traced first, so a failure reads the same
                    # however the race went.
                    elif state.failure is None or order[node.name] < order[state.failure[0]]:
                        state.failure = (
                            node.name,
                            result.error_type or "StepError",
                            result.error_message or result.status,
                            result.traceback or "",
                        )
        except BaseException as exc:
            self._shutdown()
            self.client.end_run(
                run_id, "killed" if isinstance(exc, KeyboardInterrupt) else "failed", exc
            )
            raise
        self._shutdown()
        return self._finish(run_id, state)

    def _schedule(
        self,
        run_id: str,
        graph: Graph,
        state: _Progress,
        cache: bool,
        finished: dict[str, StepRecord],
    ) -> None:
        """Start every node whose inputs are ready; cached steps may unlock more at once."""
        progress = True
        while progress and state.paused is None:
            progress = False
            active = {node.name for node, *_ in state.running.values()}
            for node in graph.nodes.values():
                if node.name in state.done or node.name in active:
                    continue
                if not all(up in state.done for up in node.upstream):
                    continue
                if node.kind == "gate":
                    verdict = self._gate(run_id, node)
                    if verdict != "approved":
                        state.paused = verdict
                        return
                    state.done.add(node.name)
                    progress = True
                    continue
                inputs = _inputs(node, state.outputs)
                key = self._key(node, inputs)  # computed once: fingerprints are not free
                reused = self._reuse(run_id, node, key, cache, finished.get(node.name))
                if reused is not None:
                    state.outputs[node.name] = reused
                    state.done.add(node.name)
                    progress = True
                else:
                    future, info = self._submit(run_id, node, inputs, key)
                    state.running[future] = info
                    active.add(node.name)

    def _finish(self, run_id: str, state: _Progress) -> PipelineRun:
        client = self.client
        if state.failure is not None:
            step, error_type, message, trace = state.failure
            text = f"step {step!r}: {error_type}: {message.rstrip('.')}"
            client.end_run(run_id, "failed", failure=(error_type, text, trace))
            raise StepFailed(
                f"Pipeline run {run_id} failed at {text}. Fix it and run "
                f"`loopml pipelines resume {run_id}`; finished steps are reused.\n{trace}".rstrip(),
                run_id=run_id,
                step=step,
            )
        if state.paused == "rejected":
            client.end_run(run_id, "rejected")
        elif state.paused == "pending":
            client.set_run_status(run_id, "waiting_for_approval")
        else:
            client.end_run(run_id, "finished")
        return _state.load_pipeline_run(client.store, run_id)

    # -- nodes ---------------------------------------------------------------------------------

    def _gate(self, run_id: str, node: Node) -> str:
        approvals = ApprovalClient(self.client.store)
        approval = approvals.request(
            "pipeline_run", run_id, node.name, node.message or "", node.approvers_role
        )
        status = {"pending": "waiting_for_approval"}.get(approval.status, approval.status)
        self._emit(Event(node.name, status, detail=f"approval {approval.id}"))
        return approval.status

    def _key(self, node: Node, inputs: dict[str, StoredValue]) -> str:
        step = node.step
        if step is None:  # pragma: no cover - gates have no key
            raise PipelineDefinitionError(f"{node.name!r} is not a step.")
        return cache_key(
            node.name,
            code_fingerprint(step.function),
            {arg: value.content_hash for arg, value in inputs.items()},
            node.constants,
            step.packages,
        )

    def _reuse(
        self,
        run_id: str,
        node: Node,
        key: str,
        use_cache: bool,
        finished: StepRecord | None,
    ) -> tuple[StoredValue, ...] | None:
        """Outputs of this step without running it: from the resumed run, or the cache."""
        step = node.step
        if step is None:  # pragma: no cover - gates are handled by _gate
            return None
        if finished is not None and finished.cache_key == key:
            self._emit(Event(node.name, "finished", finished.run_id, "reused by resume"))
            return finished.outputs
        if not (use_cache and step.cache):
            return None
        hit = _state.find_cached(self.client.store, key, current_identity())
        if hit is None:
            return None
        source, stored = hit
        started = now_ms()
        child = self._child_run(run_id, node)
        _state.record_step(
            self.client.store,
            pipeline_run_id=run_id,
            step=node.name,
            run_id=child,
            status="finished",
            cache_key=key,
            cached_from=source,
            attempts=0,
            started_at=started,
            ended_at=now_ms(),
            outputs=stored,
            output_names=step.output_names or ("output",),
        )
        set_loopml_tags(self.client, child, {"loopml.cached_from": source})
        self.client.end_run(child, "finished", resources={"wall_seconds": 0.0})
        self._emit(Event(node.name, "cached", child, f"from {source}"))
        return stored

    def _submit(
        self, run_id: str, node: Node, inputs: dict[str, StoredValue], key: str
    ) -> tuple[concurrent.futures.Future[StepResult], _Running]:
        step = node.step
        if step is None:  # pragma: no cover - gates are handled by _gate
            raise PipelineDefinitionError(f"{node.name!r} is not a step.")
        client = self.client
        started = now_ms()
        child = self._child_run(run_id, node)
        _state.record_step(
            client.store,
            pipeline_run_id=run_id,
            step=node.name,
            run_id=child,
            status="running",
            cache_key=key,
            cached_from=None,
            attempts=0,
            started_at=started,
            ended_at=None,
        )
        self._lineage_in(child, inputs)
        task = StepTask(
            run_id=child,
            step_name=node.name,
            function=function_payload(step),
            inputs=inputs,
            constants=dict(node.constants),
            output_names=step.output_names,
            store_uri=client.store.uri,
            artifact_uri=client.artifacts.uri,
            timeout=step.timeout,
            retries=step.retries,
            backoff=step.backoff,
            resources=step.resources,
        )
        self._emit(Event(node.name, "running", child))
        return self._executor_for().submit(task), (node, child, key, started)

    def _child_run(self, run_id: str, node: Node) -> str:
        """A step run with the code context of this process, tagged with its pipeline and step.

        Its git, entry-point and environment context is captured here, in the process
        running the pipeline (as the pipeline run's was), so a resumed step records
        the code that resumed it. The ``loopml.pipeline.*`` tags name the pipeline
        run, the pipeline and the step, so any run of a step (and ``loopml runs show``)
        says where it belongs.
        """
        child = self.client.create_run(
            name=node.name,
            kind="step",
            parent_id=run_id,
            params={k: _param_text(v) for k, v in node.constants.items()},
            source=self._source,
        )
        tags = {PIPELINE_RUN_TAG: run_id, PIPELINE_STEP_TAG: node.name}
        if self._pipeline_name is not None:
            tags[PIPELINE_NAME_TAG] = self._pipeline_name
        set_loopml_tags(self.client, child, tags)
        return child

    def _record_result(
        self, run_id: str, node: Node, child: str, key: str, started: int, result: StepResult
    ) -> None:
        client = self.client
        step = node.step
        names = (step.output_names if step is not None else None) or ("output",)
        status = "finished" if result.status == "finished" else result.status
        _state.record_step(
            client.store,
            pipeline_run_id=run_id,
            step=node.name,
            run_id=child,
            status=status,
            cache_key=key,
            cached_from=None,
            attempts=result.attempts,
            started_at=started,
            ended_at=now_ms(),
            outputs=result.outputs,
            output_names=names,
        )
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text:
                client.log_text(child, text[:_MAX_LOG_ARTIFACT], f"logs/{name}.txt")
        if result.status == "finished":
            self._lineage_out(child, result.outputs)
        resources = {
            "cpu_seconds": result.cpu_seconds,
            "peak_memory_bytes": result.peak_memory_bytes,
            "wall_seconds": result.wall_seconds,
        }
        failure = None
        if result.status != "finished":
            failure = (
                result.error_type or "StepError",
                result.error_message or result.status,
                result.traceback or "",
            )
        client.end_run(
            child,
            "finished" if result.status == "finished" else "failed",
            failure=failure,
            resources=resources,
        )
        self._emit(Event(node.name, status, child, result.error_message))

    # -- lineage ----------------------------------------------------------------------------------

    def _lineage_in(self, child: str, inputs: dict[str, StoredValue]) -> None:
        for value in inputs.values():
            self.client.add_lineage(_value_node(value), LineageNode("run", child), "input")

    def _lineage_out(self, child: str, outputs: tuple[StoredValue, ...]) -> None:
        for value in outputs:
            self.client.add_lineage(LineageNode("run", child), _value_node(value), "output")

    # -- executor ---------------------------------------------------------------------------------

    def _executor_for(self) -> Executor:
        if self._executor is None:
            options: dict[str, Any] = {}
            if self.executor_name == "local":
                options["max_workers"] = self.max_workers
            else:
                options["address"] = self.ray_address
            self._executor = create_executor(self.executor_name, **options)
        return self._executor

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)


_Running = tuple[Node, str, str, int]
"""(node, step run id, cache key, start time) of a submitted step."""


@dataclass
class _Progress:
    """The runner's view of one run while it runs."""

    outputs: dict[str, tuple[StoredValue, ...]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    running: dict[concurrent.futures.Future[StepResult], _Running] = field(default_factory=dict)
    failure: tuple[str, str, str, str] | None = None
    paused: str | None = None  # "pending" (waiting for approval) or "rejected"


def _inputs(node: Node, outputs: dict[str, tuple[StoredValue, ...]]) -> dict[str, StoredValue]:
    return {arg: outputs[ref.node][ref.index] for arg, ref in node.inputs.items()}


def _value_node(value: StoredValue) -> LineageNode:
    """Step values are lineage nodes by digest; dataset versions by their own id."""
    if value.materializer == "loopml.dataset_version":
        from loopml.pipelines._materializers import load_value

        version = load_value(value, get_client().artifacts)
        return LineageNode("dataset_version", str(getattr(version, "id", value.digest)))
    return LineageNode("value", value.digest)


def _source_file(pipeline: Pipeline) -> str | None:
    """The file defining the pipeline: its repository is the code the run used."""
    try:
        return inspect.getsourcefile(pipeline.function)
    except TypeError:  # built-in or dynamically made
        return None


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PipelineDefinitionError(
            "The ray executor needs Ray: pip install 'loopml[ray]'."
        ) from None


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(params, default=repr))
    return loaded
