"""The continuous-training automation (issue 15): an attempt as a stored state machine on a
real store — a real training pipeline run in a child process that registers an sklearn
model, the model's promotion policy, a deployment, live traffic in the prediction log with
feedback — ending promoted, rolled back, or stopped at the gate; and a new scheduler
resuming an attempt in the middle of its analysis."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.automation import Action, Scheduler, TriggerSpec, TriggerStore
from loopml.automation._automation_store import AutomationStore
from loopml.automation._automations import AutomationSpec
from loopml.automation._driver import AttemptDriver
from loopml.automation._sequential import CanaryPolicy
from loopml.data import DataClient
from loopml.errors import InvalidParameter
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient
from loopml.serving._feedback import record_feedback
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.tracking import TrackingClient, get_client

pytestmark = pytest.mark.slow

P = "p"
ENDPOINT = "credit-api"
TRAIN = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import loopml


@loopml.step
def fit(flip: int) -> str:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["x0", "x1"])
    y = ((frame.x0 + frame.x1) > 0).astype(int)
    model = LogisticRegression().fit(frame, 1 - y if int(flip) else y)
    return loopml.models.register(model, "credit", input_example=frame.head(2)).ref


@loopml.pipeline
def training(flip: int = 0):
    fit(flip=flip)
"""


def _default_stores(
    monkeypatch: pytest.MonkeyPatch, store_uri: str, tmp_path: Path
) -> TrackingClient:
    """Point the default stores (which the pipeline's child process uses too) at this test's."""
    monkeypatch.setenv("LOOPML_STORE_URI", store_uri)
    monkeypatch.setenv("LOOPML_ARTIFACT_URI", str(tmp_path / "artifacts"))
    monkeypatch.setenv("LOOPML_PROJECT", P)
    tracking = get_client()
    with tracking.store.write() as connection:
        tracking.store.project_id(connection, P)
    return tracking


def _frame(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 2)), columns=["x0", "x1"])
    frame["y"] = ((frame.x0 + frame.x1) > 0).astype(int)
    return frame


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch, store_uri: str, tmp_path: Path
) -> Iterator[tuple[TrackingClient, AttemptDriver, Path]]:
    """Default stores, an evaluation set, champion v1 behind the endpoint, a policy."""
    tracking = _default_stores(monkeypatch, store_uri, tmp_path)
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    data = DataClient(tracking.store, tracking.artifacts)
    data.register("credit-test", _frame(2, 200), project=P)
    registry = RegistryClient(tracking.store, tracking.artifacts)
    train = _frame(3, 300)
    champion = LogisticRegression().fit(train[["x0", "x1"]], train.y)
    v1 = registry.register(champion, "credit", project=P, input_example=train[["x0", "x1"]][:2])
    registry.set_policy("credit", "- accuracy >= 0.8\n", project=P)
    registry.evaluate(v1.ref, "credit-test:1", project=P, target="y")
    registry.promote(v1.ref, project=P)
    DeploymentClient(tracking.store, registry).set(ENDPOINT, ["credit@champion:100"], project=P)
    AutomationStore(tracking.store).create(
        AutomationSpec(
            name="credit-ct",
            model="credit",
            endpoint=ENDPOINT,
            pipeline=f"{tmp_path / 'train.py'}:training",
            params={"flip": "{event.flip}"},
            evaluation_data="credit-test:1",
            target="y",
            canary_share=20,
            analysis=CanaryPolicy(alpha=0.05, margins={"accuracy": 0.02}, min_samples_per_arm=200),
        ),
        project=P,
    )
    driver = AttemptDriver(tracking.store, tracking.artifacts, trusted=lambda by: True)
    yield tracking, driver, tmp_path


def _start(tracking: TrackingClient, key: str, flip: int) -> int:
    events = [{"key": key, "data": {"flip": str(flip)}}]
    return AutomationStore(tracking.store).start("credit-ct", project=P, key=key, events=events).id


