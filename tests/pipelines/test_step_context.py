"""Step runs carry the pipeline run's code context, so models trained in a step name their commit.

The pipeline lives in a real git repository made here and runs in a child process
from inside it, as a user would run it; the test then reads the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import git
from loopml.approvals import ApprovalClient
from loopml.pipelines import get_pipeline_run
from loopml.registry._api import get_client as registry_client
from loopml.registry._card import build_card
from loopml.tracking import get_client

_FLOW = """
import loopml
import numpy as np
from sklearn.linear_model import LogisticRegression


@loopml.step
def rows(n: int) -> list:
    return [[float(i), float(i % 3)] for i in range(n)]


@loopml.step
def train(data: list) -> str:
    X = np.asarray(data)
    y = (X[:, 0] > len(data) / 2).astype("int64")
    return loopml.models.register(LogisticRegression().fit(X, y), "clf").ref


@loopml.pipeline
def flow(n: int = 20):
    train(rows(n))
"""


def _run_in(repo: Path, program: str) -> str:
    """Run ``program`` with python inside ``repo``; return the last line it printed."""
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_model_trained_in_a_pipeline_step_names_its_commit(tmp_path: Path) -> None:
    """Issue 12 item 17: every step run records the pipeline run's git context."""
    repo = tmp_path / "project"
    (repo / "proj").mkdir(parents=True)
    (repo / "proj" / "__init__.py").write_text("")
    (repo / "proj" / "flow.py").write_text(textwrap.dedent(_FLOW))
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "flow")
    commit = git(repo, "rev-parse", "HEAD")
    program = (
        "from loopml.pipelines._loader import load_pipeline\n"
        "flow = load_pipeline('proj.flow:flow')\n"
        "first = flow.run()\n"
        "print(first.id, flow.run().id)\n"  # the second run answers both steps from the cache
    )
    first_id, cached_id = _run_in(repo, program).split()

    tracking = get_client()
    pipeline_git = tracking.get_run(first_id).context["git"]
    assert pipeline_git["commit"] == commit
    assert (pipeline_git["branch"], pipeline_git["dirty"]) == ("main", False)
    for run_id in (first_id, cached_id):
        steps = get_pipeline_run(run_id).steps
        for name in ("rows", "train"):
            step_run = tracking.get_run(steps[name].run_id)
            assert step_run.context["git"] == pipeline_git, (run_id, name)
            assert step_run.context.get("python_version")
            assert step_run.context.get("hostname") is not None
    assert get_pipeline_run(cached_id).steps["train"].cached_from is not None

    trained_by = get_pipeline_run(first_id).steps["train"].run_id
    version = registry_client().get_version("clf/1", project="default")
    assert version.source_run_id == trained_by
    assert version.git_commit == commit
    card = build_card(registry_client(), "clf/1", "default").to_markdown()
    assert f"commit: {commit}" in card
    assert "commit: unknown" not in card


_GATED = _FLOW.replace(
    "    train(rows(n))", '    data = rows(n)\n    loopml.approval_gate("Train?")\n    train(data)'
)


@pytest.mark.slow
def test_steps_run_by_a_resume_record_the_code_they_ran(tmp_path: Path) -> None:
    """Issue 12 item 17: a resumed step records the resuming process's commit, not a stale one."""
    repo = tmp_path / "project"
    (repo / "proj").mkdir(parents=True)
    (repo / "proj" / "__init__.py").write_text("")
    (repo / "proj" / "flow.py").write_text(textwrap.dedent(_GATED))
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "flow")
    before = git(repo, "rev-parse", "HEAD")
    run_id = _run_in(
        repo,
        "from loopml.pipelines._loader import load_pipeline\n"
        "print(load_pipeline('proj.flow:flow').run().id)\n",
    )
    waiting = get_pipeline_run(run_id)
    assert waiting.status == "waiting_for_approval"
    (repo / "NOTES.md").write_text("a later commit\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "notes")
    after = git(repo, "rev-parse", "HEAD")

    tracking = get_client()
    ApprovalClient(tracking.store).decide(waiting.steps["approval"].approval_id, "approved")
    _run_in(repo, f"from loopml.pipelines import resume\nprint(resume({run_id!r}).status)\n")

    done = get_pipeline_run(run_id)
    assert done.status == "finished"
    assert tracking.get_run(run_id).context["git"]["commit"] == before
    assert tracking.get_run(done.steps["rows"].run_id).context["git"]["commit"] == before
    assert tracking.get_run(done.steps["train"].run_id).context["git"]["commit"] == after
    assert registry_client().get_version("clf/1", project="default").git_commit == after
