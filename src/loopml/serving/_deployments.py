"""Deployments: an endpoint name plus weighted routes to registry models, kept as revisions.

A route sends traffic to a model reference (``credit@champion``, ``credit/7``) in one
of three modes: ``primary`` (a weighted share among the primaries), ``canary`` (a
weighted share too, labelled as an experiment) and ``shadow`` (receives a copy of
the traffic; its answer is logged, never returned, so it has no weight). Primary
and canary weights must add up to 100.

Every change writes a new immutable revision; the newest one is live. A rollback
is a new revision copying an earlier one, so history is never rewritten.

Example:
    >>> client = DeploymentClient(store, registry)                       # doctest: +SKIP
    >>> client.set("credit", ["credit@champion:90", "credit/7:10:canary", "credit/8:shadow"],
    ...            project="p", settings={"sticky_key": "customer_id"})  # doctest: +SKIP
    >>> client.rollback("credit", project="p").revision                  # doctest: +SKIP
    2
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError

from loopml.approvals import current_identity
from loopml.errors import DeploymentNotFound, InvalidParameter, ModelNotFound, StoreError
from loopml.serving._routes import (
    DeploymentSettings,
    DeploymentSpec,
    Route,
    as_routes,
    check_endpoint,
    check_routes,
)
from loopml.store import Store, next_number, now_ms, tables

if TYPE_CHECKING:
    from loopml.registry._client import RegistryClient

__all__ = [
    "MODEL_REVISION",
    "Deployment",
    "DeploymentClient",
    "Resolver",
    "get_client",
    "model_deployment",
]

Resolver = Callable[[str, str], object]
"""``resolve(ref, project)``: raises :class:`ModelNotFound` when ``ref`` names no version."""

MODEL_REVISION = 0
"""The revision of a :func:`model_deployment` (stored revisions start at 1)."""

_WEIGHT_TOLERANCE = 1e-6
_WRITE_ATTEMPTS = 5

_project = tables.PROJECT
_deployment = tables.DEPLOYMENT
_revision = tables.DEPLOYMENT_REVISION


@dataclass(frozen=True)
class Deployment:
    """One immutable revision of an endpoint (the newest revision is live)."""

    endpoint: str
    project: str
    revision: int
    routes: tuple[Route, ...]
    settings: DeploymentSettings
    created_at: int
    actor: str | None
    reason: str | None

    @property
    def spec(self) -> DeploymentSpec:
        """The endpoint, routes and settings, without the revision's metadata."""
        return DeploymentSpec(self.endpoint, self.routes, self.settings)

    def to_yaml(self) -> str:
        """The revision's spec as YAML (``set --file`` applies it again)."""
        return self.spec.to_yaml()


