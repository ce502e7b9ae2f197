"""Routes of a deployment: parse, check, and describe them as a spec.

A route sends traffic to a model reference (``credit@champion``, ``credit/7``) in one
of three modes: ``primary`` (a weighted share among the primaries), ``canary`` (a
weighted share too, labelled as an experiment) and ``shadow`` (receives a copy of
the traffic; its answer is logged, never returned, so it has no weight). Primary
and canary weights must add up to 100.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

from loopml._names import check_name
from loopml.errors import InvalidParameter
from loopml.registry._refs import parse_model_ref

__all__ = [
    "MODES",
    "TOTAL_WEIGHT",
    "DeploymentSettings",
    "DeploymentSpec",
    "Route",
    "RouteMode",
    "as_routes",
    "check_endpoint",
    "check_routes",
    "parse_route",
]

RouteMode = Literal["primary", "canary", "shadow"]
MODES: tuple[str, ...] = get_args(RouteMode)
TOTAL_WEIGHT = 100.0

_WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Route:
    """Where a share of an endpoint's traffic goes.

    Attributes:
        model: a registry reference, ``credit@champion`` or ``credit/7``.
        weight: percentage of the traffic (primary and canary; 0 for a shadow).
        mode: ``primary``, ``canary`` or ``shadow``.

    Raises:
        InvalidParameter: a bad reference or mode, a non-positive weight on a
            primary or canary, or a weight on a shadow.
    """

    model: str
    weight: float = 0.0
    mode: RouteMode = "primary"

    def __post_init__(self) -> None:
        parse_model_ref(self.model)
        if self.mode not in MODES:
            raise InvalidParameter(
                f"The mode of route {self.model!r} must be one of {', '.join(MODES)}; "
                f"got {self.mode!r}."
            )
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
            raise InvalidParameter(
                f"The weight of route {self.model!r} must be a number; got {self.weight!r}."
            )
        object.__setattr__(self, "weight", float(self.weight))
        if self.mode == "shadow":
            if self.weight != 0:
                raise InvalidParameter(
                    f"Route {self.model!r} is a shadow: it receives a copy of the traffic and "
                    f"takes no weight; got weight {self.weight:g}."
                )
        elif not (math.isfinite(self.weight) and 0 < self.weight <= TOTAL_WEIGHT):
            raise InvalidParameter(
                f"The weight of {self.mode} route {self.model!r} must be a percentage in "
                f"(0, 100]; got {self.weight!r}."
            )

    @property
    def serves(self) -> bool:
        """Whether the route answers requests (primary or canary, not shadow)."""
        return self.mode != "shadow"

    def __str__(self) -> str:
        if self.mode == "shadow":
            return f"{self.model}:shadow"
        weight = f"{self.weight:g}"
        return (
            f"{self.model}:{weight}" if self.mode == "primary" else f"{self.model}:{weight}:canary"
        )

    def to_dict(self) -> dict[str, Any]:
        """``{model, weight, mode}``, as stored and written to YAML."""
        return {"model": self.model, "weight": self.weight, "mode": self.mode}

    @classmethod
    def from_dict(cls, data: object) -> Route:
        """Build a route from ``{model, weight, mode}`` (``mode`` defaults to primary).

        Raises:
            InvalidParameter: not a mapping, unknown keys, or bad values.
        """
        if not isinstance(data, Mapping):
            raise InvalidParameter(
                f"A route must be a mapping with model, weight and mode; got {data!r}."
            )
        unknown = set(data) - {"model", "weight", "mode"}
        if unknown:
            raise InvalidParameter(
                f"Unknown route key(s) {sorted(map(str, unknown))} in {dict(data)!r}; "
                "a route has model, weight and mode."
            )
        if "model" not in data:
            raise InvalidParameter(f"Route {dict(data)!r} has no model.")
        mode = data.get("mode", "primary")
        weight = data.get("weight")
        if weight is None:
            weight = 0.0 if mode == "shadow" else weight
        if weight is None:
            raise InvalidParameter(f"The {mode} route {data['model']!r} needs a weight.")
        return cls(str(data["model"]), weight, mode)


def parse_route(text: str) -> Route:
    """Parse ``MODEL:WEIGHT``, ``MODEL:WEIGHT:MODE`` or ``MODEL:shadow``.

    Example:
        >>> parse_route("credit/7:10:canary")
        Route(model='credit/7', weight=10.0, mode='canary')
        >>> str(parse_route("credit@champion:90"))
        'credit@champion:90'

    Raises:
        InvalidParameter: the message names the part that is wrong.
    """
    if not isinstance(text, str):
        raise InvalidParameter(f"A route must be a str; got {type(text).__name__}.")
    raw = text.strip()
    prefix = "models:/" if raw.startswith("models:/") else ""
    model, *rest = raw[len(prefix) :].split(":")
    model = prefix + model
    forms = "use MODEL:WEIGHT, MODEL:WEIGHT:canary or MODEL:shadow (e.g. credit@champion:90)"
    if not model[len(prefix) :].strip():
        raise InvalidParameter(f"Route {text!r} has no model; {forms}.")
    try:
        parse_model_ref(model)
    except InvalidParameter as exc:
        raise InvalidParameter(f"Route {text!r}: bad model {model!r}. {exc}") from None
    if not rest:
        raise InvalidParameter(f"Route {text!r} has no weight or mode; {forms}.")
    if len(rest) > 2:
        raise InvalidParameter(f"Route {text!r} has too many ':' parts; {forms}.")
    if rest == ["shadow"]:
        return Route(model, 0.0, "shadow")
    weight_text = rest[0]
    mode = rest[1] if len(rest) == 2 else "primary"
    if mode == "shadow":
        raise InvalidParameter(
            f"Route {text!r}: a shadow takes no weight ({weight_text!r}); write {model}:shadow."
        )
    if mode not in MODES:
        raise InvalidParameter(
            f"Route {text!r}: unknown mode {mode!r}; the mode is primary, canary or shadow."
        )
    try:
        weight = float(weight_text)
    except ValueError:
        raise InvalidParameter(
            f"Route {text!r}: the weight {weight_text!r} is not a number; {forms}."
        ) from None
    if not (math.isfinite(weight) and 0 < weight <= TOTAL_WEIGHT):
        raise InvalidParameter(
            f"Route {text!r}: the weight must be a percentage in (0, 100]; got {weight_text!r}."
        )
    return Route(model, weight, cast(RouteMode, mode))


@dataclass(frozen=True)
class DeploymentSettings:
    """How an endpoint serves; None leaves the server's default.

    Attributes:
        max_batch_size: most requests the server batches into one predict call.
        max_wait_ms: longest a request waits for its batch to fill.
        sticky_key: request field whose value picks the route (same value, same
            route), keeping A/B groups stable; None routes each request at random.
            A request is routed as a whole, by the value in its first row.
        log_probabilities: log every request's class probabilities (one more
            ``predict_proba`` call per batch), which estimated performance (CBPE) and
            realised ROC AUC and log loss of monitors need.
    """

    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    sticky_key: str | None = None
    log_probabilities: bool | None = None

    def __post_init__(self) -> None:
        size = self.max_batch_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise InvalidParameter(f"max_batch_size must be an int >= 1; got {size!r}.")
        wait = self.max_wait_ms
        if wait is not None:
            if isinstance(wait, bool) or not isinstance(wait, int | float):
                raise InvalidParameter(f"max_wait_ms must be a number >= 0; got {wait!r}.")
            if not (math.isfinite(wait) and wait >= 0):
                raise InvalidParameter(f"max_wait_ms must be a number >= 0; got {wait!r}.")
        key = self.sticky_key
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise InvalidParameter(f"sticky_key must be a non-empty str or None; got {key!r}.")
        logs = self.log_probabilities
        if logs is not None and not isinstance(logs, bool):
            raise InvalidParameter(f"log_probabilities must be true or false; got {logs!r}.")

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set (None values left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: object) -> DeploymentSettings:
        """Build settings from a mapping (None: defaults).

        Raises:
            InvalidParameter: not a mapping, unknown keys or bad values.
        """
        if data is None:
            return cls()
        if isinstance(data, DeploymentSettings):
            return data
        if not isinstance(data, Mapping):
            raise InvalidParameter(f"Deployment settings must be a mapping; got {data!r}.")
        known = {"max_batch_size", "max_wait_ms", "sticky_key", "log_probabilities"}
        unknown = set(data) - known
        if unknown:
            raise InvalidParameter(
                f"Unknown deployment setting(s) {sorted(map(str, unknown))}; "
                f"the settings are {', '.join(sorted(known))}."
            )
        return cls(**{str(k): v for k, v in data.items()})


@dataclass(frozen=True)
class DeploymentSpec:
    """What a user asks for: an endpoint, its routes and settings (the YAML file)."""

    endpoint: str
    routes: tuple[Route, ...]
    settings: DeploymentSettings = field(default_factory=DeploymentSettings)

    def to_dict(self) -> dict[str, Any]:
        """``{endpoint, routes: [{model, weight, mode}], settings}``."""
        return {
            "endpoint": self.endpoint,
            "routes": [r.to_dict() for r in self.routes],
            "settings": self.settings.to_dict(),
        }

    def to_yaml(self) -> str:
        """The spec as YAML text, readable by :meth:`from_yaml`."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, text: str) -> DeploymentSpec:
        """Parse a spec; routes may be mappings or strings (``credit/7:10:canary``).

        Raises:
            InvalidParameter: the YAML does not parse or does not describe a spec.
        """
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidParameter(f"The deployment spec is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise InvalidParameter(
                "A deployment spec is a mapping with endpoint, routes and settings."
            )
        unknown = set(data) - {"endpoint", "routes", "settings"}
        if unknown:
            raise InvalidParameter(
                f"Unknown key(s) {sorted(map(str, unknown))} in the deployment spec; "
                "it has endpoint, routes and settings."
            )
        routes = data.get("routes")
        if not isinstance(routes, list) or not routes:
            raise InvalidParameter("The deployment spec needs a non-empty list of routes.")
        return cls(
            endpoint=check_endpoint(data.get("endpoint")),
            routes=as_routes(routes),
            settings=DeploymentSettings.from_dict(data.get("settings")),
        )


