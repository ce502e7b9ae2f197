"""Setting, clearing and reading a model's promotion policy, with its recorded history.

A gate must not vanish by accident: a policy without checks (an empty file,
``[]``, only comments) is refused with :class:`~loopml.errors.EmptyPolicyError`,
and removing the policy is a separate, deliberate act (:meth:`PolicyOps.clear_policy`)
that needs a reason. Every set and every clear is a ``model_event`` (who, when, the
policy and its text, or the reason), written in the same transaction as the change.

``set_policy`` also warns (:class:`~loopml.errors.PolicyWarning`) about metrics
that no version of the model has reported and that evaluation does not compute:
such a check can only fail, and the usual cause is a typo.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import Connection, select, update

from loopml.errors import EmptyPolicyError, InvalidParameter, ModelError, PolicyWarning
from loopml.registry._base import RegistryBase
from loopml.registry._events import (
    POLICY_ACTIONS,
    check_reason,
    events_of,
    latest_event,
    record_event,
)
from loopml.registry._policy import MetricThreshold, Policy
from loopml.registry._records import ModelEvent
from loopml.registry._refs import check_model_name
from loopml.store import next_number, tables

__all__ = ["MAX_POLICY_TEXT", "PolicyOps", "unknown_metric_messages"]

_model = tables.MODEL
_version = tables.MODEL_VERSION
_result = tables.POLICY_RESULT
_event = tables.MODEL_EVENT

MAX_POLICY_TEXT = 256 * 1024
"""The longest policy text accepted, in characters (a policy is a short list of checks)."""

_EVALUATIONS_READ = 1000  # the newest evaluations whose metric names count as reported
_PACKAGE = str(Path(__file__).resolve().parents[1])


class PolicyOps(RegistryBase):
    """A model's promotion policy: set (never empty), clear (with a reason), read, history."""

    def set_policy(
        self,
        name: str,
        policy: Policy | str | None = None,
        *,
        project: str,
        clear: bool = False,
        reason: str | None = None,
    ) -> Policy:
        """Store the promotion policy of a model (a Policy, or its YAML text).

        The change is recorded (who, when, the policy and its text); ``reason`` is
        kept with it. A check naming a metric that no version of the model has
        reported, and that evaluation does not compute, is stored but warned about
        with :class:`~loopml.errors.PolicyWarning`.

        Args:
            name: the model.
            policy: the policy, or its YAML text (at most 256 KiB).
            project: project.
            clear: remove the policy instead (``policy`` must then be None): the
                same as :meth:`clear_policy`, which needs ``reason``.
            reason: why; required with ``clear``.

        Returns:
            The stored policy (empty after a clear).

        Raises:
            EmptyPolicyError: the policy has no checks (an empty file, ``[]``, only
                comments); nothing is changed. Use ``clear`` to remove a policy.
            ModelError: the YAML does not describe a valid policy.
            ModelNotFound: no model ``name``.
            InvalidParameter: ``clear`` with a policy, or a bad ``reason``.
        """
        if clear:
            if policy is not None:
                raise InvalidParameter(
                    "set_policy(clear=True) removes the policy; pass no policy with it."
                )
            return self.clear_policy(name, project=project, reason=reason)
        check_model_name(name)
        parsed, text = _parse(name, policy)
        why = check_reason(reason, what="a policy change", required=False)
        with self.store.write() as conn:
            model_id = self._lock_model(conn, name, project)
            conn.execute(
                update(_model)
                .where(_model.c.id == model_id)
                .values(policy=parsed.to_dict()["checks"])
            )
            record_event(
                conn,
                model_id,
                "policy_set",
                revision=_next_revision(conn, model_id),
                policy=parsed.to_dict()["checks"],
                policy_text=text,
                reason=why,
            )
            reported = self._reported_metrics(conn, model_id)
        for message in unknown_metric_messages(name, parsed, *reported):
            warnings.warn(message, PolicyWarning, stacklevel=_outside_loopml())
        return parsed

    def clear_policy(self, name: str, *, project: str, reason: str | None) -> Policy:
        """Remove a model's promotion policy on purpose, recording who, when and why.

        After a clear, any evaluated or unevaluated version can be promoted, so the
        reason is required and shown wherever the policy is (``models policy``,
        ``models show``, ``models history``).

        Raises:
            InvalidParameter: ``reason`` is missing or blank.
            ModelError: the model has no policy to clear.
            ModelNotFound: no model ``name``.
        """
        check_model_name(name)
        why = check_reason(reason, what="clearing a promotion policy", required=True)
        with self.store.write() as conn:
            model_id = self._lock_model(conn, name, project)
            stored = conn.execute(select(_model.c.policy).where(_model.c.id == model_id)).scalar()
            if not stored:
                raise ModelError(
                    f"Model {name!r} has no promotion policy; there is nothing to clear."
                )
            conn.execute(update(_model).where(_model.c.id == model_id).values(policy=None))
            record_event(
                conn,
                model_id,
                "policy_clear",
                revision=_next_revision(conn, model_id),
                reason=why,
            )
        return Policy([])

    def get_policy(self, name: str, *, project: str) -> Policy:
        """The model's promotion policy (empty when none was set, or it was cleared)."""
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            stored = conn.execute(select(_model.c.policy).where(_model.c.id == model_id)).scalar()
        return Policy.from_dict({"checks": stored or []})

    def policy_history(self, name: str, *, project: str) -> list[ModelEvent]:
        """Every recorded set and clear of a model's policy, oldest first."""
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            return events_of(conn, model_id, POLICY_ACTIONS)

    def model_events(self, name: str, *, project: str) -> list[ModelEvent]:
        """Every recorded change of a model (policy, archiving), oldest first."""
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            return events_of(conn, model_id)

    def last_policy_event(self, conn: Connection, model_id: int) -> ModelEvent | None:
        """The newest set or clear of the model's policy, or None."""
        return latest_event(conn, model_id, POLICY_ACTIONS)

    def _lock_model(self, conn: Connection, name: str, project: str) -> int:
        """The model's id, its row locked for this transaction (PostgreSQL)."""
        model_id = self._require_model(conn, name, project)
        conn.execute(select(_model.c.id).where(_model.c.id == model_id).with_for_update())
        return model_id

    def _reported_metrics(self, conn: Connection, model_id: int) -> tuple[set[str], set[str]]:
        """``(evaluated, from_runs)``: metric names the model's versions have reported."""
        version_ids = select(_version.c.id).where(_version.c.model_id == model_id)
        evaluated: set[str] = set()
        for details in conn.execute(
            select(_result.c.details)
            .where(_result.c.version_id.in_(version_ids), _result.c.kind == "evaluation")
            .order_by(_result.c.id.desc())
            .limit(_EVALUATIONS_READ)
        ).scalars():
            metrics = (details or {}).get("metrics") if isinstance(details, dict) else None
            if isinstance(metrics, dict):
                evaluated.update(str(k) for k in metrics)
        from_runs: set[str] = set()
        for metrics in conn.execute(
            select(_version.c.metrics).where(_version.c.model_id == model_id)
        ).scalars():
            if isinstance(metrics, dict):
                from_runs.update(str(k) for k in metrics)
        return evaluated, from_runs


