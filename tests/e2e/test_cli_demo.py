"""``loopml demo`` in a real process: the dataset, the quarantined delivery, lineage, re-runs,
the registry and serving.

``test_cli_process.py`` checks the training half of the demo (runs, metrics,
artifacts, notes); this module checks the data half, that each demo's second
pipeline run is fully cached, that a second demo in the same home reuses
identical versions and says so, and that each demo serves the champion with a
canary, logs every request with its feedback and compares the routes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import Demo, run_loopml

from loopml.approvals import current_identity

pytestmark = pytest.mark.slow

STEPS = (
    "load_data",
    "validate_delivery",
    "split",
    "train_logistic_regression",
    "train_gradient_boosting",
    "compare",
)


def test_the_first_demo_registers_quarantines_and_splits(demo: Demo) -> None:
    out = demo.first
    assert "registered breast-cancer:1: 569 rows, 32 columns\n" in out
    assert "second delivery quarantined as breast-cancer:2: 2 of" in out
    assert "mean radius: in_range(" in out
    assert "target: in_range(0, 1)" in out
    report = demo.home / "reports" / "breast-cancer-2.html"
    assert f"Report: {report.absolute()}" in out
    assert "mean radius" in report.read_text()
    assert "split breast-cancer:1 80/20, stratified on target: breast-cancer-train:1" in out
    assert "Training candidates on breast-cancer-train:1, tested on breast-cancer-test:1" in out
    assert "loopml data show breast-cancer:2 --project demo" in out


def test_each_demo_runs_the_pipeline_then_reuses_every_step(demo: Demo) -> None:
    for out in (demo.first, demo.second):
        first, second = out.split("Run 2 of 2", 1)
        assert "Run 1 of 2, cache off: every step runs" in first
        table = first.split("Data, from run", 1)[0]
        for step in STEPS:
            assert step in table
        assert table.count("✓ finished") == len(STEPS)
        assert second.count("↺ cached") == len(STEPS)
        assert f"all {len(STEPS)} steps of run" in second
        assert "nothing ran again" in second


def test_the_pipeline_runs_are_recorded(in_demo: Demo) -> None:
    done = run_loopml("pipelines", "list", "--project", "demo", "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    assert len(runs) == 4  # two demos of two runs
    assert {r["pipeline"] for r in runs} == {"demo_training"}
    assert {r["status"] for r in runs} == {"finished"}
    assert [r["use_cache"] for r in runs] == [True, False, True, False]  # newest first
    cached, ran = runs[0], runs[1]
    assert {s["status"] for s in ran["steps"].values()} == {"finished"}
    assert {s["status"] for s in cached["steps"].values()} == {"cached"}
    assert {s["cached_from"] for s in cached["steps"].values()} == {
        s["run_id"] for s in ran["steps"].values()
    }
    assert list(ran["steps"]) == list(STEPS)


def test_a_second_demo_reuses_identical_versions_and_says_so(demo: Demo) -> None:
    out = demo.second
    assert "registered breast-cancer:1: 569 rows, 32 columns (identical data" in out
    assert "schema revision" not in out  # already relaxed by the first demo
    assert "identical to breast-cancer:2, quarantined by an earlier demo: 2 of" in out
    assert "mean radius: in_range(" in out
    assert "breast-cancer-train:1" in out
    assert "Demo runs, best test AUC first" in out


def test_data_list_shows_the_dataset_and_its_splits(in_demo: Demo) -> None:
    done = run_loopml("data", "list", "--project", "demo", "--json")
    assert done.returncode == 0, done.stderr
    datasets = {d["name"]: d for d in json.loads(done.stdout)}
    assert set(datasets) == {
        "breast-cancer",
        "breast-cancer-train",
        "breast-cancer-test",
        "breast-cancer-eval",
    }
    assert datasets["breast-cancer-eval"]["version_count"] == 1  # identical on the second demo
    assert datasets["breast-cancer"]["latest"] == "breast-cancer:1"
    assert datasets["breast-cancer"]["version_count"] == 2
    assert datasets["breast-cancer-train"]["version_count"] == 1

    versions = json.loads(
        run_loopml("data", "versions", "breast-cancer", "-p", "demo", "--json").stdout
    )
    assert [(v["ref"], v["status"]) for v in versions] == [
        ("breast-cancer:1", "ready"),
        ("breast-cancer:2", "quarantined"),
    ]
    parts = {
        name: json.loads(run_loopml("data", "show", name, "-p", "demo", "--json").stdout)
        for name in ("breast-cancer-train", "breast-cancer-test")
    }
    assert (
        parts["breast-cancer-train"]["row_count"] + parts["breast-cancer-test"]["row_count"] == 569
    )
    assert all(p["parents"] == ["breast-cancer:1"] for p in parts.values())


def test_every_training_run_has_lineage_to_the_split_it_trained_on(in_demo: Demo) -> None:
    import loopml.data
    from loopml import tracking
    from loopml.store import Node

    train = loopml.data.get("breast-cancer-train:1", project="demo")
    test = loopml.data.get("breast-cancer-test:1", project="demo")
    source = loopml.data.get("breast-cancer:1", project="demo")
    client = tracking.get_client()
    runs = client.search_runs("demo", "tags.model_class != ''", None, 100)
    assert isinstance(runs, list)
    assert len(runs) == 4  # two demos of two candidates (the cached runs trained nothing)
    for run in runs:
        assert run.tags["train"] == "breast-cancer-train:1"
        edges = client.lineage(Node("run", run.id), "upstream")
        inputs = {e.src.id for e in edges if e.relation == "input" and e.depth == 1}
        assert inputs == {str(train.id), str(test.id)}
        derived = {e.src.id for e in edges if e.relation == "derived"}
        assert derived == {str(source.id)}


MODEL = "breast-cancer-classifier"


def test_the_first_demo_promotes_the_winner_and_shows_why_the_other_fails(demo: Demo) -> None:
    out = demo.first
    assert f"Registry: model {MODEL}, evaluated on breast-cancer-eval:1" in out
    assert f"{MODEL}/1 approved by {current_identity()}" in out
    assert f"@champion → {MODEL}/1\n" in out  # the logistic regression has the best AUC
    assert f"{MODEL}/2 beats champion on auc:" in out
    assert "so the improvement is not significant" in out
    assert f"@champion is {MODEL}/1" in out
    card = demo.home / "cards" / f"{MODEL}-1.html"
    assert f"Model card: {card.absolute()}" in out
    page = card.read_text()
    assert "Intended use" in page and "clinic = north" in page


def test_a_second_demo_cannot_beat_its_identical_champion(demo: Demo) -> None:
    out = demo.second
    assert f"{MODEL}/3 approved by {current_identity()}" in out
    assert f"{MODEL}/3 not promoted; @champion stays {MODEL}/1" in out
    assert f"@champion is {MODEL}/1" in out


def test_the_registry_records_the_demo(in_demo: Demo) -> None:
    done = run_loopml("models", "versions", MODEL, "-p", "demo", "--json")
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout)
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    assert versions[0]["aliases"] == ["champion"]
    assert all(v["source_run_id"] and v["datasets"] for v in versions)
    history = json.loads(run_loopml("models", "history", MODEL, "-p", "demo", "--json").stdout)
    moves = [(e["action"], e["to_version"]) for e in history if e["kind"] == "alias"]
    assert moves == [("promote", 1)]
    policy = [(e["action"], e["revision"]) for e in history if e["kind"] == "policy"]
    assert policy == [("policy_set", 1), ("policy_set", 2)]  # one set per demo run


ENDPOINT = "breast-cancer"
REQUESTS = 3000
DRIFT_REQUESTS = 1500
PRIMARY = f"primary:{MODEL}@champion"


def test_each_demo_serves_the_champion_with_a_canary_and_compares_them(demo: Demo) -> None:
    for out, canary in ((demo.first, 2), (demo.second, 4)):  # the other candidate of each demo
        serving = out.split(f"Serving: endpoint {ENDPOINT} revision ", 1)[1]
        assert serving.startswith(f"{1 if canary == 2 else 2}: {MODEL}@champion:85, ")
        assert f"{MODEL}/{canary}:15:canary" in serving
        assert "  ✓ loopml serve ready on http://127.0.0.1:" in serving
        assert f"  ✓ {REQUESTS} requests answered in " in serving
        answered = serving.split(" clients): ", 1)[1].splitlines()[0]
        counts = {route: int(n) for n, route in (p.split(" by ") for p in answered.split(", "))}
        assert set(counts) == {PRIMARY, f"canary:{MODEL}/{canary}"}
        assert sum(counts.values()) == REQUESTS
        assert f"  ✓ {REQUESTS} true labels posted afterwards as delayed feedback" in serving
        assert f"server stopped; {REQUESTS} of {REQUESTS} answered requests are in the " in serving
        assert f"{ENDPOINT}: accuracy per route of" in serving
        for row in ("primary @champion", f"canary v{canary}", "Δ vs baseline", "significant"):
            assert row in serving
        assert f"On accuracy, canary:{MODEL}/{canary} " in serving
        assert f"loopml deployments compare {ENDPOINT} -p demo" in serving


def test_the_served_traffic_is_logged_and_joined_with_its_feedback(in_demo: Demo) -> None:
    from loopml.serving._predlog_reading import read_predictions
    from loopml.tracking import get_client

    client = get_client()
    logged = read_predictions(client.store, client.artifacts, ENDPOINT, with_feedback=True)
    assert len(logged) == 2 * (REQUESTS + DRIFT_REQUESTS)  # every request of both demos, once
    assert logged["label"].notna().sum() == 2 * REQUESTS  # the drifted ones have no label yet
    primary = logged[(logged["route"] == PRIMARY) & logged["label"].notna()]
    assert set(primary["model_version"]) == {f"{MODEL}/1"}
    assert set(logged["route"]) == {PRIMARY, f"canary:{MODEL}/2", f"canary:{MODEL}/4"}
    pairs = zip(primary["output"], primary["label"], strict=True)
    right = [json.loads(out) == [label] for out, label in pairs]
    assert sum(right) / len(right) > 0.9  # the labels are the held-out truth
    folder = in_demo.home / "demo-serving" / "predictions"
    left = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()]
    assert {p.name for p in left} <= {"LOCK"}, left  # everything went into segments

    history = json.loads(
        run_loopml("deployments", "history", ENDPOINT, "-p", "demo", "--json").stdout
    )
    assert [[r["model"] for r in d["routes"]] for d in history] == [
        [f"{MODEL}@champion", f"{MODEL}/2"],
        [f"{MODEL}@champion", f"{MODEL}/4"],
    ]
    done = run_loopml("deployments", "compare", ENDPOINT, "-p", "demo", "--json")
    assert done.returncode == 0, done.stderr
    compared = json.loads(done.stdout)
    assert compared["metric"] == "accuracy" and compared["baseline"] == PRIMARY
    assert sum(r["predictions"] for r in compared["routes"]) == 2 * (REQUESTS + DRIFT_REQUESTS)
    assert sum(r["labelled"] for r in compared["routes"]) == 2 * REQUESTS


def _children() -> set[int]:
    pid = os.getpid()
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_a_server_that_cannot_start_fails_the_demo_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.dummy import DummyClassifier

    import loopml.data
    from loopml.cli._demo_serving import serve_demo
    from loopml.cli._output import out
    from loopml.errors import LoopmlError
    from loopml.registry import _api as registry

    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    frame = load_breast_cancer(as_frame=True).frame.head(40)
    features = frame.drop(columns="target")
    for _ in range(2):
        model = DummyClassifier().fit(features, frame["target"])
        registry.register(model, MODEL, project="demo", input_example=features.head(5))
    registry.promote(f"{MODEL}/1", project="demo", force=True, reason="test setup")
    loopml.data.register("held-out", frame.assign(id=range(len(frame))), project="demo")
    before = _children()
    # A file where the server's log folder should be, so the server cannot start.
    folder = Path(os.environ["LOOPML_HOME"]) / "demo-serving" / "predictions"
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")
    with pytest.raises(LoopmlError, match=r"exited with code 1: error: "):
        serve_demo(out(), project="demo", model=MODEL, canary=f"{MODEL}/2", test_ref="held-out:1")
    assert _children() <= before  # the server process is gone


def test_demo_json_summarises_the_second_demo(in_demo: Demo) -> None:
    summary = in_demo.summary
    assert summary["project"] == "demo" and summary["model"] == "breast-cancer-classifier"
    assert summary["steps"] == summary["second_run_cached_steps"] == len(STEPS)
    listed = json.loads(run_loopml("pipelines", "list", "-p", "demo", "--json").stdout)
    assert summary["pipeline_runs"] == [run["id"] for run in listed[1::-1]]
    shown = run_loopml(
        "models", "show", "breast-cancer-classifier@champion", "-p", "demo", "--json"
    )
    assert summary["champion"] == json.loads(shown.stdout)["ref"]
    assert Path(summary["model_card"]).is_file()
    assert summary["store_uri"].startswith("sqlite:///")


def test_the_demo_monitor_catches_the_drifted_traffic(in_demo: Demo) -> None:
    from loopml.cli._demo_serving import DRIFTED

    report = Path(in_demo.summary["monitor_report"])
    assert report.is_file() and "mean radius" in report.read_text(encoding="utf-8")
    assert "labelled traffic (3000 rows): ok" in in_demo.first
    assert "drifted traffic (1500 rows): alert, 3 drifting column(s)" in in_demo.first
    listed = run_loopml("alerts", "list", "-p", "demo", "--state", "firing", "--json")
    firing = {a["column"] for a in json.loads(listed.stdout) if a["check"] == "drift"}
    assert firing == set(DRIFTED)
    history = run_loopml(
        "monitor",
        "history",
        "breast-cancer-live",
        "--check",
        "drift",
        "--column",
        "mean radius",
        "-p",
        "demo",
        "--json",
    )
    assert [p["status"] for p in json.loads(history.stdout)] == ["ok", "alert"] * 2
