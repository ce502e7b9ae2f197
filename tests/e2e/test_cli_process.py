"""The real ``loopml`` executable in a subprocess: the demo end to end, errors, start-up."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import Cli, Demo, run_loopml

pytestmark = pytest.mark.slow


def test_the_demo_says_where_it_recorded_and_what_to_run_next(demo: Demo) -> None:
    for text in ("Demo runs, best test AUC first", "train_logistic_regression", "test_auc"):
        assert text in demo.first
    assert f"Metadata:  sqlite:///{demo.home.absolute()}/loopml.db" in demo.first
    assert "loopml runs list --project demo" in demo.first


def test_demo_then_list_json(in_demo: Demo) -> None:
    done = run_loopml("runs", "list", "--project", "demo", "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    assert len(runs) == 28  # each of the two demos: two pipeline runs of six steps each
    assert {run["status"] for run in runs} == {"finished"}
    pipelines = [run["id"] for run in runs if run["kind"] == "pipeline"]
    assert len(pipelines) == 4
    for pipeline in pipelines:
        assert sum(run["parent_id"] == pipeline for run in runs) == 6
    trained = [run for run in runs if "test_auc" in run["metrics"]]
    assert {run["name"] for run in trained} == {
        "train_logistic_regression",
        "train_gradient_boosting",
    }
    for run in trained:
        assert 0.9 < run["metrics"]["test_auc"] <= 1
        assert {"test_accuracy", "test_f1"} <= set(run["metrics"])
        assert run["params"]["model"]
        assert run["params"]["seed"] == "0"  # the pipeline parameter, passed to the step
        assert [a["path"] for a in run["artifacts"]] == ["model.pkl"]


def test_demo_runs_have_histories_notes_and_a_usable_model(
    in_demo: Demo, cli: Cli, tmp_path: Path
) -> None:
    runs = {
        r["name"]: r
        for r in json.loads(cli("runs", "list", "-p", "demo", "--json").stdout)
        if "test_auc" in r["metrics"]
    }
    boosted = runs["train_gradient_boosting"]["id"]
    history = json.loads(cli("runs", "history", boosted, "staged_test_auc", "--json").stdout)
    assert [p["step"] for p in history] == list(range(1, 101))
    losses = json.loads(cli("runs", "history", boosted, "train_loss", "--json").stdout)
    assert len(losses) == 100
    shown = json.loads(cli("runs", "show", boosted, "--json").stdout)
    assert "test AUC" in shown["notes"][0]["text"]

    result = cli("artifacts", "get", boosted, "model.pkl", "--dest", str(tmp_path))
    assert result.exit_code == 0, result.output
    model = pickle.loads((tmp_path / "model.pkl").read_bytes())
    from sklearn.datasets import load_breast_cancer

    features, _ = load_breast_cancer(return_X_y=True)
    assert model.predict(features[:5]).shape == (5,)


def test_an_error_is_one_line_without_traceback(in_demo: Demo) -> None:
    done = run_loopml("runs", "show", "abcdef12")
    assert done.returncode == 1
    assert done.stderr == "error: No run with id 'abcdef12'.\n"
    assert done.stdout == ""

    unreachable = run_loopml(
        "runs", "list", LOOPML_STORE_URI="postgresql+psycopg://nobody@127.0.0.1:1/x"
    )
    assert unreachable.returncode == 1
    assert len(unreachable.stderr.splitlines()) == 1
    assert "Traceback" not in unreachable.stderr


def test_debug_shows_the_traceback(in_demo: Demo) -> None:
    done = run_loopml("--debug", "runs", "show", "abcdef12")
    assert done.returncode == 1
    assert "Traceback (most recent call last):" in done.stderr
    assert done.stderr.endswith("error: No run with id 'abcdef12'.\n")


def test_importing_the_cli_stays_light() -> None:
    heavy = ["sklearn", "sqlalchemy", "pandas", "numpy", "loopml.tracking", "rich.markdown"]
    code = f"import sys, loopml.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
