"""Each kind of trigger source end to end (issue 15): real pipeline runs, registered and
promoted model versions, a monitor's alerts, commits in a repository made here, dataset
versions that passed or were quarantined — each evaluated on a real store (SQLite and
PostgreSQL), and none firing for what happened before the trigger existed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from loopml.automation import Action, Hygiene, TriggerSpec, TriggerStore
from loopml.automation._evaluate import Outcome, evaluate
from loopml.automation._git_events import git_poller
from loopml.automation._sources import GitPoll
from loopml.data import DataClient
from loopml.errors import StepFailed
from loopml.monitoring import MonitorResult, MonitorSpec, MonitorStore
from loopml.monitoring._results import CheckResult
from loopml.monitoring._run import run_monitor
from loopml.monitoring._sources import PredictionWindow, Readers
from loopml.pipelines._loader import load_pipeline
from loopml.registry import RegistryClient
from loopml.store import Store, now_ms, tables
from loopml.tracking import TrackingClient

HOOK = Action(webhook="https://hooks.example.com/x")
NOW_QUIET = 10**9  # ms added to "now" so that any default debounce is over

PIPELINE = """
import loopml


@loopml.step
def check(fail: bool) -> int:
    if fail:
        raise ValueError("asked to fail")
    return 1


@loopml.pipeline
def tiny(fail: bool = False):
    check(fail)
