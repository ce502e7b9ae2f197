"""The fluent API over the default client, on every back-end."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import loopml
import loopml.tracking
from loopml.errors import RunNotActive


def test_a_with_block_finishes_the_run_and_nests_children(fluent_store: str) -> None:
    with loopml.start_run(name="parent", project="p", params={"C": 1.0}) as parent:
        assert loopml.active_run() is parent
        loopml.log_metric("acc", 0.9)
        loopml.log_metrics({"f1": 0.8, "auc": 0.95}, step=1)
        loopml.set_tag("stage", "dev")
        with loopml.start_run(name="child") as child:
            assert loopml.active_run() is child
            loopml.log_param("fold", 1)
        assert loopml.active_run() is parent
    assert loopml.active_run() is None

    info = loopml.get_run(parent.id)
    assert info.status == "finished"
    assert info.metrics == {"acc": 0.9, "f1": 0.8, "auc": 0.95}
    assert info.tags == {"stage": "dev"}
    child_info = loopml.get_run(child.id)
    assert (child_info.parent_id, child_info.project, child_info.params) == (
        parent.id,
        "p",
        {"fold": "1"},
    )


def test_an_exception_fails_the_run_and_propagates(fluent_store: str) -> None:
    with pytest.raises(ZeroDivisionError), loopml.start_run(project="p") as run:
        1 / 0  # noqa: B018
    info = loopml.get_run(run.id)
    assert info.status == "failed"
    assert info.failure is not None and info.failure["type"] == "builtins.ZeroDivisionError"


def test_keyboard_interrupt_marks_the_run_killed(fluent_store: str) -> None:
    with pytest.raises(KeyboardInterrupt), loopml.start_run(project="p") as run:
        raise KeyboardInterrupt
    assert loopml.get_run(run.id).status == "killed"


def test_calls_without_an_active_run_raise_run_not_active() -> None:
    with pytest.raises(RunNotActive, match="start_run"):
        loopml.log_metric("x", 1.0)
    with pytest.raises(RunNotActive):
        loopml.end_run()


def test_notes_figures_and_text(fluent_store: str, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3], [3, 1, 2])
    with loopml.start_run(project="p") as run:
        loopml.log_figure(figure, "plots/curve.png")
        loopml.log_text("# Findings", "notes/findings.md")
        loopml.log_note("Scaling the inputs **doubled** recall.")
    plt.close(figure)
    loopml.log_note("Project-wide insight.", project="p")
    info = loopml.get_run(run.id)
    assert {a.path for a in info.artifacts} == {"plots/curve.png", "notes/findings.md"}
    png = loopml.tracking.get_client().download_artifact(run.id, "plots/curve.png", tmp_path)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert [n.text for n in info.notes] == ["Scaling the inputs **doubled** recall."]


def test_search_runs_through_the_fluent_api(fluent_store: str) -> None:
    for value in (0.2, 0.6, 0.9):
        with loopml.start_run(project="s"):
            loopml.log_metric("auc", value)
    found = loopml.search_runs("s", "metrics.auc > 0.5", order_by=["metrics.auc"])
    assert [r.metrics["auc"] for r in found] == [0.6, 0.9]


def test_runs_left_open_at_exit_are_ended_by_the_exit_status(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, loopml
        run = loopml.start_run(project="exit")
        loopml.log_metric("m", 1.0)
        print(run.id, flush=True)
        if sys.argv[1] == "raise":
            raise RuntimeError("boom")
        """
    )
    ids = {}
    for mode in ("ok", "raise"):
        done = subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, check=False
        )
        ids[mode] = done.stdout.split()[0]
    assert loopml.get_run(ids["ok"]).status == "finished"
    assert loopml.get_run(ids["ok"]).metrics == {"m": 1.0}
    failed = loopml.get_run(ids["raise"])
    assert failed.status == "failed"
    assert failed.failure is not None and failed.failure["message"] == "boom"


def test_context_records_the_script_and_its_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    script = repo / "train.py"
    script.write_text(
        "import loopml\nwith loopml.start_run(project='ctx') as r:\n    print(r.id)\n"
    )
    for command in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "init"]):
        subprocess.run(command, cwd=repo, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    import os

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    context = loopml.get_run(done.stdout.strip()).context
    assert context["entry_point"]["path"].endswith("train.py")
    assert len(context["entry_point"]["sha256"]) == 64
    assert len(context["git"]["commit"]) == 40
    assert context["git"]["dirty"] is False
