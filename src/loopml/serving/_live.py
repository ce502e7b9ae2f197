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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound, InvalidParameter, LoopmlError, ModelError
from loopml.registry._client import RegistryClient
from loopml.registry._loaded import LoadedModel
from loopml.serving._batching import Batcher
from loopml.serving._deployments import MODEL_REVISION, Deployment, DeploymentClient
from loopml.serving._metrics import ServerMetrics
from loopml.serving._routes import Route
from loopml.serving._routing import Router
from loopml.store import Store

__all__ = ["BatcherFactory", "LiveEndpoint", "LiveEndpoints", "route_label", "swap_line"]

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
        fixed: deployments kept in memory, served besides ``names``
            (:func:`~loopml.serving._deployments.model_deployment`); their routes'
            references are followed like stored ones'.

    Raises:
        InvalidParameter: two ``fixed`` deployments, or one and a name of ``names``,
            share an endpoint name.
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
        fixed: Sequence[Deployment] = (),
    ) -> None:
        self._registry = RegistryClient(store, artifacts)
        self._deployments = DeploymentClient(store, self._registry)
        self._names = None if names is None else list(dict.fromkeys(names))
        self._fixed = {d.endpoint: d for d in fixed}
        clash = [*self._names, *self._fixed] if self._names is not None else list(self._fixed)
        if len(self._fixed) < len(fixed) or len(set(clash)) < len(clash):
            served = [d.endpoint for d in fixed] + (self._names or [])
            raise InvalidParameter(
                "Each endpoint is served once, but these are asked for more than once: "
                f"{', '.join(sorted({n for n in served if served.count(n) > 1}))} "
                "(a model is served as the endpoint of its name)."
            )
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
        for name in self._fixed:
            if name in {d.endpoint for d in self._deployments.list(project=self._project)}:
                raise InvalidParameter(
                    f"Project {self._project!r} has a deployment named {name!r}, the endpoint "
                    f"a served model {name!r} would take; serve the deployment with "
                    f"`loopml serve {name}`, or change it with `loopml deployments set`."
                )
        targets = self._targets(strict=True)
        if not targets:
            raise DeploymentNotFound(
                f"Project {self._project!r} has no deployment to serve; "
                "see `loopml deployments set`."
            )
        for name, target in targets.items():
            assert isinstance(target, _Target)
            started = time.perf_counter()
            models = self._load_models(target)
            self._switch(name, target, models, time.perf_counter() - started)

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
            started = time.perf_counter()
            try:
                models = await run_in_threadpool(self._load_models, target)
            except Exception as exc:
                self._failed(name, exc)
                continue
            self._switch(name, target, models, time.perf_counter() - started)
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
            deployments = [
                d
                for d in self._deployments.list(project=self._project)
                if d.endpoint not in self._fixed
            ]
        else:
            deployments = []
            for name in self._names:
                try:
                    deployments.append(self._deployments.get(name, project=self._project))
                except LoopmlError:
                    if strict:
                        raise
        deployments.extend(self._fixed.values())
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

    def _switch(
        self, name: str, target: _Target, models: dict[str, LoadedModel], seconds: float
    ) -> None:
        """Serve ``target`` on ``name`` from now on; ``seconds``: its models' load time."""
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
        _log.info(swap_line(name, previous.target if previous else None, target, seconds))

    def _failed(self, name: str, exc: Exception) -> None:
        if self._failures.get(name) == str(exc):
            return  # reported when it first happened; retried at every poll
        self._failures[name] = str(exc)
        self._metrics.swap_failures.labels(name).inc()
        _log.error("Endpoint %s keeps its current models: %s", name, exc)


def swap_line(name: str, old: _Target | None, new: _Target, seconds: float) -> str:
    """The one line logged when an endpoint starts serving, or swaps, its models.

    ``Endpoint credit: revision 3 → 4, credit@champion: credit/2 → credit/3 (models
    loaded and warmed up in 0.41 s).`` Only versions not loaded before are loaded.
    """
    revision = _revision(new)
    took = f"loaded and warmed up in {seconds:.2f} s"
    if old is None:
        served = ", ".join(f"{m} → {v}" for m, v in new.versions.items())
        return f"Endpoint {name} serves {revision}: {served} ({took})."
    if old.deployment.revision != new.deployment.revision:
        revision = f"{_revision(old)} → {revision}"
    changes = [
        f"{m}: {old.versions.get(m, 'new route')} → {v}"
        for m, v in new.versions.items()
        if old.versions.get(m) != v
    ]
    changes += [f"{m}: {v} → no route" for m, v in old.versions.items() if m not in new.versions]
    what = ", ".join(changes) if changes else "same model versions"
    return f"Endpoint {name}: {revision}, {what} (models {took})."


def _revision(target: _Target) -> str:
    number = target.deployment.revision
    return "no deployment" if number == MODEL_REVISION else f"revision {number}"


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
