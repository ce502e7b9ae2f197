"""The tracking contract: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from loopml.errors import (
    ArtifactNotFound,
    FilterSyntaxError,
    InvalidParameter,
    ParamConflict,
    RunNotFound,
)
from loopml.store import Node
from loopml.tracking import Metric, TrackingClient


def test_run_lifecycle_records_params_tags_metrics_and_context(client: TrackingClient) -> None:
    run_id = client.create_run(
        project="p", name="first", params={"lr": 0.1, "model": "rf"}, tags={"team": "a"}
    )
    client.log_metric(run_id, "loss", 0.5, step=1)
    client.log_metric(run_id, "loss", 0.25, step=2)
    client.end_run(run_id)

    run = client.get_run(run_id)
    assert run.status == "finished"
    assert run.project == "p"
    assert run.name == "first"
    assert run.params == {"lr": "0.1", "model": "rf"}
    assert run.tags == {"team": "a"}
    assert run.metrics == {"loss": 0.25}
    assert run.end_time is not None and run.end_time >= run.start_time
    assert run.resources is not None and run.resources["wall_seconds"] >= 0
    assert run.context["python_version"].count(".") == 2
    assert run.context["environment_sha256"]


def test_unknown_run_raises_run_not_found_which_is_a_key_error(client: TrackingClient) -> None:
    client.create_run(project="p")  # a store to look in (reading never creates one)
    with pytest.raises(RunNotFound, match="nope"):
        client.get_run("nope")
    with pytest.raises(KeyError):
        client.log_param("nope", "a", 1)
    with pytest.raises(RunNotFound):
        client.end_run("nope")


def test_params_are_immutable_and_conflicts_name_both_values(client: TrackingClient) -> None:
    run_id = client.create_run(project="p", params={"lr": 0.1})
    client.log_param(run_id, "lr", 0.1)  # the same value again is fine
    with pytest.raises(ParamConflict, match=r"'lr'.*'0\.1'.*'0\.2'"):
        client.log_param(run_id, "lr", 0.2)
    with pytest.raises(ParamConflict):
        client.log_params(run_id, {"new": 1, "lr": 0.3})
    assert client.get_run(run_id).params == {"lr": "0.1"}  # all or nothing


def test_tags_can_be_overwritten(client: TrackingClient) -> None:
    run_id = client.create_run(project="p", tags={"stage": "dev"})
    client.set_tag(run_id, "stage", "prod")
    assert client.get_run(run_id).tags == {"stage": "prod"}


def test_nan_and_infinities_round_trip(client: TrackingClient) -> None:
    run_id = client.create_run(project="p")
    for step, value in enumerate([float("nan"), math.inf, -math.inf, 1.5]):
        client.log_metric(run_id, "m", value, step=step)
    client.log_metric(run_id, "last_nan", float("nan"))
    client.end_run(run_id)
    history = [point.value for point in client.get_metric_history(run_id, "m")]
    assert math.isnan(history[0])
    assert history[1:] == [math.inf, -math.inf, 1.5]
    assert math.isnan(client.get_run(run_id).metrics["last_nan"])


def test_metric_history_is_in_step_order_and_latest_is_highest_step(
    client: TrackingClient,
) -> None:
    run_id = client.create_run(project="p")
    client.log_batch(run_id, [Metric("acc", 0.3, 3, 1000), Metric("acc", 0.1, 1, 2000)])
    client.log_batch(run_id, [("acc", 0.2, 2)])
    client.end_run(run_id)
    history = client.get_metric_history(run_id, "acc")
    assert [(p.step, p.value) for p in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert client.get_run(run_id).metrics == {"acc": 0.3}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", 1.0, "non-empty"),
        ("a" * 251, 1.0, "at most 250"),
        ("m", "high", "real number"),
        ("m", None, "real number"),
        (3, 1.0, "must be a str"),
    ],
)
def test_bad_metrics_are_refused_with_the_reason(
    client: TrackingClient, key: object, value: object, message: str
) -> None:
    run_id = client.create_run(project="p")
    with pytest.raises(InvalidParameter, match=message):
        client.log_metric(run_id, key, value)  # type: ignore[arg-type]


def test_failed_and_killed_runs_keep_the_error(client: TrackingClient) -> None:
    run_id = client.create_run(project="p")
    try:
        raise ValueError("bad data in column 'age'")
    except ValueError as exc:
        client.end_run(run_id, "failed", exc)
    run = client.get_run(run_id)
    assert run.status == "failed"
    assert run.failure is not None
    assert run.failure["type"] == "builtins.ValueError"
    assert run.failure["message"] == "bad data in column 'age'"
    assert "Traceback" in run.failure["traceback"]

    killed = client.create_run(project="p")
    client.end_run(killed, "killed")
    assert client.get_run(killed).status == "killed"


def test_a_run_without_heartbeats_is_shown_lost(
    client: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = client.create_run(project="p")
    monkeypatch.setenv("LOOPML_HEARTBEAT_TIMEOUT", "0.05")
    time.sleep(0.1)
    assert client.get_run(run_id).status == "lost"
    assert [r.id for r in client.search_runs("p", "status = 'lost'")] == [run_id]
    monkeypatch.setenv("LOOPML_HEARTBEAT_TIMEOUT", "60")
    assert client.get_run(run_id).status == "running"


def test_child_runs_inherit_the_project(client: TrackingClient) -> None:
    parent = client.create_run(project="p")
    child = client.create_run(parent_id=parent)
    assert client.get_run(child).project == "p"
    assert client.get_run(child).parent_id == parent
    with pytest.raises(RunNotFound):
        client.create_run(parent_id="missing")


@pytest.fixture
def populated(client: TrackingClient) -> TrackingClient:
    for i, (model, auc) in enumerate([("rf", 0.95), ("rf", 0.85), ("lr", 0.91), ("svm", 0.7)]):
        run_id = client.create_run(
            project="search", name=f"run-{i}", params={"model": model, "depth": i * 5}
        )
        client.log_metric(run_id, "auc", auc)
        if i % 2 == 0:
            client.set_tag(run_id, "best", "yes")
        client.end_run(run_id)
    return client


@pytest.mark.parametrize(
    ("filter_text", "names"),
    [
        ("metrics.auc > 0.9", {"run-0", "run-2"}),
        ("metrics.auc > 0.9 and params.model = 'rf'", {"run-0"}),
        ("params.model = 'rf' or params.model = 'svm'", {"run-0", "run-1", "run-3"}),
        ("not params.model = 'rf'", {"run-2", "run-3"}),
        ("params.model in ('lr', 'svm')", {"run-2", "run-3"}),
        ("params.depth >= 10", {"run-2", "run-3"}),
        ("params.depth = 5", {"run-1"}),
        ("tags.best = 'yes'", {"run-0", "run-2"}),
        ("tags.best is null", {"run-1", "run-3"}),
        ("name like 'run-%' and metrics.auc < 0.8", {"run-3"}),
        ("status = 'finished'", {"run-0", "run-1", "run-2", "run-3"}),
        ("", {"run-0", "run-1", "run-2", "run-3"}),
    ],
)
def test_search_filters(populated: TrackingClient, filter_text: str, names: set[str]) -> None:
    runs = populated.search_runs("search", filter_text)
    assert {run.name for run in runs} == names


def test_search_orders_limits_and_returns_frames(populated: TrackingClient) -> None:
    runs = populated.search_runs("search", order_by=["metrics.auc DESC"], max_results=3)
    assert [r.name for r in runs] == ["run-0", "run-2", "run-1"]
    ascending = populated.search_runs("search", order_by=["params.model", "metrics.auc"])
    assert [r.name for r in ascending][:2] == ["run-2", "run-1"]
    frame = populated.search_runs("search", "metrics.auc > 0.9", output="pandas")
    assert set(frame["name"]) == {"run-0", "run-2"}
    assert {"metrics.auc", "params.model", "run_id"} <= set(frame.columns)


def test_a_malformed_filter_points_at_the_offending_token(populated: TrackingClient) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        populated.search_runs("search", "metrics.auc >> 0.9")
    assert caught.value.position == len("metrics.auc >")
    with pytest.raises(InvalidParameter):
        populated.search_runs("search", max_results=0)


def test_artifacts_files_dicts_and_folders(client: TrackingClient, tmp_path: Path) -> None:
    run_id = client.create_run(project="p")
    model = tmp_path / "model.bin"
    model.write_bytes(b"\x00weights" * 1000)
    folder = tmp_path / "report"
    (folder / "plots").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>hi</h1>")
    (folder / "plots" / "a.txt").write_text("a")
    client.log_artifact(run_id, model)
    client.log_artifact(run_id, folder, "reports/html")
    client.log_dict(run_id, {"n_estimators": 10}, "config/params.json")
    client.end_run(run_id)

    paths = {a.path: a for a in client.get_run(run_id).artifacts}
    assert set(paths) == {"model.bin", "reports/html", "config/params.json"}
    assert paths["reports/html"].is_dir
    got = client.download_artifact(run_id, "model.bin", tmp_path / "out")
    assert got.read_bytes() == model.read_bytes()
    tree = client.download_artifact(run_id, "reports/html", tmp_path / "tree")
    assert (tree / "plots" / "a.txt").read_text() == "a"
    with pytest.raises(ArtifactNotFound):
        client.download_artifact(run_id, "nope", tmp_path)
    with pytest.raises(ArtifactNotFound):
        client.log_artifact(run_id, tmp_path / "missing.txt")
    with pytest.raises(InvalidParameter):
        client.log_dict(run_id, {}, "../escape.json")


def test_notes_on_runs_and_projects(client: TrackingClient) -> None:
    run_id = client.create_run(project="p")
    client.log_note("run", run_id, "Dropping *age* helped.")
    client.log_note("project", "p", "Baseline is 0.8 AUC.")
    assert [n.text for n in client.get_run(run_id).notes] == ["Dropping *age* helped."]
    assert [n.text for n in client.get_notes("project", "p")] == ["Baseline is 0.8 AUC."]
    with pytest.raises(InvalidParameter):
        client.log_note("run", run_id, "  ")


def test_lineage_both_directions(client: TrackingClient) -> None:
    run_id = client.create_run(project="p")
    data, model = Node("dataset_version", "credit:1"), Node("model_version", "m:1")
    client.add_lineage(data, Node("run", run_id), "used_by")
    client.add_lineage(Node("run", run_id), model, "produced")
    upstream = client.lineage(model, "upstream")
    assert [(e.src, e.depth) for e in upstream] == [(Node("run", run_id), 1), (data, 2)]
    downstream = client.lineage(data, "downstream")
    assert [e.dst for e in downstream] == [Node("run", run_id), model]
    assert client.lineage(data, "downstream", max_depth=1)[0].dst == Node("run", run_id)


@pytest.mark.parametrize("status", ["waiting_for_approval", "running"])
def test_every_paused_status_is_stored(client: TrackingClient, status: str) -> None:
    """``waiting_for_approval`` (20 characters) once overflowed ``run.status`` on PostgreSQL."""
    run_id = client.create_run(project="p", capture_context=False)
    client.set_run_status(run_id, "waiting_for_approval")
    client.set_run_status(run_id, status)  # type: ignore[arg-type]
    assert client.get_run(run_id).status == status


@pytest.mark.parametrize("status", ["finished", "failed", "killed", "rejected"])
def test_every_terminal_status_is_stored(client: TrackingClient, status: str) -> None:
    run_id = client.create_run(project="p", capture_context=False)
    client.end_run(run_id, status)  # type: ignore[arg-type]
    assert client.get_run(run_id).status == status
