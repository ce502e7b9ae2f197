"""An automation attempt as a stored state machine, advanced one step at a time.

States: ``retrain`` → ``gate`` → ``approve`` → ``canary`` → ``collecting`` (not enough
data yet) ⇄ ``analyse`` → ``promote`` | ``rollback``, ending ``promoted``,
``rolled_back``, ``inconclusive`` (the analysis reached its limits without proof: the
traffic is restored, the candidate is not rejected), ``failed`` or ``stopped`` (the gate
refused the candidate, approvals timed out, or someone cancelled it).

:func:`advance` reads the attempt, does its state's step through the public operations
of pipelines, the registry and serving, and records the transition (state, data, and an
``automation_step`` row) in one transaction guarded by the attempt's version. A step
with a side effect first records that it is starting it (``save_data``), and on
re-entry looks for the effect before doing it again: the candidate a pipeline run
registered since, the deployment revision tagged with the attempt, the alias already
moved. So a scheduler killed anywhere resumes where the store says it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from loopml.artifacts import ArtifactStore
from loopml.automation._actions import ActionFailed, fill_params, run_action
from loopml.automation._analysis import live_state
from loopml.automation._automation_store import (
    Attempt,
    Automation,
    record_transition,
    save_data,
)
from loopml.automation._sequential import Decision, decide
from loopml.errors import LoopmlError
from loopml.pipelines._state import load_pipeline_run
from loopml.registry import Approvals, ModelVersion, RegistryClient
from loopml.registry._evaluation import EvaluationData
from loopml.serving import DeploymentClient, Route
from loopml.store import Store, now_ms

__all__ = ["Context", "Transition", "advance"]


@dataclass
class Context:
    """What a step may use: the stores, the clients over them, trust, the lease's fence."""

    store: Store
    artifacts: ArtifactStore
    trusted: Callable[[Automation], bool]
    fence: Callable[[Connection], None] | None = None
    clock: Callable[[], int] = now_ms
    registry: RegistryClient = field(init=False)
    deployments: DeploymentClient = field(init=False)

    def __post_init__(self) -> None:
        self.registry = RegistryClient(self.store, self.artifacts)
        self.deployments = DeploymentClient(self.store, self.registry)


@dataclass(frozen=True)
class Transition:
    """Where a step takes the attempt, why, from what, with what result."""

    to: str
    reason: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outcome: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


