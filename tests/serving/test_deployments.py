"""Deployments: route parsing, validation, revisions, rollback and YAML, on every back-end.

Three tiny scikit-learn versions of ``credit`` are registered in project ``p``;
``credit/1`` is ``@champion``. Refs must resolve in the registry when a revision
is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sqlalchemy import func, select

from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound, InvalidParameter, ModelNotFound
from loopml.registry import RegistryClient
from loopml.serving._deployments import Deployment, DeploymentClient
from loopml.serving._routes import DeploymentSettings, DeploymentSpec, Route, parse_route
from loopml.store import open_store, tables

ROUTES = ["credit@champion:90", "credit/2:10:canary", "credit/3:shadow"]


@pytest.fixture
def registry(store_uri: str, tmp_path: Path) -> Iterator[RegistryClient]:
    """A registry with ``credit/1`` (@champion), ``credit/2`` and ``credit/3`` in project p."""
    store = open_store(store_uri)
    registry = RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    features, target = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
    for _ in range(3):
        registry.register(DummyClassifier().fit(features, target), "credit", project="p")
    registry.promote("credit/1", project="p", force=True, reason="test setup")
    yield registry
    store.close()


@pytest.fixture
def deployments(registry: RegistryClient) -> DeploymentClient:
    """A deployment client whose refs resolve in ``registry``."""
    return DeploymentClient(registry.store, registry)


def _revision_count(client: DeploymentClient) -> int:
    with client.store.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(tables.DEPLOYMENT_REVISION)).scalar_one()
        )


# -- parse_route ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("credit@champion:90", Route("credit@champion", 90, "primary")),
        ("credit/7:10:canary", Route("credit/7", 10, "canary")),
        ("credit/7:10:primary", Route("credit/7", 10, "primary")),
        ("credit/8:shadow", Route("credit/8", 0, "shadow")),
        ("credit/7:12.5", Route("credit/7", 12.5, "primary")),
        (" credit:100 ", Route("credit", 100, "primary")),
        ("models:/credit/3:100", Route("models:/credit/3", 100, "primary")),
        ("models:/credit@champion:shadow", Route("models:/credit@champion", 0, "shadow")),
    ],
)
def test_parse_route_forms(text: str, expected: Route) -> None:
    assert parse_route(text) == expected


@pytest.mark.parametrize("text", ["credit@champion:90", "credit/7:10:canary", "credit/8:shadow"])
def test_route_str_round_trips(text: str) -> None:
    assert str(parse_route(text)) == text


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("credit@champion", "no weight or mode"),
        (":90", "no model"),
        ("cr edit:90", "bad model 'cr edit'"),
        ("credit/7:ten", "weight 'ten' is not a number"),
        ("credit/7:0", "(0, 100]; got '0'"),
        ("credit/7:-5:canary", "got '-5'"),
        ("credit/7:150", "got '150'"),
        ("credit/7:nan", "got 'nan'"),
        ("credit/7:10:blue", "unknown mode 'blue'"),
        ("credit/8:10:shadow", "shadow takes no weight ('10')"),
        ("credit/7:10:canary:x", "too many ':' parts"),
        ("credit/7:", "weight '' is not a number"),
    ],
)
def test_parse_route_bad_forms_name_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_route(text)
    assert names in str(info.value)
    assert repr(text) in str(info.value)


def test_route_checks_itself() -> None:
    with pytest.raises(InvalidParameter, match="takes no weight"):
        Route("credit/8", 5, "shadow")
    with pytest.raises(InvalidParameter, match="mode"):
        Route("credit/8", 5, "blue")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="percentage"):
        Route("credit/8", 0, "canary")
    with pytest.raises(InvalidParameter, match="number"):
        Route("credit/8", "10", "canary")  # type: ignore[arg-type]


def test_settings_are_checked() -> None:
    assert DeploymentSettings.from_dict({"max_batch_size": 8}).max_batch_size == 8
    for bad in ({"max_batch_size": 0}, {"max_wait_ms": -1}, {"sticky_key": ""}, {"colour": 1}):
        with pytest.raises(InvalidParameter):
            DeploymentSettings.from_dict(bad)


# -- set / get / history / rollback ---------------------------------------------------------


def test_set_and_get(deployments: DeploymentClient) -> None:
    made = deployments.set(
        "credit",
        ROUTES,
        project="p",
        settings={"sticky_key": "customer_id", "max_batch_size": 32, "max_wait_ms": 5},
        reason="launch",
    )
    assert made.revision == 1
    assert made.routes == tuple(parse_route(r) for r in ROUTES)
    assert made.settings == DeploymentSettings(32, 5, "customer_id")
    assert made.reason == "launch"
    assert deployments.get("credit", project="p") == made
    assert deployments.get("credit", project="p", revision=1) == made


def test_every_change_is_a_new_revision(deployments: DeploymentClient) -> None:
    first = deployments.set("credit", ["credit/1:100"], project="p")
    second = deployments.set(
        "credit", [Route("credit/1", 80), Route("credit/2", 20, "canary")], project="p"
    )
    assert (first.revision, second.revision) == (1, 2)
    assert deployments.get("credit", project="p").revision == 2
    assert deployments.get("credit", project="p", revision=1).routes == first.routes
    assert [d.revision for d in deployments.history("credit", project="p")] == [1, 2]


def test_rollback_writes_a_new_revision(deployments: DeploymentClient) -> None:
    deployments.set("credit", ["credit/1:100"], project="p", settings={"sticky_key": "k"})
    deployments.set("credit", ["credit/2:100"], project="p")
    deployments.set("credit", ["credit/3:100"], project="p")

    back = deployments.rollback("credit", project="p")
    assert back.revision == 4
    assert back.routes == (Route("credit/2", 100),)
    assert back.reason == "rollback to revision 2"

    again = deployments.rollback("credit", project="p", to=1, reason="bad canary")
    assert again.revision == 5
    assert again.routes == (Route("credit/1", 100),)
    assert again.settings.sticky_key == "k"
    assert again.reason == "rollback to revision 1: bad canary"
    history = deployments.history("credit", project="p")
    assert [str(d.routes[0]) for d in history] == [
        "credit/1:100",
        "credit/2:100",
        "credit/3:100",
        "credit/2:100",
        "credit/1:100",
    ]


def test_rollback_errors(deployments: DeploymentClient) -> None:
    deployments.set("credit", ["credit/1:100"], project="p")
    with pytest.raises(InvalidParameter, match="nothing to roll back to"):
        deployments.rollback("credit", project="p")
    deployments.set("credit", ["credit/2:100"], project="p")
    with pytest.raises(InvalidParameter, match="already live"):
        deployments.rollback("credit", project="p", to=2)
    with pytest.raises(DeploymentNotFound, match="no revision 9"):
        deployments.rollback("credit", project="p", to=9)
    assert _revision_count(deployments) == 2


def test_unknown_endpoint(deployments: DeploymentClient) -> None:
    for call in (
        lambda: deployments.get("nope", project="p"),
        lambda: deployments.history("nope", project="p"),
        lambda: deployments.rollback("nope", project="p"),
    ):
        with pytest.raises(DeploymentNotFound, match="No endpoint named 'nope'"):
            call()


def test_list_shows_live_revisions_per_project(deployments: DeploymentClient) -> None:
    deployments.set("b-endpoint", ["credit/1:100"], project="p")
    deployments.set("a-endpoint", ["credit/1:100"], project="p")
    deployments.set("a-endpoint", ["credit/2:100"], project="p")
    listed = deployments.list(project="p")
    assert [(d.endpoint, d.revision) for d in listed] == [("a-endpoint", 2), ("b-endpoint", 1)]
    assert listed[0].routes == (Route("credit/2", 100),)
    assert deployments.list(project="other") == []


@pytest.mark.parametrize(
    ("routes", "error", "message"),
    [
        (["credit/1:90", "credit/2:20:canary"], InvalidParameter, "add up to 110"),
        (["credit/1:50"], InvalidParameter, "add up to 50"),
        (["credit/3:shadow"], InvalidParameter, "at least one primary or canary"),
        ([], InvalidParameter, "at least one route"),
        (["credit/1:50", "credit/1:50:canary"], InvalidParameter, "routed twice"),
        (["credit/9:100"], ModelNotFound, "Route 'credit/9:100'"),
        (["credit@challenger:100"], ModelNotFound, "challenger"),
        (["credit/1:100", "debit/1:shadow"], ModelNotFound, "debit"),
    ],
)
def test_bad_deployments_store_nothing(
    deployments: DeploymentClient, routes: list[str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        deployments.set("credit", routes, project="p")
    assert _revision_count(deployments) == 0
    assert deployments.list(project="p") == []


def test_weights_may_be_fractions_adding_to_100(deployments: DeploymentClient) -> None:
    made = deployments.set(
        "credit", ["credit/1:33.3", "credit/2:33.3", "credit/3:33.4:canary"], project="p"
    )
    assert made.revision == 1


def test_bad_endpoint_name(deployments: DeploymentClient) -> None:
    with pytest.raises(InvalidParameter, match="endpoint name"):
        deployments.set("no spaces", ["credit/1:100"], project="p")


def test_a_resolver_callable_is_enough(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    known = {"m/1"}

    def resolve(ref: str, project: str) -> object:
        if ref not in known:
            raise ModelNotFound(f"No {ref} in {project}.")
        return ref

    client = DeploymentClient(store, resolve)
    assert client.set("e", ["m/1:100"], project="p").revision == 1
    with pytest.raises(ModelNotFound, match="Route 'm/2:100': No m/2 in p"):
        client.set("e", ["m/2:100"], project="p")
    store.close()


# -- YAML --------------------------------------------------------------------------------------


def test_yaml_round_trip(deployments: DeploymentClient) -> None:
    made = deployments.set("credit", ROUTES, project="p", settings={"sticky_key": "customer"})
    text = made.to_yaml()
    spec = DeploymentSpec.from_yaml(text)
    assert spec == made.spec
    assert "mode: canary" in text
    again = deployments.set(spec.endpoint, spec.routes, project="p", settings=spec.settings)
    assert isinstance(again, Deployment)
    assert (again.revision, again.routes, again.settings) == (2, made.routes, made.settings)


def test_yaml_accepts_route_strings_and_defaults() -> None:
    spec = DeploymentSpec.from_yaml(
        "endpoint: credit\n"
        "routes:\n"
        "  - credit@champion:90\n"
        "  - {model: credit/7, weight: 10, mode: canary}\n"
        "  - {model: credit/8, mode: shadow}\n"
    )
    assert spec.routes == (
        Route("credit@champion", 90),
        Route("credit/7", 10, "canary"),
        Route("credit/8", 0, "shadow"),
    )
    assert spec.settings == DeploymentSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("endpoint: [", "not valid YAML"),
        ("- a", "is a mapping"),
        ("endpoint: e\nroutes: []", "non-empty list of routes"),
        ("endpoint: e\nroutes: [m/1:100]\ncolour: red", "Unknown key"),
        ("endpoint: e\nroutes: [{model: m/1}]", "needs a weight"),
        ("endpoint: e\nroutes: [{model: m/1, weight: 100, tier: 1}]", "Unknown route key"),
        ("endpoint: e\nroutes: [m/1:100]\nsettings: {batch: 3}", "Unknown deployment setting"),
        ("endpoint: 'a b'\nroutes: [m/1:100]", "endpoint name"),
    ],
)
def test_bad_yaml(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        DeploymentSpec.from_yaml(text)
