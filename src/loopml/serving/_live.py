"""The endpoints a server is serving, kept in step with the store: hot swap.

:class:`LiveEndpoints` holds, per endpoint, the live deployment revision, its router
and one :class:`~loopml.serving._batching.Batcher` per route. :meth:`refresh` (run
every ``poll_interval`` seconds by :meth:`watch`) reads what the store says each
endpoint should serve: the newest revision, and the version each route's reference
resolves to now (``credit@champion`` moves when a model is promoted). When that
changed, the new model versions are loaded and warmed up on their stored input
example *before* the endpoint is switched, in one assignment on the event loop.
Requests already queued keep the batcher (and model) they were given and finish
there; new requests see the new revision. A version that fails to load or to warm
up is not switched to: the endpoint keeps serving what it served, and the failure
is logged, counted in ``loopml_model_swap_failures`` and retried at the next poll.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound, LoopmlError, ModelError
from loopml.registry._client import RegistryClient
from loopml.registry._loaded import LoadedModel
from loopml.serving._batching import Batcher
from loopml.serving._deployments import Deployment, DeploymentClient
from loopml.serving._metrics import ServerMetrics
from loopml.serving._routes import Route
from loopml.serving._routing import Router
from loopml.store import Store

__all__ = ["BatcherFactory", "LiveEndpoint", "LiveEndpoints", "route_label"]

_log = logging.getLogger(__name__)

BatcherFactory = Callable[[Deployment, Route, LoadedModel], Batcher]
"""Makes the batcher of one route of a revision, for a loaded model."""


def route_label(route: Route) -> str:
    """How a route is named in the prediction log and metrics: ``canary:credit/7``."""
    return f"{route.mode}:{route.model}"


@dataclass(frozen=True)
class _Target:
    """What the store says an endpoint should serve: a revision and concrete versions."""

    deployment: Deployment
    versions: dict[str, str]  # route.model → version ref, e.g. credit@champion → credit/7

    @property
    def key(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        return self.deployment.revision, tuple(sorted(self.versions.items()))


@dataclass(frozen=True)
class LiveEndpoint:
    """One endpoint as served now."""

    target: _Target
    router: Router
    batchers: dict[str, Batcher]  # by route.model

    @property
    def deployment(self) -> Deployment:
        """The revision being served."""
        return self.target.deployment

    @functools.cached_property
    def takes_float_rows(self) -> bool:
        """Whether requests may be parsed as :class:`~loopml.serving._payloads.FloatRows`.

        True when every route's model (shadows too) takes float columns only and
        routing is not sticky (a sticky key keeps its JSON form: ``7``, not ``7.0``).
        """
        return self.deployment.settings.sticky_key is None and all(
            batcher.float_inputs for batcher in self.batchers.values()
        )

    @functools.cached_property
    def input_names(self) -> frozenset[str] | None:
        """The columns a request may hold: every route's signature inputs and the sticky key.

        None when a route's model has no input signature (any columns are taken then).
        """
        names: set[str] = set()
        for batcher in self.batchers.values():
            signature = batcher.model.signature
            if signature is None or not signature.inputs:
                return None
            names.update(signature.input_names)
        sticky = self.deployment.settings.sticky_key
        return frozenset(names if sticky is None else names | {sticky})

    def versions(self) -> list[str]:
        """The model versions answering requests (primary and canary routes)."""
        return list(dict.fromkeys(self.batchers[r.model].version for r in self.router.routes))


class LiveEndpoints:
    """The served endpoints of one project, and their hot swap.

    Args:
        store: the metadata store.
        artifacts: the artifact store (models).
        names: the endpoints to serve; None serves every endpoint of ``project``,
            including ones deployed after the server started.
        project: the project.
        trust: load executable (pickled) flavors registered by another identity.
        make_batcher: builds a route's batcher.
        metrics: the server's metrics (swaps, failures, revision).
    """

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        names: Sequence[str] | None,
        project: str,
        *,
        trust: bool,
        make_batcher: BatcherFactory,
        metrics: ServerMetrics,
    ) -> None:
        self._registry = RegistryClient(store, artifacts)
        self._deployments = DeploymentClient(store, self._registry)
        self._names = None if names is None else list(dict.fromkeys(names))
        self._project = project
        self._trust = trust
        self._make_batcher = make_batcher
        self._metrics = metrics
        self._models: dict[str, LoadedModel] = {}  # by version ref: each loads once
        self._live: dict[str, LiveEndpoint] = {}
        self._failures: dict[str, str] = {}  # endpoint → last failure reported

    def get(self, name: str) -> LiveEndpoint | None:
        """The endpoint as served now, or None."""
        return self._live.get(name)

    def names(self) -> list[str]:
        """The endpoints served, sorted."""
        return sorted(self._live)

    def batchers(self) -> list[Batcher]:
        """Every batcher of the live revisions."""
        return [b for live in self._live.values() for b in live.batchers.values()]

    def load(self) -> None:
        """Load every endpoint before the server starts (errors propagate).

        Raises:
            DeploymentNotFound: an endpoint has no deployment, or the project none.
            ModelNotFound: a route names no model version.
            ModelError: a model fails to load or to predict its input example.
        """
        targets = self._targets(strict=True)
        if not targets:
            raise DeploymentNotFound(
                f"Project {self._project!r} has no deployment to serve; "
                "see `loopml deployments set`."
            )
        for name, target in targets.items():
            assert isinstance(target, _Target)
            self._switch(name, target, self._load_models(target))

    async def refresh(self) -> list[str]:
        """Switch every endpoint whose revision or resolved versions changed.

        Returns:
            The endpoints switched.
        """
        targets = await run_in_threadpool(self._targets, strict=False)
        switched = []
        for name, target in targets.items():
            current = self._live.get(name)
            if isinstance(target, Exception):
                self._failed(name, target)
                continue
            if current is not None and current.target.key == target.key:
                continue
            try:
                models = await run_in_threadpool(self._load_models, target)
            except Exception as exc:
                self._failed(name, exc)
                continue
            self._switch(name, target, models)
            self._failures.pop(name, None)
            switched.append(name)
        if switched:
            used = {b.version for b in self.batchers()}
            self._models = {ref: m for ref, m in self._models.items() if ref in used}
            gc.freeze()  # the new models are long-lived too (see the server's start-up)
        return switched

    async def watch(self, interval: float) -> None:
        """Call :meth:`refresh` every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                _log.exception("loopml could not check the store for deployment changes")

    # -- internals --------------------------------------------------------------------

    def _targets(self, *, strict: bool) -> dict[str, _Target | Exception]:
        if self._names is None:
            deployments = self._deployments.list(project=self._project)
        else:
            deployments = []
            for name in self._names:
                try:
                    deployments.append(self._deployments.get(name, project=self._project))
                except LoopmlError:
                    if strict:
                        raise
        targets: dict[str, _Target | Exception] = {}
        for deployment in deployments:
            try:
                versions = {
                    route.model: self._registry.get_version(route.model, project=self._project).ref
                    for route in deployment.routes
                }
            except LoopmlError as exc:
                if strict:
                    raise
                targets[deployment.endpoint] = exc
                continue
            targets[deployment.endpoint] = _Target(deployment, versions)
        return targets

    def _load_models(self, target: _Target) -> dict[str, LoadedModel]:
        """Load (and warm up) the versions of ``target`` not loaded yet (worker thread)."""
        models: dict[str, LoadedModel] = {}
        for ref in dict.fromkeys(target.versions.values()):
            model = self._models.get(ref)
            if model is None:
                model = self._registry.load(ref, project=self._project, trust=self._trust)
                example = self._registry.input_example(ref, project=self._project)
                if example is not None:
                    _warm_up(model, example)
            models[ref] = model
        return models

    def _switch(self, name: str, target: _Target, models: dict[str, LoadedModel]) -> None:
        self._models.update(models)
        previous = self._live.get(name)
        same_settings = (
            previous is not None and previous.deployment.settings == target.deployment.settings
        )
        batchers: dict[str, Batcher] = {}
        for route in target.deployment.routes:
            version = target.versions[route.model]
            kept = previous.batchers.get(route.model) if previous is not None else None
            if (
                same_settings
                and kept is not None
                and kept.version == version
                and kept.route == route_label(route)
            ):
                batchers[route.model] = kept
            else:
                batchers[route.model] = self._make_batcher(
                    target.deployment, route, self._models[version]
                )
        self._live[name] = LiveEndpoint(target, Router.for_deployment(target.deployment), batchers)
        self._metrics.revision.labels(name).set(target.deployment.revision)
        if previous is not None:
            self._metrics.swaps.labels(name).inc()
            _log.info(
                "Endpoint %s now serves revision %d (%s).",
                name,
                target.deployment.revision,
                ", ".join(f"{m} → {v}" for m, v in target.versions.items()),
            )

    def _failed(self, name: str, exc: Exception) -> None:
        if self._failures.get(name) == str(exc):
            return  # reported when it first happened; retried at every poll
        self._failures[name] = str(exc)
        self._metrics.swap_failures.labels(name).inc()
        _log.error("Endpoint %s keeps its current models: %s", name, exc)


def _warm_up(model: LoadedModel, example: object) -> None:
    """Predict the input example, so the first request does not pay for lazy set-up.

    Raises:
        ModelError: the model cannot predict its own input example.
    """
    try:
        model.predict(example)
    except Exception as exc:
        raise ModelError(
            f"Model {model.version.ref} failed to predict its input example ({exc}); "
            "it is not served."
        ) from exc