def _parse(name: str, policy: object) -> tuple[Policy, str]:
    """The policy and its text; refuses text that is too long or a policy with no check."""
    if isinstance(policy, str):
        if len(policy) > MAX_POLICY_TEXT:
            raise ModelError(
                f"The policy text for model {name!r} is {len(policy):,} characters long; "
                f"at most {MAX_POLICY_TEXT:,} (a policy is a short list of checks)."
            )
        parsed, text = Policy.from_yaml(policy), policy
    elif isinstance(policy, Policy):
        parsed, text = policy, policy.to_yaml()
    else:
        raise InvalidParameter(
            "The 'policy' parameter of set_policy must be a Policy or its YAML text. "
            f"Got {type(policy).__name__} instead."
        )
    if not parsed.checks:
        raise EmptyPolicyError(
            f"The policy given for model {name!r} has no checks (an empty file, [] or only "
            "comments); stored, it would let any version be promoted, so nothing was "
            "changed. To remove the promotion gate on purpose, clear it with a reason: "
            f"loopml.models.clear_policy({name!r}, reason='...') or "
            f"'loopml models policy {name} --clear --reason \"...\"'."
        )
    return parsed, text


def _outside_loopml() -> int:
    """The ``stacklevel`` of the nearest caller outside loopml, for a warning to point at."""
    level = 1
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the frame that warns: level 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def _next_revision(conn: Connection, model_id: int) -> int:
    return next_number(conn, _event.c.revision, _event.c.model_id == model_id)


def unknown_metric_messages(
    name: str, policy: Policy, evaluated: Iterable[str], from_runs: Iterable[str]
) -> list[str]:
    """One message per check whose metric evaluation will not find.

    A threshold is read from the evaluation's metrics, which are the named metrics
    loopml computes (``accuracy``, ``auc`` …) plus whatever earlier evaluations
    measured; a source run's own metrics (``val_auc``) are never evaluated.

    Args:
        name: the model.
        policy: the policy being stored.
        evaluated: metric names earlier evaluations of the model's versions measured.
        from_runs: metric names the versions' source runs logged.

    Returns:
        The messages, one per unknown metric (none when every metric is known).
    """
    from loopml.registry._stats import METRICS

    evaluable = set(METRICS) | set(evaluated)
    runs = set(from_runs)
    reported = sorted(set(evaluated) | runs)
    messages = []
    for check in policy.checks:
        if not isinstance(check, MetricThreshold) or check.metric in evaluable:
            continue
        metric = check.metric
        hint = _closest(metric, sorted(evaluable))
        listed = ", ".join(reported) if reported else "none yet"
        computed = ", ".join(sorted(METRICS))
        if metric in runs:
            problem = (
                f"which the versions' training runs logged, but evaluation measures a "
                f"version on the evaluation data and does not compute {metric!r}, so the "
                "check will fail"
            )
        else:
            problem = (
                "which no version has reported and evaluation does not compute, so the "
                "check will fail"
            )
        messages.append(
            f"Policy check {check.name!r} of model {name!r} names the metric {metric!r}, "
            f"{problem}.{hint} Metrics the versions report: {listed}; evaluation computes: "
            f"{computed}."
        )
    return messages


def _closest(metric: str, candidates: Sequence[str]) -> str:
    folded = {c.lower(): c for c in candidates}
    if metric.lower() in folded:
        return f" Did you mean {folded[metric.lower()]!r}?"
    close = difflib.get_close_matches(metric, candidates, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
