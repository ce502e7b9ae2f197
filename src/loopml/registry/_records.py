"""Records handed out by the model registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.registry._signature import Signature

__all__ = ["AliasEvent", "Model", "ModelEvent", "ModelVersion", "PolicyResult"]

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