class DeploymentClient:
    """Deployments of one metadata store, with model references checked by the registry.

    Args:
        store: the metadata store.
        models: a :class:`~loopml.registry.RegistryClient`, or a ``resolve(ref, project)``
            callable that raises :class:`ModelNotFound` for an unknown reference.
    """

    def __init__(self, store: Store, models: RegistryClient | Resolver) -> None:
        self.store = store
        if callable(models):
            self._resolve: Resolver = models
        else:
            registry = models
            self._resolve = lambda ref, project: registry.get_version(ref, project=project)

    def set(
        self,
        endpoint: str,
        routes: Iterable[Route | str | Mapping[str, Any]],
        *,
        project: str,
        settings: DeploymentSettings | Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> Deployment:
        """Write a new revision of ``endpoint`` (creating it), which becomes live.

        Args:
            endpoint: the endpoint name.
            routes: ``Route`` objects, strings (``credit@champion:90``) or mappings.
            project: the project.
            settings: ``max_batch_size``, ``max_wait_ms``, ``sticky_key``.
            reason: why; kept with the revision.

        Returns:
            The new revision.

        Raises:
            InvalidParameter: bad routes, weights or settings. Nothing is stored.
            ModelNotFound: a route names no model version; the message names the route.
        """
        endpoint = check_endpoint(endpoint)
        checked = as_routes(routes)
        check_routes(checked)
        parsed_settings = DeploymentSettings.from_dict(settings)
        self._check_models(checked, project)
        return self._write(endpoint, project, checked, parsed_settings, reason)

    def get(self, endpoint: str, *, project: str, revision: int | None = None) -> Deployment:
        """The live revision of ``endpoint``, or revision ``revision``.

        Raises:
            InvalidParameter: no such endpoint or revision.
        """
        with self.store.read() as conn:
            deployment_id = self._require(conn, endpoint, project)
            query = select(_revision).where(_revision.c.deployment_id == deployment_id)
            if revision is not None:
                query = query.where(_revision.c.revision == revision)
            row = conn.execute(query.order_by(_revision.c.revision.desc()).limit(1)).first()
        if row is None:
            raise DeploymentNotFound(
                f"Endpoint {endpoint!r} has no revision {revision}; "
                f"see `loopml deployments history {endpoint}`."
            )
        return _record(endpoint, project, row)

    def history(self, endpoint: str, *, project: str) -> builtins.list[Deployment]:
        """Every revision of ``endpoint``, oldest first (the last one is live).

        Raises:
            InvalidParameter: no such endpoint.
        """
        with self.store.read() as conn:
            deployment_id = self._require(conn, endpoint, project)
            rows = conn.execute(
                select(_revision)
                .where(_revision.c.deployment_id == deployment_id)
                .order_by(_revision.c.revision)
            ).all()
        return [_record(endpoint, project, r) for r in rows]

    def rollback(
        self, endpoint: str, *, project: str, to: int | None = None, reason: str | None = None
    ) -> Deployment:
        """Make an earlier revision live again, as a new revision copying it.

        Args:
            endpoint: the endpoint.
            project: the project.
            to: the revision to restore (default: the one before the live one, so two
                rollbacks in a row swap back).
            reason: why; defaults to ``rollback to revision N``.

        Raises:
            InvalidParameter: no such endpoint or revision, ``to`` is already live, or
                there is no earlier revision.
            ModelNotFound: a model the old revision routes to no longer resolves.
        """
        live = self.get(endpoint, project=project)
        target = live.revision - 1 if to is None else to
        if to is None and target < 1:
            raise InvalidParameter(
                f"Endpoint {endpoint!r} has only revision {live.revision}; nothing to roll back to."
            )
        if target == live.revision:
            raise InvalidParameter(f"Revision {target} of endpoint {endpoint!r} is already live.")
        old = self.get(endpoint, project=project, revision=target)
        self._check_models(old.routes, project)
        why = f"rollback to revision {old.revision}" + (f": {reason}" if reason else "")
        return self._write(endpoint, project, old.routes, old.settings, why)

    def list(self, *, project: str) -> builtins.list[Deployment]:
        """The live revision of every endpoint of ``project``, by endpoint name."""
        latest = (
            select(_revision.c.deployment_id, func.max(_revision.c.revision).label("revision"))
            .group_by(_revision.c.deployment_id)
            .subquery()
        )
        query = (
            select(_deployment.c.endpoint, _revision)
            .join(_project, _project.c.id == _deployment.c.project_id)
            .join(latest, latest.c.deployment_id == _deployment.c.id)
            .join(
                _revision,
                (_revision.c.deployment_id == latest.c.deployment_id)
                & (_revision.c.revision == latest.c.revision),
            )
            .where(_project.c.name == project)
            .order_by(_deployment.c.endpoint)
        )
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [_record(r.endpoint, project, r) for r in rows]

    # -- internals ---------------------------------------------------------------------------

    def _check_models(self, routes: Sequence[Route], project: str) -> None:
        for route in routes:
            try:
                self._resolve(route.model, project)
            except ModelNotFound as exc:
                raise ModelNotFound(f"Route {str(route)!r}: {exc}") from None

    def _require(self, conn: Connection, endpoint: str, project: str) -> int:
        found = conn.execute(
            select(_deployment.c.id)
            .join(_project, _project.c.id == _deployment.c.project_id)
            .where(_project.c.name == project, _deployment.c.endpoint == endpoint)
        ).scalar()
        if found is None:
            raise DeploymentNotFound(f"No endpoint named {endpoint!r} in project {project!r}.")
        return int(found)

    def _write(
        self,
        endpoint: str,
        project: str,
        routes: Sequence[Route],
        settings: DeploymentSettings,
        reason: str | None,
    ) -> Deployment:
        for _attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.store.write() as conn:
                    deployment_id = self._deployment_id(conn, endpoint, project)
                    number = next_number(
                        conn, _revision.c.revision, _revision.c.deployment_id == deployment_id
                    )
                    record = Deployment(
                        endpoint,
                        project,
                        number,
                        tuple(routes),
                        settings,
                        created_at=now_ms(),
                        actor=current_identity(),
                        reason=reason,
                    )
                    conn.execute(
                        _revision.insert().values(
                            deployment_id=deployment_id,
                            revision=number,
                            routes=[r.to_dict() for r in routes],
                            settings=settings.to_dict(),
                            reason=reason,
                            actor=record.actor,
                            created_at=record.created_at,
                        )
                    )
                return record
            except IntegrityError:
                continue  # another writer took the endpoint or the number (PostgreSQL)
        raise StoreError(f"Could not write a revision of endpoint {endpoint!r}; try again.")

    def _deployment_id(self, conn: Connection, endpoint: str, project: str) -> int:
        found = conn.execute(
            select(_deployment.c.id)
            .join(_project, _project.c.id == _deployment.c.project_id)
            .where(_project.c.name == project, _deployment.c.endpoint == endpoint)
        ).scalar()
        if found is not None:
            return int(found)
        return int(
            conn.execute(
                _deployment.insert()
                .values(
                    project_id=self.store.project_id(conn, project),
                    endpoint=endpoint,
                    created_at=now_ms(),
                )
                .returning(_deployment.c.id)
            ).scalar_one()
        )


def _record(endpoint: str, project: str, row: Row[Any]) -> Deployment:
    return Deployment(
        endpoint=endpoint,
        project=project,
        revision=int(row.revision),
        routes=tuple(Route.from_dict(r) for r in row.routes),
        settings=DeploymentSettings.from_dict(row.settings or {}),
        created_at=int(row.created_at),
        actor=row.actor,
        reason=row.reason,
    )


def model_deployment(ref: str, project: str) -> Deployment:
    """A deployment kept in memory only: one primary route to ``ref``, named after its model.

    ``loopml serve -m credit@champion`` serves it as the endpoint ``credit``, so its
    predictions are logged, labelled and read back (``predictions("credit")``) like a
    deployed endpoint's. It is never stored, so it has no history, no rollback and
    nothing to compare; its revision is :data:`MODEL_REVISION`.

    Args:
        ref: a model reference (``credit/3``, ``credit@champion``, ``models:/credit/3``).
        project: the project of the model.

    Raises:
        InvalidParameter: ``ref`` is not a model reference.
    """
    from loopml.registry._refs import parse_model_ref

    parsed = parse_model_ref(ref)
    return Deployment(
        endpoint=check_endpoint(parsed.name),
        project=project,
        revision=MODEL_REVISION,
        routes=(Route(str(parsed), 100.0, "primary"),),
        settings=DeploymentSettings(),
        created_at=now_ms(),
        actor=current_identity(),
        reason=f"loopml serve --model {parsed}",
    )


def get_client() -> DeploymentClient:
    """A deployment client over the default stores (``LOOPML_*`` settings)."""
    from loopml.registry._client import RegistryClient
    from loopml.tracking import get_client as tracking_client

    tracking = tracking_client()
    return DeploymentClient(tracking.store, RegistryClient(tracking.store, tracking.artifacts))