def check_endpoint(name: object) -> str:
    """Return ``name`` if it can name an endpoint."""
    return check_name("endpoint", name)


def as_routes(routes: Iterable[Route | str | Mapping[str, Any]]) -> tuple[Route, ...]:
    """Routes from ``Route`` objects, route strings or ``{model, weight, mode}`` mappings."""
    if isinstance(routes, str | bytes):
        raise InvalidParameter("routes must be a list of routes, not one str.")
    return tuple(
        r if isinstance(r, Route) else parse_route(r) if isinstance(r, str) else Route.from_dict(r)
        for r in routes
    )


def check_routes(routes: Sequence[Route]) -> None:
    """Check a set of routes as a whole.

    Raises:
        InvalidParameter: no routes, no primary or canary, a model routed twice, or
            primary and canary weights that do not add up to 100.
    """
    if not routes:
        raise InvalidParameter("A deployment needs at least one route.")
    seen: set[str] = set()
    for route in routes:
        if route.model in seen:
            raise InvalidParameter(f"Model {route.model!r} is routed twice; route it once.")
        seen.add(route.model)
    serving = [r for r in routes if r.serves]
    if not serving:
        raise InvalidParameter(
            "A deployment needs at least one primary or canary route (shadows never answer); "
            f"got only {', '.join(repr(str(r)) for r in routes)}."
        )
    total = math.fsum(r.weight for r in serving)
    if abs(total - TOTAL_WEIGHT) > _WEIGHT_TOLERANCE:
        listed = " + ".join(f"{r.weight:g} ({r.model})" for r in serving)
        raise InvalidParameter(
            f"Primary and canary weights must add up to 100; they add up to {total:g}: {listed}."
        )
