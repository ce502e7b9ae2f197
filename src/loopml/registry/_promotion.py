"""Aliases, approvals, evaluation against the promotion policy, promotion and rollback.

Every alias move is an ``alias_event`` (who, when, from, to, why, forced); a
rollback is a move back to the version the alias pointed at before its last move.
Approvals use the shared approvals table (object kind ``model_version``), one row
per approving identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select, update

from loopml.approvals import ApprovalClient, current_identity, deciding_identity, require_role
from loopml.errors import (
    ApprovalError,
    InvalidParameter,
    ModelError,
    ModelNotFound,
    PromotionRefused,
)
from loopml.registry._measure import (
    jsonable,
    latency_p95,
    metrics_of,
    metrics_outcome,
    predictions,
)
from loopml.registry._policy import Approvals, EvaluationData
from loopml.registry._policy_ops import PolicyOps
from loopml.registry._records import AliasEvent, EvaluationResult, ModelVersion, PolicyResult
from loopml.registry._refs import check_alias, check_model_name
from loopml.store import next_number, now_ms, tables

__all__ = ["EvaluationResult", "PromotionOps"]

_model = tables.MODEL
_version = tables.MODEL_VERSION
_alias = tables.MODEL_ALIAS
_event = tables.ALIAS_EVENT
_result = tables.POLICY_RESULT
_approval = tables.APPROVAL


class PromotionOps(PolicyOps):
    """Evaluation against the promotion policy, approvals, aliases."""

    # -- approvals ---------------------------------------------------------------------------

    def approve(
        self,
        ref: str,
        *,
        project: str,
        comment: str | None = None,
        role: str | None = None,
    ) -> ModelVersion:
        """Record an approval of a version by the current identity.

        The approval is always the current identity's (the operating-system account;
        no call approves in someone else's name). With ``role`` it counts for the
        policy's approval checks that ask for that role, and is accepted only when
        the approver-roles file (``LOOPML_APPROVER_ROLES``) gives the role to the
        current identity.

        Raises:
            ApprovalError: approving twice, approving a rejected or archived version,
                approving one's own registration when the policy asks for separation of
                duties, or an unknown current identity. Nothing is changed.
            RoleNotHeld: the current identity does not hold ``role`` by configuration.
        """
        version = self.get_version(ref, project=project)
        who = deciding_identity()
        if version.status in ("rejected", "archived"):
            raise ApprovalError(f"Model {version.ref} is {version.status}; it cannot be approved.")
        if role is not None:
            if not isinstance(role, str) or not role.strip():
                raise InvalidParameter(
                    f"The 'role' parameter of approve must be a non-empty string; got {role!r}."
                )
            require_role(who, role)
        policy = self.get_policy(version.name, project=project)
        separated = [
            c.name for c in policy.checks if isinstance(c, Approvals) and c.separation_of_duties
        ]
        if separated and who == version.registered_by:
            raise ApprovalError(_self_approval(who, version, separated))
        approvals = ApprovalClient(self.store)
        gate = f"approval/{who}"
        if approvals.find("model_version", str(version.id), gate) is not None:
            raise ApprovalError(f"{who} already approved {version.ref}; approvals count once.")
        request = approvals.request(
            "model_version", str(version.id), gate, f"Promote {version.ref}", role
        )
        approvals.decide(request.id, "approved", comment=comment)
        return self.get_version(version.ref, project=project)

    def reject(self, ref: str, *, project: str, comment: str | None = None) -> ModelVersion:
        """Reject a version, as the current identity: it can no longer be approved or promoted.

        Raises:
            ApprovalError: the version is already rejected, an alias points at it, or
                the current identity is unknown.
        """
        version = self.get_version(ref, project=project)
        if version.status == "rejected":
            raise ApprovalError(f"Model {version.ref} is already rejected.")
        if version.aliases:
            raise ApprovalError(
                f"Model {version.ref} is @{', @'.join(version.aliases)}; move the alias first "
                "(promote another version, or roll back), then reject it."
            )
        who = deciding_identity()
        approvals = ApprovalClient(self.store)
        request = approvals.request(
            "model_version", str(version.id), f"rejection/{who}", f"Promote {version.ref}"
        )
        approvals.decide(request.id, "rejected", comment=comment)
        with self.store.write() as conn:
            conn.execute(
                update(_version).where(_version.c.id == version.id).values(status="rejected")
            )
        return self.get_version(version.ref, project=project)

    def approvals_of(self, version: ModelVersion) -> list[tuple[str, str | None]]:
        """``(identity, role)`` of everyone who approved ``version``."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(_approval.c.decided_by, _approval.c.approvers_role).where(
                    _approval.c.object_kind == "model_version",
                    _approval.c.object_id == str(version.id),
                    _approval.c.status == "approved",
                )
            )
            return [(str(who), role) for who, role in rows]

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(
        self,
        ref: str,
        data: str,
        *,
        project: str,
        target: str,
        sensitive: Sequence[str] = (),
        champion: str | None = "champion",
        trust: bool = False,
    ) -> EvaluationResult:
        """Compute metrics on a dataset version and run the model's policy; store the results.

        Args:
            ref: the candidate version.
            data: a dataset reference (``credit-test:1``) holding the features and the
                ``target`` column.
            project: project of both.
            target: the label column.
            sensitive: columns the fairness checks group by.
            champion: the alias the candidate must beat (None: no comparison, and a
                ``beats_champion`` check fails). When the alias already points at
                ``ref``, that check passes and its reason says so.
            trust: load executable (pickled) versions someone else registered, the
                candidate's and the champion's alike (see ``load``).

        Raises:
            ModelNotFound, DatasetNotFound: unknown version or data.
            InvalidParameter: ``target`` or a sensitive column is not in the data.
            UntrustedModelError: an executable version someone else registered,
                without ``trust``.
        """
        from loopml.data import DataClient

        version = self.get_version(ref, project=project)
        frame = DataClient(self.store, self.artifacts).load(data, project=project)
        for column in (target, *sensitive):
            if column not in frame.columns:
                raise InvalidParameter(
                    f"Column {column!r} is not in dataset {data!r} "
                    f"(columns: {list(frame.columns)})."
                )
        y_true = frame[target].to_numpy()
        features = frame.drop(columns=[target])
        candidate = self.load(version.ref, project=project, trust=trust)
        pred, proba = predictions(candidate, features)
        metrics = metrics_of(y_true, pred, proba)
        champion_pred = champion_proba = None
        champion_metrics = None
        is_champion = False
        if champion is not None:
            try:
                other = self.get_version(f"{version.name}@{champion}", project=project)
            except ModelNotFound:
                other = None
            is_champion = other is not None and other.id == version.id
            if other is not None and not is_champion:
                loaded = self.load(other.ref, project=project, trust=trust)
                champion_pred, champion_proba = predictions(loaded, features)
                champion_metrics = metrics_of(y_true, champion_pred, champion_proba)
        evaluation = EvaluationData(
            y_true=y_true,
            candidate_pred=pred,
            candidate_proba=proba,
            champion_pred=champion_pred,
            champion_proba=champion_proba,
            groups={c: frame[c].to_numpy() for c in sensitive},
            metrics=metrics,
            champion_metrics=champion_metrics,
            training_data_passed=self._training_data_passed(version),
            latency_p95_ms=latency_p95(candidate, features),
            approvals=self.approvals_of(version),
            registered_by=version.registered_by,
            champion_alias=champion,
            candidate_is_champion=is_champion,
        )
        policy = self.get_policy(version.name, project=project)
        outcomes = [metrics_outcome(data, y_true, pred, proba, metrics)]
        outcomes += policy.evaluate(evaluation)
        stored = self._store_results(version, data, outcomes)
        return EvaluationResult(version, stored[0].evaluation if stored else 0, metrics, stored)

    def _training_data_passed(self, version: ModelVersion) -> bool | None:
        if not version.datasets:
            return None
        from loopml.data import DataClient

        data = DataClient(self.store, self.artifacts)
        verdicts = []
        for ref in version.datasets:
            try:
                verdicts.append(data.get_version(ref, project=version.project).report_passed)
            except LookupError:
                verdicts.append(None)
        if any(v is False for v in verdicts):
            return False
        # An unchecked dataset is not a passed one: without every report, no verdict.
        return None if any(v is None for v in verdicts) else True

    def _store_results(
        self, version: ModelVersion, dataset: str | None, outcomes: Sequence[Any]
    ) -> list[PolicyResult]:
        now = now_ms()
        with self.store.write() as conn:
            evaluation = next_number(conn, _result.c.evaluation, _result.c.version_id == version.id)
            rows = [
                {
                    "version_id": version.id,
                    "evaluation": evaluation,
                    "dataset": dataset,
                    "name": o.name,
                    "kind": o.kind,
                    "passed": bool(o.passed),
                    "reason": o.reason,
                    "details": jsonable(o.details),
                    "evaluated_at": now,
                }
                for o in outcomes
            ]
            if rows:
                conn.execute(_result.insert(), rows)
            else:
                conn.execute(
                    _result.insert().values(
                        version_id=version.id,
                        evaluation=evaluation,
                        dataset=dataset,
                        name="no policy",
                        kind="none",
                        passed=True,
                        reason="the model has no promotion policy",
                        details={},
                        evaluated_at=now,
                    )
                )
        return self.policy_results(version)

    def evaluation_metrics(self, version: ModelVersion) -> dict[str, dict[str, Any]]:
        """Metrics of the latest evaluation: ``{name: {value, low, high, confidence}}``."""
        with self.store.read() as conn:
            row = conn.execute(
                select(_result.c.details)
                .where(_result.c.version_id == version.id, _result.c.kind == "evaluation")
                .order_by(_result.c.evaluation.desc())
                .limit(1)
            ).first()
        return dict((row.details or {}).get("metrics", {})) if row is not None else {}

    def policy_results(self, version: ModelVersion) -> list[PolicyResult]:
        """The check results of the latest evaluation of ``version`` (empty if never evaluated)."""
        with self.store.read() as conn:
            latest = conn.execute(
                select(func.max(_result.c.evaluation)).where(_result.c.version_id == version.id)
            ).scalar()
            if latest is None:
                return []
            rows = conn.execute(
                select(_result)
                .where(
                    _result.c.version_id == version.id,
                    _result.c.evaluation == latest,
                    _result.c.kind != "evaluation",
                )
                .order_by(_result.c.id)
            )
            return [
                PolicyResult(
                    r.evaluation,
                    r.dataset,
                    r.name,
                    r.kind,
                    r.passed,
                    r.reason,
                    dict(r.details),
                    r.evaluated_at,
                )
                for r in rows
            ]

    # -- aliases -----------------------------------------------------------------------------

    def promote(
        self,
        ref: str,
        *,
        project: str,
        alias: str = "champion",
        force: bool = False,
        reason: str | None = None,
    ) -> ModelVersion:
        """Point ``alias`` at a version, if its promotion policy passes.

        The latest evaluation must have passed every check, and the approval checks
        are re-counted now (approvals often come after the evaluation). ``force``
        skips the policy but needs a ``reason``, and is recorded as forced.

        Raises:
            PromotionRefused: the policy fails (every failing check is listed), or the
                version was never evaluated while the model has a policy.
            ModelError: a rejected or archived version, or ``force`` without a reason.
        """
        check_alias(alias)
        version = self.get_version(ref, project=project)
        _check_promotable(version)
        if force and not (reason and reason.strip()):
            raise ModelError("A forced promotion needs a reason (--reason …); it is recorded.")
        if not force:
            failures = self._promotion_failures(version, project)
            if failures:
                listed = "; ".join(f"{name}: {why}" for name, why in failures)
                raise PromotionRefused(
                    f"Cannot promote {version.ref} to @{alias}: {listed}", failures
                )
        self._move(version, alias, "promote", forced=force, reason=reason)
        with self.store.write() as conn:
            conn.execute(
                update(_version)
                .where(_version.c.id == version.id, _version.c.status == "candidate")
                .values(status="approved")
            )
        return self.get_version(version.ref, project=project)

    def _promotion_failures(self, version: ModelVersion, project: str) -> list[tuple[str, str]]:
        policy = self.get_policy(version.name, project=project)
        if not policy.checks:
            return []
        results = self.policy_results(version)
        if not results:
            return [("evaluation", f"{version.ref} has not been evaluated; run evaluate first")]
        failures = [(r.name, r.reason) for r in results if not r.passed and r.kind != "approvals"]
        evaluated = {r.name for r in results}
        for check in policy.checks:
            if check.kind != "approvals" and check.name not in evaluated:
                failures.append(
                    (check.name, "added to the policy after the last evaluation; evaluate again")
                )
        fresh = EvaluationData.for_approvals(self.approvals_of(version), version.registered_by)
        for check in policy.checks:
            if isinstance(check, Approvals):
                outcome = check.evaluate(fresh)
                if not outcome.passed:
                    failures.append((outcome.name, outcome.reason))
        return failures

    def rollback(self, name: str, *, project: str, alias: str = "champion") -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last move.

        Raises:
            ModelError: the alias has no earlier target.
        """
        check_alias(alias)
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            last = conn.execute(
                select(_event)
                .where(_event.c.model_id == model_id, _event.c.alias == alias)
                .order_by(_event.c.id.desc())
                .limit(1)
            ).first()
        if last is None or last.from_version_id is None:
            raise ModelError(f"@{alias} of model {name!r} has no earlier version to roll back to.")
        with self.store.read() as conn:
            number = conn.execute(
                select(_version.c.version).where(_version.c.id == last.from_version_id)
            ).scalar_one()
        target = self.get_version(f"{name}/{number}", project=project)
        if target.status in ("rejected", "archived"):
            raise ModelError(
                f"@{alias} of model {name!r} pointed at {target.ref} before, which is now "
                f"{target.status}; promote another version instead."
            )
        self._move(target, alias, "rollback", forced=False, reason=f"rollback of event {last.id}")
        return self.get_version(target.ref, project=project)

    def alias_history(
        self, name: str, *, project: str, alias: str | None = None
    ) -> list[AliasEvent]:
        """Every alias move of a model, oldest first."""
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            numbers = dict(
                conn.execute(
                    select(_version.c.id, _version.c.version).where(_version.c.model_id == model_id)
                ).all()
            )
            query = select(_event).where(_event.c.model_id == model_id).order_by(_event.c.id)
            if alias is not None:
                query = query.where(_event.c.alias == alias)
            return [
                AliasEvent(
                    alias=r.alias,
                    action=r.action,
                    from_version=numbers.get(r.from_version_id),
                    to_version=numbers.get(r.to_version_id),
                    forced=r.forced,
                    reason=r.reason,
                    actor=r.actor,
                    at=r.at,
                )
                for r in conn.execute(query)
            ]

    def _move(
        self, version: ModelVersion, alias: str, action: str, *, forced: bool, reason: str | None
    ) -> None:
        now = now_ms()
        with self.store.write() as conn:
            # Locked, so that an archive or reject cannot slip in between (PostgreSQL).
            row = conn.execute(
                select(_version.c.model_id, _version.c.status)
                .where(_version.c.id == version.id)
                .with_for_update()
            ).one()
            _check_promotable(replace(version, status=row.status))
            model_id = row.model_id
            current = conn.execute(
                select(_alias.c.version_id).where(
                    _alias.c.model_id == model_id, _alias.c.alias == alias
                )
            ).scalar()
            if current == version.id:
                return  # already there: not a move, nothing to roll back
            if current is None:
                conn.execute(
                    _alias.insert().values(
                        model_id=model_id, alias=alias, version_id=version.id, updated_at=now
                    )
                )
            else:
                conn.execute(
                    update(_alias)
                    .where(_alias.c.model_id == model_id, _alias.c.alias == alias)
                    .values(version_id=version.id, updated_at=now)
                )
            conn.execute(
                _event.insert().values(
                    model_id=model_id,
                    alias=alias,
                    from_version_id=current,
                    to_version_id=version.id,
                    action=action,
                    forced=forced,
                    reason=reason,
                    actor=current_identity(),
                    at=now,
                )
            )


def _check_promotable(version: ModelVersion) -> None:
    """Refuse to point an alias at a rejected or archived version, saying what to do."""
    if version.status == "archived":
        raise ModelError(
            f"Model {version.ref} is archived; an archived version cannot be promoted or "
            f"hold an alias. Unarchive it first (loopml.models.unarchive({version.ref!r}), "
            f"'loopml models unarchive {version.ref}'), or promote another version."
        )
    if version.status == "rejected":
        raise ModelError(f"Model {version.ref} is rejected; it cannot be promoted.")


def _self_approval(who: str, version: ModelVersion, checks: Sequence[str]) -> str:
    """Why a self-approval is refused, and the two ways forward."""
    named = ", ".join(repr(c) for c in checks)
    return (
        f"{who} registered {version.ref}, and the policy of model {version.name!r} asks for "
        f"separation of duties (check {named}), so {who} cannot approve it. Way forward: "
        f"another identity approves it ('loopml models approve {version.ref}' run by a "
        "teammate), or the policy's owner drops the rule: set separation_of_duties: false "
        f"in that check and store the policy again ('loopml models policy {version.name} "
        "--set FILE')."
    )
