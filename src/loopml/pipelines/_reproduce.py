"""Reproduce a recorded pipeline run from its git commit, and compare it step by step.

The recorded commit is checked out into a temporary ``git worktree`` and the
pipeline runs there in a child process (with ``PYTHONPATH`` pointing into the
worktree, so the recorded code is imported, not the current checkout), with the
recorded parameters and caching off. Each step's output content hashes are then
compared with the original's: equal hashes are the proof that a result can be
made again; a step whose outputs differ although its inputs matched is named as
not deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from loopml.errors import InvalidParameter
from loopml.pipelines import _state
from loopml.pipelines._records import PipelineRun, StepRecord
from loopml.pipelines._reproduce_child import run_child
from loopml.pipelines._reproduce_git import find_repository, map_reference
from loopml.pipelines._reproduce_git import worktree as checked_out
from loopml.pipelines._runner import Event
from loopml.tracking import get_client
from loopml.tracking._reserved import set_loopml_tags

__all__ = ["ReproductionReport", "StepComparison", "reproduce"]

Reason = Literal["identical", "not_deterministic", "inputs_differed", "not_run"]

_DONE = ("finished", "cached")


@dataclass(frozen=True)
class StepComparison:
    """How one step of the original run compares with its reproduction.

    Attributes:
        step: the step's name in the pipeline's DAG.
        matches: True when the step produced outputs with the same content hashes.
        original: content hashes of the original run's outputs, in order.
        reproduced: content hashes of the reproduction's outputs, in order.
        note: a sentence for people, saying why it differs when it does.
        reason: ``identical``, ``not_deterministic`` (same inputs, different outputs),
            ``inputs_differed`` (an upstream output already differed) or ``not_run``
            (the step did not finish in one of the two runs).
    """

    step: str
    matches: bool
    original: tuple[str, ...]
    reproduced: tuple[str, ...]
    note: str
    reason: Reason

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        data = asdict(self)
        data["original"] = list(self.original)
        data["reproduced"] = list(self.reproduced)
        return data


@dataclass(frozen=True)
class ReproductionReport:
    """The outcome of :func:`reproduce`.

    Attributes:
        original_run_id: the pipeline run that was reproduced.
        reproduced_run_id: the new pipeline run, made from the recorded commit.
        commit: the git commit both runs ran.
        steps: one comparison per step of the original run, in DAG order.
        warnings: what may keep the runs from matching besides the code (uncommitted
            changes, ``@latest`` dataset parameters, a different environment …).
        reproduced: True when every step's outputs matched and the new run finished.
        worktree: where the commit was checked out, when it was kept.
    """

    original_run_id: str
    reproduced_run_id: str
    commit: str
    steps: tuple[StepComparison, ...]
    warnings: tuple[str, ...]
    reproduced: bool
    worktree: str | None = None

    @property
    def not_deterministic(self) -> list[str]:
        """Steps whose outputs differed although their inputs were the same."""
        return [s.step for s in self.steps if s.reason == "not_deterministic"]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dict."""
        return {
            "original_run_id": self.original_run_id,
            "reproduced_run_id": self.reproduced_run_id,
            "commit": self.commit,
            "reproduced": self.reproduced,
            "not_deterministic": self.not_deterministic,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
            "worktree": self.worktree,
        }


