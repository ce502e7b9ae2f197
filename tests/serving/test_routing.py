"""Router: weighted choice within binomial bounds, sticky keys stable everywhere, shadows apart."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import pytest

from loopml.errors import InvalidParameter
from loopml.serving._deployments import Deployment
from loopml.serving._routes import DeploymentSettings, Route, parse_route
from loopml.serving._routing import Router, key_position

ROUTES = [parse_route(r) for r in ("a@champion:70", "a/2:20", "a/3:10:canary", "a/4:shadow")]
DRAWS = 20_000
KEYS = [f"customer-{i}" for i in range(DRAWS)]


def _within_binomial_bounds(count: int, share: float, n: int = DRAWS) -> bool:
    """Whether ``count`` of ``n`` is within 5 standard deviations of ``n * share``."""
    sd = math.sqrt(n * share * (1 - share))
    return abs(count - n * share) <= 5 * sd


def _assert_split(counts: Counter[str]) -> None:
    assert set(counts) == {"a@champion", "a/2", "a/3"}  # never the shadow
    for model, share in (("a@champion", 0.7), ("a/2", 0.2), ("a/3", 0.1)):
        assert _within_binomial_bounds(counts[model], share), (model, counts)


def test_random_choice_follows_the_weights() -> None:
    router = Router(ROUTES, sticky=False, seed=7)
    _assert_split(Counter(router.choose().model for _ in range(DRAWS)))


def test_seeded_routers_agree() -> None:
    first, second = Router(ROUTES, seed=3), Router(ROUTES, seed=3)
    assert [first.choose().model for _ in range(200)] == [second.choose().model for _ in range(200)]


def test_keys_ignored_when_not_sticky() -> None:
    router = Router(ROUTES, sticky=False, seed=1)
    assert len({router.choose("same-key").model for _ in range(200)}) > 1


def test_sticky_keys_follow_the_weights() -> None:
    router = Router(ROUTES, sticky=True)
    _assert_split(Counter(router.choose(k).model for k in KEYS))


def test_sticky_keys_are_stable_across_instances() -> None:
    first, second = Router(ROUTES, sticky=True, seed=1), Router(ROUTES, sticky=True, seed=2)
    assert [first.choose(k).model for k in KEYS[:2000]] == [
        second.choose(k).model for k in KEYS[:2000]
    ]
    assert all(first.choose("k-9") == first.choose("k-9") for _ in range(50))


_CHILD = """
import json, sys
from loopml.serving._routes import parse_route
from loopml.serving._routing import Router
routes = [parse_route(r) for r in ("a@champion:70", "a/2:20", "a/3:10:canary", "a/4:shadow")]
router = Router(routes, sticky=True)
print(json.dumps([router.choose(f"customer-{i}").model for i in range(500)]))
"""


def test_sticky_keys_are_stable_across_processes() -> None:
    # A different PYTHONHASHSEED would change Python's hash(); the choice must not move.
    here = [Router(ROUTES, sticky=True).choose(k).model for k in KEYS[:500]]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        timeout=60,
    )
    assert json.loads(child.stdout) == here


def test_key_position_is_a_known_sha256_value() -> None:
    # Pinned so that a change of hashing (which would reshuffle every A/B group) is noticed.
    assert key_position("customer-1") == pytest.approx(0.161971508351279)
    assert key_position("customer-1", salt="credit") != key_position("customer-1")
    assert all(0 <= key_position(k) < 1 for k in KEYS[:1000])


def test_salt_separates_endpoints() -> None:
    plain = Router(ROUTES, sticky=True)
    salted = Router(ROUTES, sticky=True, salt="credit")
    assert [plain.choose(k) for k in KEYS[:500]] != [salted.choose(k) for k in KEYS[:500]]


def test_shadows_are_listed_not_chosen() -> None:
    router = Router(ROUTES, seed=0)
    assert router.shadows() == [Route("a/4", 0, "shadow")]
    assert [r.model for r in router.routes] == ["a@champion", "a/2", "a/3"]


def test_weights_are_normalised() -> None:
    router = Router([Route("a/1", 1), Route("a/2", 3)], sticky=False, seed=5)
    counts = Counter(router.choose().model for _ in range(DRAWS))
    assert _within_binomial_bounds(counts["a/2"], 0.75)


def test_one_route_takes_everything() -> None:
    router = Router([Route("a/1", 100), Route("a/9", 0, "shadow")], sticky=True)
    assert {router.choose(k).model for k in KEYS[:1000]} == {"a/1"}


def test_a_router_needs_a_serving_route() -> None:
    with pytest.raises(InvalidParameter, match="primary or canary"):
        Router([Route("a/4", 0, "shadow")])


def test_for_deployment_is_sticky_when_a_key_is_set() -> None:
    deployment = Deployment(
        "credit", "p", 1, tuple(ROUTES), DeploymentSettings(sticky_key="customer"), 0, None, None
    )
    router = Router.for_deployment(deployment)
    assert router.sticky
    assert router.choose("x") == Router(ROUTES, sticky=True, salt="credit").choose("x")
    plain = Deployment("credit", "p", 1, tuple(ROUTES), DeploymentSettings(), 0, None, None)
    assert not Router.for_deployment(plain).sticky
