"""Records handed out by the model registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml._html import Section, clip, html_table, when

if TYPE_CHECKING:
    from loopml.registry._signature import Signature

__all__ = ["AliasEvent", "EvaluationResult", "Model", "ModelEvent", "ModelVersion", "PolicyResult"]

STATUSES = ("candidate", "approved", "rejected", "archived")


@dataclass(frozen=True)
class ModelEvent:
    """A recorded change to a model: its policy set or cleared, a version archived or back.

    Attributes:
        action: ``policy_set``, ``policy_clear``, ``archive`` or ``unarchive``.
        version: the version archived or unarchived (None for policy changes).
        revision: the policy revision (1 for the first policy change; None otherwise).
        policy: the checks stored by ``policy_set`` (``{kind: ..., ...}`` entries).
        policy_text: the policy text as it was given (YAML), or None.
        status_before: the version's status before an archive or unarchive.
        reason: why, as given (always set for ``policy_clear``).
        actor: the identity that made the change.
        at: when, in milliseconds since the epoch.
    """

    action: str
    version: int | None
    revision: int | None
    policy: list[dict[str, Any]] | None
    policy_text: str | None
    status_before: str | None
    reason: str | None
    actor: str | None
    at: int


@dataclass(frozen=True)
class Model:
    """A named model: its versions' count, aliases and policy.

    ``policy_event`` is the latest change of the policy (who set or cleared it,
    when and why), or None when it was never changed since loopml records them.
    """

    name: str
    project: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    policy: list[dict[str, Any]] | None
    intended_use: str | None
    limitations: str | None
    created_at: int
    policy_event: ModelEvent | None = None


@dataclass(frozen=True)
class ModelVersion:
    """An immutable model version and everything that explains it.

    ``datasets`` are the dataset versions (``name:N``) its source run used.
    ``requirements`` are the pip requirement lines it needs (``scikit-learn==1.5.2``
    …), captured at registration; None for versions registered before loopml
    recorded them.
    """

    id: int
    name: str
    version: int
    project: str
    status: str
    flavor: str
    executable: bool
    digest: str
    onnx_digest: str | None
    signature: Signature | None
    source_run_id: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    datasets: tuple[str, ...]
    git_commit: str | None
    description: str | None
    tags: dict[str, Any]
    registered_by: str | None
    created_at: int
    aliases: tuple[str, ...] = field(default_factory=tuple)
    requirements: tuple[str, ...] | None = None

    @property
    def ref(self) -> str:
        """``name/version``."""
        return f"{self.name}/{self.version}"

    def __repr__(self) -> str:
        aliases = "".join(f" @{clip(a, 20)}" for a in self.aliases[:3])
        metrics = ", ".join(f"{clip(k, 20)}={_short(v)}" for k, v in sorted(self.metrics.items()))
        shown = f" {clip(metrics, 60)}" if metrics else ""
        return (
            f"<ModelVersion {clip(self.name)}/{self.version} {self.status} "
            f"{clip(self.flavor, 20)}{aliases}{shown}>"
        )

    def _repr_html_(self) -> str:
        return html_table(
            f"ModelVersion {self.ref}",
            [
                ("project", self.project),
                ("status", self.status),
                ("aliases", ", ".join(f"@{a}" for a in self.aliases) or None),
                ("flavor", self.flavor + (" (executable)" if self.executable else "")),
                ("source run", self.source_run_id),
                ("datasets", ", ".join(self.datasets) or None),
                ("git commit", self.git_commit),
                ("description", self.description),
                ("registered", f"{when(self.created_at)} by {self.registered_by or 'unknown'}"),
            ],
            Section("Metrics", ("metric", "value"), sorted(self.metrics.items())),
            Section("Params", ("param", "value"), sorted(self.params.items())),
            Section("Tags", ("tag", "value"), sorted(self.tags.items())),
        )


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias."""

    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    forced: bool
    reason: str | None
    actor: str | None
    at: int


@dataclass(frozen=True)
class PolicyResult:
    """A stored outcome of one policy check on one evaluation of a version."""

    evaluation: int
    dataset: str | None
    name: str
    kind: str
    passed: bool
    reason: str
    details: dict[str, Any]
    evaluated_at: int


class EvaluationResult:
    """Metrics and policy outcomes of one evaluation of a version."""

    def __init__(
        self,
        version: ModelVersion,
        evaluation: int,
        metrics: dict[str, float],
        results: list[PolicyResult],
    ) -> None:
        self.version = version
        self.evaluation = evaluation
        self.metrics = metrics
        self.results = results

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(check, reason)`` of every failing check."""
        return [(r.name, r.reason) for r in self.results if not r.passed]

    def __repr__(self) -> str:
        failed = [name for name, _ in self.failures]
        outcome = (
            f"passed {len(self.results)} checks"
            if not failed
            else f"failed {len(failed)} of {len(self.results)} checks ({clip(', '.join(failed))})"
        )
        return (
            f"<EvaluationResult {clip(self.version.name)}/{self.version.version} "
            f"evaluation {self.evaluation}: {outcome}>"
        )

    def _repr_html_(self) -> str:
        checks = [
            (r.name, r.kind, "passed" if r.passed else "FAILED", r.dataset, r.reason)
            for r in self.results
        ]
        return html_table(
            f"EvaluationResult {self.version.ref}",
            [
                ("evaluation", self.evaluation),
                ("outcome", "passed" if self.passed else f"{len(self.failures)} check(s) failed"),
                ("status", self.version.status),
            ],
            Section("Checks", ("check", "kind", "outcome", "dataset", "reason"), checks),
            Section("Metrics", ("metric", "value"), sorted(self.metrics.items())),
        )


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else clip(value, 12)