"""


def _create(store: Store, name: str, kind: str, source: dict[str, Any], **hygiene: Any) -> None:
    TriggerStore(store).create(
        TriggerSpec(name=name, kind=kind, source=source, action=HOOK, hygiene=Hygiene(**hygiene)),
        project="p",
    )


def _evaluate(store: Store, name: str, *, later: int = 0, git: GitPoll | None = None) -> Outcome:
    with store.read() as connection:
        row = connection.execute(select(tables.TRIGGER).where(tables.TRIGGER.c.name == name)).one()
    return evaluate(store, row, now_ms() + later, git=git)


def _fired(store: Store, name: str) -> list[list[dict[str, Any]]]:
    """The events of each firing of ``name``, oldest firing first."""
    firings = TriggerStore(store).firings(name, project="p")
    return [[e for e in f.events if "key" in e] for f in reversed(firings)]


# -- pipeline -----------------------------------------------------------------------------


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
@pytest.mark.slow
def test_finished_pipeline_runs_fire_by_status(
    client: TrackingClient, fluent_store: str, tmp_path: Path
) -> None:
    (tmp_path / "tiny_flows.py").write_text(PIPELINE)
    tiny = load_pipeline(f"{tmp_path / 'tiny_flows.py'}:tiny")
    tiny.run({"fail": False}, project="p", max_workers=1, cache=False)  # before the triggers
    store = client.store
    for status in ("succeeded", "failed", "any"):
        _create(store, f"on-{status}", "pipeline", {"pipeline": "tiny", "status": status})
    assert all(_evaluate(store, f"on-{s}").firing_id is None for s in ("succeeded", "failed"))

    good = tiny.run({"fail": False}, project="p", max_workers=1, cache=False)
    with pytest.raises(StepFailed) as caught:
        tiny.run({"fail": True}, project="p", max_workers=1, cache=False)
    bad = caught.value.run_id
    for status in ("succeeded", "failed", "any"):
        _evaluate(store, f"on-{status}")
    (succeeded,) = _fired(store, "on-succeeded")
    assert [e["data"] for e in succeeded] == [
        {"pipeline": "tiny", "run": good.id, "status": "finished"}
    ]
    (failed,) = _fired(store, "on-failed")
    assert [e["data"] for e in failed] == [{"pipeline": "tiny", "run": bad, "status": "failed"}]
    (both,) = _fired(store, "on-any")  # the two runs folded into one firing
    assert [e["data"]["status"] for e in both] == ["finished", "failed"]
    assert [e["data"]["run"] for e in both] == [good.id, bad]
    for status in ("succeeded", "failed", "any"):  # nothing new: nothing more
        assert _evaluate(store, f"on-{status}").firing_id is None


# -- model ----------------------------------------------------------------------------------


def _model(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40, 3))
    return LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))


def test_registered_and_promoted_model_versions_fire(client: TrackingClient) -> None:
    store = client.store
    registry = RegistryClient(store, client.artifacts)
    registry.register(_model(1), "credit", project="p")  # before the triggers
    registry.promote("credit/1", project="p")
    _create(store, "on-register", "model", {"model": "credit", "event": "registered"})
    _create(store, "on-champion", "model", {"model": "credit", "event": "promoted"})
    _create(
        store,
        "on-staging",
        "model",
        {"model": "credit", "event": "promoted", "alias": "staging"},
    )
    assert _evaluate(store, "on-register").firing_id is None
    assert _evaluate(store, "on-champion").firing_id is None

    registry.register(_model(2), "credit", project="p")
    registry.register(_model(3), "other", project="p")  # another model: not watched
    assert _evaluate(store, "on-register").firing_id is not None
    (registered,) = _fired(store, "on-register")
    assert [e["data"] for e in registered] == [{"model": "credit", "version": 2, "ref": "credit/2"}]
    assert _evaluate(store, "on-champion").firing_id is None  # registered is not promoted

    registry.promote("credit/2", project="p")
    assert _evaluate(store, "on-champion").firing_id is not None
    (promoted,) = _fired(store, "on-champion")
    assert promoted[0]["data"] == {"model": "credit", "version": 2, "alias": "champion"}
    assert promoted[0]["summary"] == "credit/2 promoted to @champion"
    assert _evaluate(store, "on-staging").firing_id is None  # another alias moved
    registry.promote("credit/1", project="p", alias="staging")
    assert _evaluate(store, "on-staging").firing_id is not None
    assert _evaluate(store, "on-champion").firing_id is None
    assert _evaluate(store, "on-register").firing_id is None


# -- monitor_alert ----------------------------------------------------------------------


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"age": rng.normal(40, 8, rows).round(), "income": rng.lognormal(10, 0.4, rows)}
    )


def test_a_monitor_alert_fires_filtered_by_check(client: TrackingClient) -> None:
    store = client.store
    data = DataClient(store, client.artifacts)

    def no_log(*_: object) -> PredictionWindow:
        raise AssertionError("a dataset monitor reads no prediction log")

    readers = Readers(
        store, client.artifacts, data, RegistryClient(store, client.artifacts), no_log
    )
    monitors = MonitorStore(store, client.artifacts)
    data.register("credit", _frame(2000, 1), project="p")
    monitors.create(
        MonitorSpec(
            name="quality", dataset="credit", reference="dataset:credit:1", checks=["data_quality"]
        ),
        project="p",
    )
    early = _frame(2000, 2)
    early.loc[:49, "age"] = -500.0
    data.register("credit", early, project="p")
    assert run_monitor(monitors, readers, "quality", project="p").status == "alert"  # before

    _create(store, "any-check", "monitor_alert", {"monitor": "quality"}, debounce=0)
    _create(
        store,
        "drift-only",
        "monitor_alert",
        {"monitor": "quality", "checks": ["drift"]},
        debounce=0,
    )
    _create(
        store,
        "quality-only",
        "monitor_alert",
        {"monitor": "quality", "checks": ["data_quality"]},
        debounce=0,
    )
    data.register("credit", _frame(2000, 3), project="p")
    assert run_monitor(monitors, readers, "quality", project="p").status == "ok"  # resolves
    for name in ("any-check", "drift-only", "quality-only"):
        assert _evaluate(store, name).firing_id is None, name  # the old alert never fires

    bad = _frame(2000, 4)
    bad.loc[:99, "income"] = -1.0
    bad.loc[:99, "age"] = -500.0
    data.register("credit", bad, project="p")
    assert run_monitor(monitors, readers, "quality", project="p").status == "alert"
    for name in ("any-check", "drift-only", "quality-only"):
        _evaluate(store, name)
    assert _fired(store, "drift-only") == []
    assert TriggerStore(store).get("drift-only", project="p").state["cursor"]["id"] > 0
    (fired,) = _fired(store, "quality-only")
    assert {e["data"]["check"] for e in fired} == {"data_quality"}
    assert "age" in {e["data"]["column"] for e in fired}
    assert all(e["evidence"] == 2000 for e in fired)  # the alerting run's current rows
    assert len(_fired(store, "any-check")) == 1


def test_a_monitor_alert_trigger_cools_down_an_hour_by_default(client: TrackingClient) -> None:
    store = client.store
    monitors = MonitorStore(store, client.artifacts)
    record = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="p")
    _create(store, "alerts", "monitor_alert", {"monitor": "m"}, debounce=0, max_concurrent=9)

    def opened(at: int, column: str) -> None:
        check = CheckResult("drift", column, "ks", 0.3, 0.05, "alert")
        result = MonitorResult(
            monitor="m",
            status="alert",
            started_at=at,
            reference="dataset:credit:1",
            current="frame",
            reference_rows=1000,
            current_rows=500,
            checks=(check,),
        )
        monitors.record(record, result)

    opened(1000, "age")
    assert _evaluate(store, "alerts").firing_id is not None
    opened(2000, "income")
    held = _evaluate(store, "alerts")
    assert held.decision is not None and held.decision.reason.startswith("cooldown until")
    assert _evaluate(store, "alerts", later=3_600_001).firing_id is not None


# -- git ----------------------------------------------------------------------------------

_GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _commit(repo: Path, name: str, text: str, message: str) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def test_git_commits_fire_once_each_and_paths_filter(
    client: TrackingClient, tmp_path: Path
) -> None:
    store = client.store
    repo = tmp_path / "repo"
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    _commit(repo, "src/train.py", "print(1)\n", "Start")  # before the triggers
    poller = git_poller(tmp_path / "cache", min_interval=0)
    for name, paths in (("any-commit", []), ("config", ["loopml.yaml"])):
        source = {"url": str(repo), "paths": paths} if paths else {"url": str(repo)}
        _create(store, name, "git", source, debounce=0, max_concurrent=9)
    for name in ("any-commit", "config"):  # the first look records the branch, fires nothing
        assert _evaluate(store, name, git=poller).firing_id is None
        assert TriggerStore(store).get(name, project="p").state["cursor"]["commit"] is not None

    code = _commit(repo, "src/train.py", "print(2)\n", "Train better")
    assert _evaluate(store, "any-commit", git=poller).firing_id is not None
    assert _evaluate(store, "config", git=poller).firing_id is None  # no loopml.yaml change
    assert TriggerStore(store).get("config", project="p").state["cursor"]["commit"] == code
    assert TriggerStore(store).firings("any-commit", project="p")[0].dedup_key == f"commit:{code}"
    (event,) = _fired(store, "any-commit")[0]
    assert event["data"]["commit"] == code and event["data"]["paths"] == ["src/train.py"]
    assert event["summary"] == "1 new commit(s) on main: Train better"
    assert _evaluate(store, "any-commit", git=poller).firing_id is None  # the head did not move

    config = _commit(repo, "loopml.yaml", "version: 1\n", "Configure")
    assert _evaluate(store, "config", git=poller).firing_id is not None
    (only,) = TriggerStore(store).firings("config", project="p")
    assert only.dedup_key == f"commit:{config}"
    assert _evaluate(store, "any-commit", git=poller).firing_id is not None
    assert [f.dedup_key for f in TriggerStore(store).firings("any-commit", project="p")] == [
        f"commit:{config}",
        f"commit:{code}",
    ]


# -- dataset ------------------------------------------------------------------------------


def test_quarantined_dataset_versions_fire_only_without_passed_only(
    client: TrackingClient,
) -> None:
    store = client.store
    data = DataClient(store, client.artifacts)
    data.register("credit", _frame(5, 1), project="p")
    data.save_schema("credit", project="p", expectations="- {kind: row_count, min: 5, max: 5}")
    data.register("credit", _frame(5, 2), project="p")  # before the triggers
    _create(store, "passed", "dataset", {"dataset": "credit"}, debounce=0)
    _create(store, "every", "dataset", {"dataset": "credit", "passed_only": False}, debounce=0)
    for name in ("passed", "every"):
        assert _evaluate(store, name).firing_id is None

    with pytest.raises(Exception, match="quarantined"):
        data.register("credit", _frame(6, 3), project="p", strict=True)
    assert _evaluate(store, "passed").firing_id is None
    assert _evaluate(store, "every").firing_id is not None
    assert [e["data"]["version"] for e in _fired(store, "every")[0]] == [3]
    assert TriggerStore(store).evaluations("passed", project="p") == []  # nothing seen

    data.register("credit", _frame(5, 4), project="p", strict=True)
    assert _evaluate(store, "passed").firing_id is not None
    assert [e["data"]["ref"] for e in _fired(store, "passed")[0]] == ["credit:4"]


def test_a_dataset_trigger_debounces_thirty_seconds_by_default(client: TrackingClient) -> None:
    store = client.store
    data = DataClient(store, client.artifacts)
    _create(store, "on-data", "dataset", {"dataset": "credit"})
    data.register("credit", _frame(5, 1), project="p")
    waiting = _evaluate(store, "on-data")
    assert waiting.decision is not None and waiting.decision.reason.startswith("debounce: 1 event")
    assert _evaluate(store, "on-data", later=NOW_QUIET).firing_id is not None
