"""Records of pipeline runs and their steps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loopml._html import Section, clip, html_table, when
from loopml.pipelines._task import StoredValue

__all__ = ["PipelineRun", "StepRecord"]


@dataclass(frozen=True)
class StepRecord:
    """One node of a pipeline run.

    ``status``: ``pending``, ``running``, ``finished``, ``cached`` (outputs reused from
    ``cached_from``), ``failed``, ``timeout``, ``waiting_for_approval``, ``approved`` or
    ``rejected`` (gates).
    """

    name: str
    kind: str
    status: str
    run_id: str | None = None
    cached_from: str | None = None
    cache_key: str | None = None
    attempts: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    outputs: tuple[StoredValue, ...] = ()
    error: str | None = None
    approval_id: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of the step, when it ran."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at) / 1000


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run with the state of every node, in DAG order."""

    id: str
    pipeline: str
    reference: str | None
    status: str
    params: dict[str, Any]
    executor: str
    use_cache: bool
    git_commit: str | None
    start_time: int
    end_time: int | None
    graph: dict[str, Any]
    steps: dict[str, StepRecord] = field(default_factory=dict)
    resumed_from: str | None = None

    def __repr__(self) -> str:
        # Short: the graph and the steps' stored outputs run to kilobytes.
        counts = Counter(record.status for record in self.steps.values())
        steps = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
        return f"<PipelineRun {self.id[:8]} {clip(self.pipeline)} {self.status} steps: {steps}>"

    def _repr_html_(self) -> str:
        steps = [
            (
                r.name,
                r.status,
                None if r.duration_seconds is None else f"{r.duration_seconds:.2f}s",
                r.attempts,
                (r.cached_from or r.run_id or "")[:8],
                r.error,
            )
            for r in self.steps.values()
        ]
        return html_table(
            f"PipelineRun {self.id}",
            [
                ("pipeline", self.pipeline),
                ("reference", self.reference),
                ("status", self.status),
                ("executor", self.executor),
                ("cache", "on" if self.use_cache else "off"),
                ("git commit", self.git_commit),
                ("started", when(self.start_time)),
                ("ended", when(self.end_time) or None),
                ("resumed from", self.resumed_from),
            ],
            Section("Params", ("param", "value"), sorted(self.params.items())),
            Section("Steps", ("step", "status", "duration", "attempts", "run", "error"), steps),
        )

    def output(self, step: str, index: int = 0, *, trust_executable: bool = False) -> Any:
        """Load output ``index`` of ``step`` from the artifact store.

        An executable value (pickled: loading it runs code its writer chose) loads
        only when the step run that produced it ran as the current identity, or
        with ``trust_executable=True``.

        Raises:
            KeyError: the step has no stored outputs.
            MaterializerError: an executable value someone else produced, or whose
                producing run no longer exists (``loopml gc`` purged it before it
                kept the runs cached outputs come from), untrusted.
        """
        from loopml._identity import current_identity
        from loopml.errors import MaterializerError, RunNotFound
        from loopml.pipelines._materializers import get_materializer, load_value
        from loopml.tracking import get_client

        record = self.steps.get(step)
        if record is None or not record.outputs:
            raise KeyError(f"Step {step!r} of pipeline run {self.id} has no stored outputs.")
        value = record.outputs[index]
        client = get_client()
        producer = record.cached_from or record.run_id
        executable = value.executable or get_materializer(value.materializer).executable
        if executable and not trust_executable and producer is not None:
            me = current_identity()
            try:
                writer = client.get_run(producer).user
            except RunNotFound:
                raise MaterializerError(
                    f"Output {index} of step {step!r} of pipeline run {self.id} is "
                    f"executable (pickled) and run {producer}, which produced it, no longer "
                    "exists, so who wrote it cannot be checked; pass trust_executable=True "
                    "to load it anyway."
                ) from None
            trust_executable = me is not None and writer == me
        return load_value(value, client.artifacts, trust_executable=trust_executable)
