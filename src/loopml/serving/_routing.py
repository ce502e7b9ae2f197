"""Pick a route for a request: weighted at random, or sticky on a request key.

Sticky routing hashes the key with SHA-256 (never Python's ``hash()``, which is
salted per process) into ``[0, 100)``, so the same key lands on the same route in
every process and on every machine, as long as the routes and weights stay the same.

Example:
    >>> from loopml.serving._routes import parse_route
    >>> router = Router([parse_route("a/1:90"), parse_route("a/2:10:canary")], sticky=True)
    >>> router.choose("customer-42") == router.choose("customer-42")
    True
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence

from loopml.errors import InvalidParameter
from loopml.serving._deployments import Deployment
from loopml.serving._routes import Route

__all__ = ["Router", "key_position"]

_SPAN = 2**64


def key_position(key: str, salt: str = "") -> float:
    """Where ``key`` falls in ``[0, 1)``: stable across processes, uniform over keys.

    Args:
        key: the request key (e.g. a customer id).
        salt: mixed into the hash (the endpoint name), so that one key does not land
            in the same share of every endpoint.
    """
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN


class Router:
    """Chooses among an endpoint's primary and canary routes; lists its shadows.

    Weights need not add up to 100 here: each serving route gets ``weight / total``
    of the traffic.

    Args:
        routes: the routes of one revision.
        sticky: route by the request key when one is given (same key, same route).
        seed: seed of the random choice of requests without a key (for tests).
        salt: mixed into the key hash (``for_deployment`` uses the endpoint name).

    Raises:
        InvalidParameter: no primary or canary route, or a non-positive weight.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        sticky: bool = False,
        seed: int | None = None,
        *,
        salt: str = "",
    ) -> None:
        self._serving = tuple(r for r in routes if r.serves)
        self._shadows = tuple(r for r in routes if not r.serves)
        if not self._serving:
            raise InvalidParameter("A router needs at least one primary or canary route.")
        if any(not r.weight > 0 for r in self._serving):
            raise InvalidParameter("Every primary and canary route needs a weight > 0.")
        total = sum(r.weight for r in self._serving)
        running = 0.0
        bounds = []
        for route in self._serving:
            running += route.weight
            bounds.append(running / total)
        bounds[-1] = 1.0  # no gap at the top from rounding
        self._bounds = bounds
        self.sticky = sticky
        self._salt = salt
        self._random = random.Random(seed)  # noqa: S311 - traffic splitting, not security

    @classmethod
    def for_deployment(cls, deployment: Deployment, seed: int | None = None) -> Router:
        """A router for a revision: sticky when its settings name a ``sticky_key``."""
        return cls(
            deployment.routes,
            sticky=deployment.settings.sticky_key is not None,
            seed=seed,
            salt=deployment.endpoint,
        )

    @property
    def routes(self) -> tuple[Route, ...]:
        """The primary and canary routes, in order."""
        return self._serving

    def choose(self, request_key: str | None = None) -> Route:
        """The route that answers a request.

        Args:
            request_key: the value of the sticky key in the request; when the router
                is sticky and a key is given, the choice depends on the key alone.
                Otherwise the choice is random, weighted.
        """
        if self.sticky and request_key is not None:
            position = key_position(request_key, self._salt)
        else:
            position = self._random.random()
        return self._serving[bisect.bisect_right(self._bounds, position)]

    def shadows(self) -> list[Route]:
        """The shadow routes: each receives a copy of every request."""
        return list(self._shadows)
