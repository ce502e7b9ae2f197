"""``loopml.models``: the registry over the default stores, for scripts and notebooks."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml import settings
from loopml.store import read_only

if TYPE_CHECKING:
    from loopml.registry._client import RegistryClient
    from loopml.registry._loaded import LoadedModel
    from loopml.registry._policy import Policy
    from loopml.registry._promotion import EvaluationResult
    from loopml.registry._records import AliasEvent, Model, ModelEvent, ModelVersion
    from loopml.registry._signature import Signature

__all__ = [
    "alias_history",
    "approve",
    "archive",
    "clear_policy",
    "evaluate",
    "get",
    "get_client",
    "list_models",
    "load",
    "policy_history",
    "promote",
    "register",
    "reject",
    "rollback",
    "set_policy",
    "unarchive",
    "versions",
]


def get_client() -> RegistryClient:
    """A registry client over the default tracking client's stores."""
    from loopml.registry._client import RegistryClient
    from loopml.tracking import get_client as tracking_client

    tracking = tracking_client()
    return RegistryClient(tracking.store, tracking.artifacts)


def register(
    model: Any,
    name: str,
    *,
    project: str | None = None,
    run_id: str | None = None,
    signature: Signature | None = None,
    input_example: Any = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    convert_onnx: bool = False,
    trust: bool = False,
    extra_pip: Sequence[str] = (),
) -> ModelVersion:
    """Register ``model`` (or ``runs:/RUN_ID/model``) as the next version of ``name``.

    Inside an active run, the run is the source (params, metrics, data, commit).
    The version records the pip requirements it needs (``version.requirements``):
    its flavor's packages pinned to the installed versions, plus ``extra_pip``.

    Example:
        >>> version = loopml.models.register(clf, "credit", input_example=X[:5])  # doctest: +SKIP
        >>> version.ref
        'credit/1'
    """
    if run_id is None and not (isinstance(model, str) and model.startswith("runs:/")):
        from loopml.tracking import active_run

        run = active_run()
        run_id = None if run is None else run.id
    return get_client().register(
        model,
        name,
        project=settings.project(project),
        run_id=run_id,
        signature=signature,
        input_example=input_example,
        description=description,
        tags=tags,
        convert_onnx=convert_onnx,
        trust=trust,
        extra_pip=extra_pip,
    )


@read_only()
def load(
    ref: str,
    *,
    project: str | None = None,
    trust: bool = False,
    trusted_types: Collection[str] = (),
) -> LoadedModel:
    """Load ``credit@champion``, ``credit/3`` or ``models:/credit/3``, verified.

    ``trust=True`` is needed to run an executable (pickled) model that someone
    else registered; ``trusted_types`` names more types a scikit-learn model may
    restore (see :meth:`RegistryClient.load <loopml.registry.RegistryClient.load>`).
    """
    return get_client().load(
        ref, project=settings.project(project), trust=trust, trusted_types=trusted_types
    )


@read_only()
def get(ref: str, *, project: str | None = None) -> ModelVersion:
    """The registry record of a version."""
    return get_client().get_version(ref, project=settings.project(project))


@read_only()
def versions(name: str, *, project: str | None = None) -> list[ModelVersion]:
    """Every version of a model."""
    return get_client().list_versions(name, project=settings.project(project))


@read_only()
def list_models(*, project: str | None = None) -> list[Model]:
    """Every model of a project."""
    return get_client().list_models(project=settings.project(project))


def set_policy(
    name: str,
    policy: Policy | str | None = None,
    *,
    project: str | None = None,
    clear: bool = False,
    reason: str | None = None,
) -> Policy:
    """Store a model's promotion policy (a Policy or YAML); recorded with who and when.

    A policy without checks raises :class:`loopml.errors.EmptyPolicyError`: remove
    a policy on purpose with ``clear=True`` and a ``reason`` (or :func:`clear_policy`).
    A check naming a metric no version reports is warned about
    (:class:`loopml.errors.PolicyWarning`).

    Example:
        >>> loopml.models.set_policy("credit", "- auc >= 0.85\\n")  # doctest: +SKIP
    """
    return get_client().set_policy(
        name, policy, project=settings.project(project), clear=clear, reason=reason
    )


def clear_policy(name: str, *, reason: str, project: str | None = None) -> Policy:
    """Remove a model's promotion policy on purpose; who, when and ``reason`` are recorded.

    Example:
        >>> loopml.models.clear_policy("credit", reason="retired gate")  # doctest: +SKIP
    """
    return get_client().clear_policy(name, project=settings.project(project), reason=reason)


@read_only()
def policy_history(name: str, *, project: str | None = None) -> list[ModelEvent]:
    """Every set and clear of a model's policy, oldest first (who, when, policy, reason)."""
    return get_client().policy_history(name, project=settings.project(project))


def archive(ref: str, *, reason: str | None = None, project: str | None = None) -> ModelVersion:
    """Archive a version (``credit/2``): kept, but no longer approved, promoted or aliased.

    Raises :class:`loopml.errors.ModelError` naming the alias to move first when
    an alias points at the version.

    Example:
        >>> loopml.models.archive("credit/2", reason="superseded")  # doctest: +SKIP
    """
    return get_client().archive(ref, project=settings.project(project), reason=reason)


def unarchive(ref: str, *, reason: str | None = None, project: str | None = None) -> ModelVersion:
    """Bring an archived version back with the status it had before."""
    return get_client().unarchive(ref, project=settings.project(project), reason=reason)


def evaluate(
    ref: str,
    data: str,
    *,
    target: str,
    sensitive: Sequence[str] = (),
    project: str | None = None,
    trust: bool = False,
) -> EvaluationResult:
    """Evaluate a version on a dataset version against its model's policy.

    ``trust=True`` is needed when the candidate or the champion is an executable
    (pickled) model that someone else registered.
    """
    return get_client().evaluate(
        ref,
        data,
        project=settings.project(project),
        target=target,
        sensitive=sensitive,
        trust=trust,
    )


def approve(
    ref: str,
    *,
    comment: str | None = None,
    role: str | None = None,
    project: str | None = None,
) -> ModelVersion:
    """Approve a version as the current identity (the operating-system account).

    ``role`` makes the approval count for policy checks asking for that role; it
    is accepted only when the approver-roles file (``LOOPML_APPROVER_ROLES``) gives
    the role to the current identity, else :class:`loopml.errors.RoleNotHeld`.
    """
    return get_client().approve(ref, project=settings.project(project), comment=comment, role=role)


def reject(ref: str, *, comment: str | None = None, project: str | None = None) -> ModelVersion:
    """Reject a version, as the current identity."""
    return get_client().reject(ref, project=settings.project(project), comment=comment)


def promote(
    ref: str,
    *,
    alias: str = "champion",
    force: bool = False,
    reason: str | None = None,
    project: str | None = None,
) -> ModelVersion:
    """Move an alias to a version whose policy passes (or ``force`` with a reason)."""
    return get_client().promote(
        ref, project=settings.project(project), alias=alias, force=force, reason=reason
    )


def rollback(name: str, *, alias: str = "champion", project: str | None = None) -> ModelVersion:
    """Move an alias back to its previous version."""
    return get_client().rollback(name, project=settings.project(project), alias=alias)


@read_only()
def alias_history(
    name: str, *, alias: str | None = None, project: str | None = None
) -> list[AliasEvent]:
    """Every alias move of a model."""
    return get_client().alias_history(name, project=settings.project(project), alias=alias)