def advance(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    """Do ``attempt``'s current step; record and return its transition (None: it waits).

    A step that fails with a loopml error ends the attempt ``failed`` with the error.
    """
    step = _STEPS.get(attempt.state)
    if step is None:
        return None
    try:
        transition = step(context, automation, attempt)
    except LoopmlError as exc:
        transition = Transition("failed", f"{attempt.state}: {exc}")
    if transition is None:
        return None
    current = _latest(context, attempt)
    data = {**current.data, **transition.data}
    moved = record_transition(
        context.store,
        current,
        transition.to,
        transition.reason,
        transition.inputs,
        transition.outcome,
        data,
        context.fence,
    )
    return transition if moved else None


def _latest(context: Context, attempt: Attempt) -> Attempt:
    from loopml.automation._automation_store import AutomationStore

    return AutomationStore(context.store).attempt(attempt.id)


def _tag(attempt: Attempt) -> str:
    return f"[automation attempt {attempt.id}]"


def _event(attempt: Attempt) -> Mapping[str, Any]:
    events = [e for e in attempt.data.get("events", []) if isinstance(e, Mapping)]
    newest = events[-1] if events else {}
    data = newest.get("data", newest)
    return data if isinstance(data, Mapping) else {}


# -- retrain -------------------------------------------------------------------------------


def _retrain(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    spec = automation.spec
    started = attempt.data.get("retrain_started_at")
    if started is not None:
        # A scheduler died while the pipeline ran: its run may have registered the candidate.
        found = _registered_since(context, automation, int(started))
        if found is not None:
            return Transition(
                "gate",
                f"the training run started before a restart registered {found.ref}",
                outcome={"candidate": found.ref},
                data={"candidate": found.ref},
            )
    if not context.trusted(automation):
        return Transition(
            "failed",
            "this automation runs a pipeline, which imports and runs code, and was stored by "
            "another account: start the scheduler with --trust to run it",
        )
    attempt = save_data(
        context.store,
        attempt,
        {**attempt.data, "retrain_started_at": context.clock()},
        context.fence,
    )
    params = fill_params(spec.params, _event(attempt))
    firing = {"events": attempt.data.get("events", [])}
    try:
        result = run_action(
            spec.action.to_dict(), firing=firing, project=automation.project, trusted=True
        )
    except ActionFailed as exc:
        return Transition("failed", f"retrain: {exc}", inputs={"params": params})
    run_id = str(result.get("run") or "")
    candidate = _candidate_of(context, automation, run_id)
    if candidate is None:
        return Transition(
            "failed",
            f"the training run {run_id} registered no version of model {spec.model!r}",
            inputs={"params": params},
            outcome=result,
        )
    return Transition(
        "gate",
        f"the training run {run_id} registered {candidate.ref}",
        inputs={"pipeline": spec.pipeline, "params": params},
        outcome={"run": run_id, "candidate": candidate.ref},
        data={"run": run_id, "candidate": candidate.ref},
    )


def _candidate_of(context: Context, automation: Automation, run_id: str) -> ModelVersion | None:
    """The newest version of the model whose source run is ``run_id`` or one of its steps."""
    if not run_id:
        return None
    run = load_pipeline_run(context.store, run_id)
    runs = {run_id} | {s.run_id for s in run.steps.values() if s.run_id}
    versions = context.registry.list_versions(automation.spec.model, project=automation.project)
    found = [v for v in versions if v.source_run_id in runs]
    return max(found, key=lambda v: v.version) if found else None


def _registered_since(context: Context, automation: Automation, since: int) -> ModelVersion | None:
    versions = context.registry.list_versions(automation.spec.model, project=automation.project)
    found = [v for v in versions if v.created_at >= since and v.source_run_id]
    return max(found, key=lambda v: v.version) if found else None


# -- gate and approvals ------------------------------------------------------------------


def _gate(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    spec = automation.spec
    ref = str(attempt.data["candidate"])
    data_ref = fill_params({"data": spec.evaluation_data}, _event(attempt))["data"]
    result = context.registry.evaluate(
        ref,
        str(data_ref),
        project=automation.project,
        target=spec.target,
        champion=spec.alias,
        trust=context.trusted(automation),
    )
    inputs = {"candidate": ref, "data": data_ref, "target": spec.target}
    outcome = {
        "evaluation": result.evaluation,
        "metrics": result.metrics,
        "checks": {r.name: {"passed": r.passed, "reason": r.reason} for r in result.results},
    }
    failing = [(r.name, r.reason) for r in result.results if not r.passed and r.kind != "approvals"]
    if failing:
        listed = "; ".join(f"{name}: {why}" for name, why in failing)
        return Transition("stopped", f"{ref} failed the gate: {listed}", inputs, outcome)
    return Transition(
        "approve", f"{ref} passed the gate ({len(result.results)} checks)", inputs, outcome
    )


def _approve(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    ref = str(attempt.data["candidate"])
    version = context.registry.get_version(ref, project=automation.project)
    if version.status == "rejected":
        return Transition("stopped", f"{ref} was rejected while it waited for approvals")
    policy = context.registry.get_policy(version.name, project=automation.project)
    given = context.registry.approvals_of(version)
    data = EvaluationData.for_approvals(given, version.registered_by)
    missing = [
        outcome.reason
        for check in policy.checks
        if isinstance(check, Approvals)
        for outcome in [check.evaluate(data)]
        if not outcome.passed
    ]
    inputs = {"candidate": ref, "approvals": [who for who, _ in given]}
    if not missing:
        return Transition("canary", f"{ref} has the approvals its policy asks for", inputs)
    waited = (context.clock() - attempt.updated_at) / 1000
    if waited >= automation.spec.approval_timeout:
        return Transition(
            "stopped",
            f"approvals did not come within {automation.spec.approval_timeout:.0f} s: "
            + "; ".join(missing),
            inputs,
        )
    return None


# -- canary, analysis, decision ------------------------------------------------------------


def _canary(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    spec = automation.spec
    ref = str(attempt.data["candidate"])
    tag = _tag(attempt)
    live = context.deployments.get(spec.endpoint, project=automation.project)
    previous = attempt.data.get("previous_revision")
    if previous is not None and live.reason and tag in live.reason:
        revision = live  # set before a restart: adopt it
    else:
        previous = live.revision
        attempt = save_data(
            context.store, attempt, {**attempt.data, "previous_revision": previous}, context.fence
        )
        keep = (100 - spec.canary_share) / 100
        routes = [
            r if r.mode == "shadow" else Route(r.model, r.weight * keep, r.mode)
            for r in live.routes
            if r.model != ref
        ]
        routes.append(Route(ref, spec.canary_share, "canary"))
        revision = context.deployments.set(
            spec.endpoint,
            routes,
            project=automation.project,
            settings=live.settings,
            reason=f"{tag} canary of {ref} at {spec.canary_share:g} %",
        )
    return Transition(
        "collecting",
        f"revision {revision.revision} sends {spec.canary_share:g} % of {spec.endpoint} to {ref}",
        inputs={"previous_revision": previous},
        outcome={"revision": revision.revision},
        data={
            "previous_revision": previous,
            "canary_revision": revision.revision,
            "canary_since": revision.created_at,
        },
    )


def _analyse(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    spec = automation.spec
    ref = str(attempt.data["candidate"])
    now = context.clock()
    state, counts = live_state(
        context.store,
        context.artifacts,
        spec.endpoint,
        ref,
        since_ms=int(attempt.data["canary_since"]),
        now_ms=now,
    )
    verdict = decide(state, spec.analysis)
    inputs = counts.to_dict()
    outcome = verdict.to_dict()
    if verdict.decision is Decision.CONTINUE:
        fewest = min(counts.labelled.values())
        target = "collecting" if fewest < spec.analysis.min_samples_per_arm else "analyse"
        if target == attempt.state:
            return None
        reason = (
            f"not enough data yet: {fewest} of {spec.analysis.min_samples_per_arm} labelled "
            "rows on the smaller arm"
            if target == "collecting"
            else f"enough data to judge: {verdict.reason}"
        )
        return Transition(target, reason, inputs, outcome)
    to = "promote" if verdict.decision is Decision.PROMOTE else "rollback"
    return Transition(
        to,
        f"{verdict.decision.value}: {verdict.reason}",
        inputs,
        outcome,
        data={"verdict": verdict.decision.value, "verdict_reason": verdict.reason},
    )


def _promote(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    spec = automation.spec
    ref = str(attempt.data["candidate"])
    tag = f"{_tag(attempt)} promote"
    version = context.registry.get_version(ref, project=automation.project)
    reason = str(attempt.data.get("verdict_reason", ""))
    if spec.alias not in version.aliases:
        context.registry.promote(ref, project=automation.project, alias=spec.alias, reason=reason)
    live = context.deployments.get(spec.endpoint, project=automation.project)
    if not (live.reason and tag in live.reason):
        before = context.deployments.get(
            spec.endpoint,
            project=automation.project,
            revision=int(attempt.data["previous_revision"]),
        )
        # Routes to a fixed version of this model now go to the candidate; routes to an
        # alias follow the alias just moved.
        routes = [
            Route(ref, r.weight, r.mode)
            if r.model.startswith(f"{spec.model}/") and r.mode != "shadow"
            else r
            for r in before.routes
        ]
        live = context.deployments.set(
            spec.endpoint,
            routes,
            project=automation.project,
            settings=before.settings,
            reason=f"{tag} of {ref}: {reason}",
        )
    return Transition(
        "promoted",
        f"{ref} is @{spec.alias}; revision {live.revision} serves it at 100 %",
        outcome={"revision": live.revision, "alias": spec.alias},
    )


def _rollback(context: Context, automation: Automation, attempt: Attempt) -> Transition | None:
    spec = automation.spec
    ref = str(attempt.data["candidate"])
    tag = f"{_tag(attempt)} rollback"
    inconclusive = attempt.data.get("verdict") == Decision.INCONCLUSIVE.value
    reason = str(attempt.data.get("verdict_reason", ""))
    live = context.deployments.get(spec.endpoint, project=automation.project)
    if not (live.reason and tag in live.reason):
        live = context.deployments.rollback(
            spec.endpoint,
            project=automation.project,
            to=int(attempt.data["previous_revision"]),
            reason=f"{tag} of {ref}: {reason}",
        )
    outcome: dict[str, Any] = {"revision": live.revision}
    if inconclusive:
        return Transition(
            "inconclusive",
            f"traffic restored (revision {live.revision}): {reason}",
            outcome=outcome,
        )
    version = context.registry.get_version(ref, project=automation.project)
    if version.status != "rejected":
        try:
            context.registry.reject(ref, project=automation.project, comment=reason)
            outcome["rejected"] = True
        except LoopmlError as exc:  # recorded: the traffic is restored all the same
            outcome["rejected"] = False
            outcome["reject_error"] = str(exc)
    return Transition(
        "rolled_back",
        f"revision {live.revision} restores the traffic; {ref} rejected: {reason}",
        outcome=outcome,
    )


_STEPS: dict[str, Callable[[Context, Automation, Attempt], Transition | None]] = {
    "retrain": _retrain,
    "gate": _gate,
    "approve": _approve,
    "canary": _canary,
    "collecting": _analyse,
    "analyse": _analyse,
    "promote": _promote,
    "rollback": _rollback,
}