def reproduce(
    run_id: str,
    *,
    executor: str = "local",
    keep_worktree: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> ReproductionReport:
    """Re-run a recorded pipeline run from its git commit and compare every step.

    The commit is checked out into a temporary git worktree, the pipeline runs there
    in a child process with the recorded parameters and the cache off (writing to the
    same store and artifact store as the caller), and each step's output content
    hashes are compared with the original's. Dataset parameters recorded as
    ``name:N`` read the same versions again; ``name@latest`` is named as a risk.

    Args:
        run_id: the pipeline run to reproduce (or a unique prefix of its id).
        executor: ``local`` or ``ray``, as for :meth:`Pipeline.run`.
        keep_worktree: leave the checked-out commit on disk (its path is in the
            report) instead of removing the worktree afterwards.
        on_event: called with every step status change of the reproduction (for live
            views), as with :meth:`Pipeline.run`.

    Returns:
        The step-by-step comparison; the new run is tagged ``loopml.reproduction_of``.

    Raises:
        RunNotFound: no pipeline run has that id.
        InvalidParameter: the run was not made from a git repository, recorded no
            importable reference, its commit is no longer in the repository, or
            ``executor`` is unknown.
        PipelineDefinitionError: the recorded code could not be imported or started.

    Example:
        >>> report = loopml.pipelines.reproduce("3f2a9c")  # doctest: +SKIP
        >>> report.reproduced, report.not_deterministic  # doctest: +SKIP
        (False, ['sample'])
    """
    if executor not in ("local", "ray"):
        raise InvalidParameter(
            f"The 'executor' parameter of reproduce must be 'local' or 'ray'; got {executor!r}."
        )
    client = get_client()
    run_id = client.resolve_run_id(run_id)
    original = _state.load_pipeline_run(client.store, run_id)
    recorded = client.get_run(run_id)
    git: Mapping[str, Any] = recorded.context.get("git") or {}
    commit, reference = _reproducible(original)
    warnings = _recording_warnings(original, git)
    repository = find_repository(commit, git, reference)
    recorded_root = Path(str(git.get("root") or repository))

    with checked_out(repository, commit, keep=keep_worktree) as worktree:
        if (worktree / ".gitmodules").is_file():
            warnings.append(
                "The repository uses git submodules, which the reproduction does not check "
                "out; code imported from them comes from the current environment."
            )
        mapped, paths = map_reference(reference, recorded_root, repository, worktree)
        new_id = run_child(
            client,
            worktree,
            paths,
            {
                "reference": mapped,
                "params": original.params,
                "executor": executor,
                "project": recorded.project,
                "worktree": str(worktree),
                "commit": commit,
            },
            on_event,
        )
    set_loopml_tags(client, new_id, {"loopml.reproduction_of": run_id})
    reproduction = _state.load_pipeline_run(client.store, new_id)
    environment = _environment_differences(recorded.context, client.get_run(new_id).context)
    warnings.extend(_reproduction_warnings(reproduction, commit, environment))
    steps = _compare(original, reproduction, environment_differs=bool(environment))
    return ReproductionReport(
        original_run_id=run_id,
        reproduced_run_id=new_id,
        commit=commit,
        steps=steps,
        warnings=tuple(warnings),
        reproduced=reproduction.status == "finished" and all(s.matches for s in steps),
        worktree=str(worktree) if keep_worktree else None,
    )


# -- what was recorded ---------------------------------------------------------------------


def _reproducible(original: PipelineRun) -> tuple[str, str]:
    """The commit and reference of a run that can be reproduced from source."""
    if not original.git_commit:
        raise InvalidParameter(
            f"Pipeline run {original.id} was not made from a git repository (no commit was "
            "recorded), so it cannot be reproduced from source. Commit the pipeline's code "
            "and run it from inside the repository to make reproducible runs."
        )
    reference = original.reference
    if not reference or reference.startswith("__main__:"):
        raise InvalidParameter(
            f"Pipeline run {original.id} recorded no importable reference "
            f"({reference!r}); only pipelines defined in a module or a script file can be "
            "reproduced."
        )
    return original.git_commit, reference


def _recording_warnings(original: PipelineRun, git: Mapping[str, Any]) -> list[str]:
    commit = str(original.git_commit)[:12]
    warnings: list[str] = []
    if git.get("dirty"):
        digest = git.get("diff_sha256")
        warnings.append(
            "The original run was recorded with uncommitted changes "
            f"(diff sha256 {str(digest)[:12] if digest else 'unknown'}) that are not part "
            f"of commit {commit}; the reproduction runs the commit without them, so outputs "
            "those changes affected cannot match."
        )
    for name, value in _latest_references(original.params):
        dataset = value.rpartition("@")[0]
        warnings.append(
            f"Parameter {name!r} is {value!r}, which resolves to the newest dataset version "
            "when the pipeline runs, so the reproduction may read other data than the "
            f"original did; pass a fixed version (e.g. '{dataset}:N') to make runs "
            "reproducible."
        )
    if original.status != "finished":
        warnings.append(
            f"The original run is {original.status}; only the steps it finished are compared."
        )
    return warnings


def _latest_references(value: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """``(parameter, text)`` for every ``dataset@latest`` text, also inside lists and dicts."""
    if isinstance(value, str):
        if value.strip().endswith("@latest"):
            yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _latest_references(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _latest_references(item, f"{name}[{index}]")


# -- git -------------------------------------------------------------------------------------


def _environment_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What differs between two runs' recorded interpreters and package sets."""
    return [
        f"{label} {before[key]} then, {after[key]} now"
        for key, label in (("python_version", "Python"), ("packages_sha256", "packages sha256"))
        if before.get(key) and after.get(key) and before[key] != after[key]
    ]


def _reproduction_warnings(
    reproduction: PipelineRun, commit: str, environment: Sequence[str]
) -> list[str]:
    warnings: list[str] = []
    if reproduction.git_commit != commit:
        warnings.append(
            f"The reproduction recorded commit {reproduction.git_commit} instead of {commit}."
        )
    if environment:
        warnings.append(
            f"The environment differs from the original run's ({'; '.join(environment)}); "
            "differing outputs may come from it rather than from the code."
        )
    if reproduction.status != "finished":
        warnings.append(f"The reproduction ended {reproduction.status}.")
    return warnings


def _compare(
    original: PipelineRun, reproduction: PipelineRun, *, environment_differs: bool
) -> tuple[StepComparison, ...]:
    compared: dict[str, StepComparison] = {}
    inputs = {
        node["name"]: [(str(ref[0]), int(ref[1])) for ref in node.get("inputs", {}).values()]
        for node in original.graph.get("nodes", [])
    }
    for name, before in original.steps.items():
        if before.kind != "step":
            continue
        after = reproduction.steps.get(name)
        old = _hashes(before)
        new = _hashes(after) if after is not None else ()
        if before.status not in _DONE:
            note = f"not compared: the step is {before.status} in the original run"
            compared[name] = StepComparison(name, False, old, new, note, "not_run")
            continue
        if after is None or after.status not in _DONE:
            status = "missing" if after is None else after.status
            error = f" ({after.error.splitlines()[0]})" if after and after.error else ""
            note = f"not reproduced: the step is {status} in the reproduction{error}"
            compared[name] = StepComparison(name, False, old, new, note, "not_run")
            continue
        if old == new:
            compared[name] = StepComparison(name, True, old, new, "identical outputs", "identical")
            continue
        differed = sorted(
            {
                up
                for up, index in inputs.get(name, [])
                if _differs(original, reproduction, up, index)
            }
        )
        if differed:
            note = f"inputs differed (from {', '.join(differed)})"
            compared[name] = StepComparison(name, False, old, new, note, "inputs_differed")
        else:
            note = "not deterministic: same inputs, different outputs"
            if environment_differs:
                note += " (or the environment difference, see the warnings)"
            compared[name] = StepComparison(name, False, old, new, note, "not_deterministic")
    return tuple(compared.values())


def _hashes(record: StepRecord) -> tuple[str, ...]:
    return tuple(value.content_hash for value in record.outputs)


def _differs(original: PipelineRun, reproduction: PipelineRun, step: str, index: int) -> bool:
    def content(run: PipelineRun) -> str | None:
        record = run.steps.get(step)
        if record is None or index >= len(record.outputs):
            return None
        return record.outputs[index].content_hash

    return content(original) != content(reproduction)