def _run_until(driver: AttemptDriver, attempt_id: int, state: str, steps: int = 10) -> str:
    automations = AutomationStore(driver.store)
    for _ in range(steps):
        current = automations.attempt(attempt_id).state
        if current == state:
            return current
        driver.step(attempt_id)
    return automations.attempt(attempt_id).state


def _traffic(
    tracking: TrackingClient, folder: Path, candidate: str, rows: int, accuracy: dict[str, float]
) -> None:
    """``rows`` labelled requests per arm, right with the given probability per arm."""
    rng = random.Random(7)
    records, labels = [], []
    for version, route in (
        ("credit/1", "primary:credit@champion"),
        (candidate, f"canary:{candidate}"),
    ):
        arm = "candidate" if version == candidate else "champion"
        for i in range(rows):
            request_id = f"{arm}-{folder.name}-{i}"
            records.append(
                PredictionRecord(request_id, ENDPOINT, route, version, {"x0": 0.1}, 1, 2.0)
            )
            labels.append((request_id, 1 if rng.random() < accuracy[arm] else 0))
    with PredictionLog(folder, tracking.store, tracking.artifacts, "h") as log:
        log.append_many(records)
        log.flush()
    record_feedback(tracking.store, ENDPOINT, labels)


def test_a_better_candidate_is_retrained_gated_canaried_and_promoted(
    world: tuple[TrackingClient, AttemptDriver, Path],
) -> None:
    tracking, driver, tmp_path = world
    attempt_id = _start(tracking, "firing-1", flip=0)
    assert _run_until(driver, attempt_id, "collecting") == "collecting"
    automations = AutomationStore(tracking.store)
    attempt = automations.attempt(attempt_id)
    assert attempt.data["candidate"] == "credit/2"
    deployments = DeploymentClient(
        tracking.store, RegistryClient(tracking.store, tracking.artifacts)
    )
    live = deployments.get(ENDPOINT, project=P)
    assert {(r.model, r.weight, r.mode) for r in live.routes} == {
        ("credit@champion", 80.0, "primary"),
        ("credit/2", 20.0, "canary"),
    }
    assert driver.step(attempt_id) is None  # no traffic yet: still collecting, nothing recorded
    _traffic(tracking, tmp_path / "log", "credit/2", 400, {"champion": 0.8, "candidate": 0.95})
    assert _run_until(driver, attempt_id, "promoted") == "promoted"
    registry = RegistryClient(tracking.store, tracking.artifacts)
    assert "champion" in registry.get_version("credit/2", project=P).aliases
    final = deployments.get(ENDPOINT, project=P)
    assert [(r.model, r.weight) for r in final.routes] == [("credit@champion", 100.0)]
    path = [(s.from_state, s.to_state) for s in automations.steps(attempt_id)]
    assert path == [
        ("retrain", "gate"),
        ("gate", "approve"),
        ("approve", "canary"),
        ("canary", "collecting"),
        ("collecting", "promote"),
        ("promote", "promoted"),
    ]
    decision = automations.steps(attempt_id)[4]
    assert decision.inputs["labelled"] == {"champion": 400, "candidate": 400}
    assert decision.outcome["decision"] == "promote"


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
def test_a_worse_candidate_is_rolled_back_and_rejected(
    world: tuple[TrackingClient, AttemptDriver, Path],
) -> None:
    tracking, driver, tmp_path = world
    attempt_id = _start(tracking, "firing-2", flip=0)
    assert _run_until(driver, attempt_id, "collecting") == "collecting"
    _traffic(tracking, tmp_path / "log", "credit/2", 400, {"champion": 0.9, "candidate": 0.6})
    assert _run_until(driver, attempt_id, "rolled_back") == "rolled_back"
    registry = RegistryClient(tracking.store, tracking.artifacts)
    assert registry.get_version("credit/2", project=P).status == "rejected"
    assert registry.get_version("credit@champion", project=P).ref == "credit/1"
    deployments = DeploymentClient(tracking.store, registry)
    live = deployments.get(ENDPOINT, project=P)
    assert [(r.model, r.weight) for r in live.routes] == [("credit@champion", 100.0)]
    assert "rollback" in (live.reason or "")


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
def test_a_candidate_failing_the_policy_stops_at_the_gate(
    world: tuple[TrackingClient, AttemptDriver, Path],
) -> None:
    tracking, driver, _ = world
    attempt_id = _start(tracking, "firing-3", flip=1)  # trained on flipped labels
    assert _run_until(driver, attempt_id, "stopped") == "stopped"
    steps = AutomationStore(tracking.store).steps(attempt_id)
    assert steps[-1].from_state == "gate" and "failed the gate" in steps[-1].reason
    assert "accuracy" in steps[-1].reason
    deployments = DeploymentClient(
        tracking.store, RegistryClient(tracking.store, tracking.artifacts)
    )
    assert len(deployments.history(ENDPOINT, project=P)) == 1  # the endpoint was never touched


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
def test_a_new_scheduler_resumes_an_attempt_in_the_middle_of_its_analysis(
    world: tuple[TrackingClient, AttemptDriver, Path],
) -> None:
    tracking, _, tmp_path = world
    triggers = TriggerStore(tracking.store)
    triggers.create(
        TriggerSpec(name="by-hand", kind="manual", action=Action(automation="credit-ct")),
        project=P,
    )
    triggers.fire("by-hand", project=P, key="k1", data={"flip": "0"})
    first = Scheduler(tracking.store, trust=True, artifacts=tracking.artifacts, holder="one")
    automations = AutomationStore(tracking.store)
    for _ in range(12):  # fire, start the attempt, then one step per tick
        first.tick()
        _settle(first)
        started = automations.attempts("credit-ct", project=P)
        if started and started[0].state == "collecting":
            break
    (attempt,) = automations.attempts("credit-ct", project=P)
    assert attempt.state == "collecting"
    _traffic(tracking, tmp_path / "a", "credit/2", 100, {"champion": 0.8, "candidate": 0.95})
    first.tick()
    first.close()  # the scheduler goes away in the middle of the analysis
    assert AutomationStore(tracking.store).attempt(attempt.id).state == "collecting"
    _traffic(tracking, tmp_path / "b", "credit/2", 300, {"champion": 0.8, "candidate": 0.95})
    second = Scheduler(
        tracking.store, trust=True, artifacts=tracking.artifacts, holder="two", lease_ttl=5
    )
    try:
        for _ in range(20):
            second.tick()
            _settle(second)
            if AutomationStore(tracking.store).attempt(attempt.id).finished:
                break
    finally:
        second.close()
    assert AutomationStore(tracking.store).attempt(attempt.id).state == "promoted"


def _settle(scheduler: Scheduler) -> None:
    """Wait for the steps the last tick started (the tests look at the store between ticks)."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(f.done() for f in scheduler._attempts._running.values()) and all(
            f.done() for f in scheduler._running.values()
        ):
            return
        time.sleep(0.05)
    raise AssertionError("steps did not finish")


def test_a_canary_share_outside_0_to_100_is_refused() -> None:
    for share in (0, 100, -5, 150, float("nan"), True):
        with pytest.raises(InvalidParameter, match="canary_share"):
            AutomationSpec(
                name="a",
                model="m",
                endpoint="e",
                pipeline="flows:training",
                evaluation_data="d:1",
                target="y",
                canary_share=share,
            )


def test_a_spec_round_trips_and_starting_twice_with_one_key_starts_once(
    world: tuple[TrackingClient, AttemptDriver, Path],
) -> None:
    tracking, _, _ = world
    automations = AutomationStore(tracking.store)
    spec = automations.get("credit-ct", project=P).spec
    assert AutomationSpec.from_dict(spec.to_dict()) == spec
    assert _start(tracking, "same", 0) == _start(tracking, "same", 0)
    assert len(automations.attempts("credit-ct", project=P)) == 1
