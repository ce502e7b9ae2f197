"""Reproducing a pipeline run from its recorded commit, in a worktree, step by step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import git
from loopml.errors import InvalidParameter, PipelineDefinitionError
from loopml.pipelines import Event, _state
from loopml.pipelines._reproduce import ReproductionReport, _environment_differences, reproduce
from loopml.pipelines._reproduce_git import map_reference
from loopml.tracking import get_client

_FLOW = """
import random

import loopml

FACTOR = 1


@loopml.step
def load(n: int, source: str) -> list[int]:
    return list(range(n))


@loopml.step
def total(values: list[int]) -> int:
    return sum(values) * FACTOR


@loopml.step
def noise(values: list[int]) -> float:
    return random.random()


@loopml.step
def combine(amount: int, jitter: float) -> float:
    return amount + jitter


@loopml.pipeline
def flow(n: int = 5, data: str = "credit@latest"):
    values = load(n, data)
    combine(total(values), noise(values))
"""

_SCRIPT = """
import loopml


@loopml.step
def square(x: int) -> int:
    return x * x


@loopml.step
def half(x: int) -> float:
    return x / 2


@loopml.pipeline
def numbers(x: int = 3):
    half(square(x))


if __name__ == "__main__":
    print(numbers.run(params={"x": 4}).id)
"""


@dataclass(frozen=True)
class Stores:
    store_uri: str
    artifact_uri: str
    home: str

    def env(self) -> dict[str, str]:
        return {
            "LOOPML_STORE_URI": self.store_uri,
            "LOOPML_ARTIFACT_URI": self.artifact_uri,
            "LOOPML_HOME": self.home,
        }


@dataclass(frozen=True)
class Recorded:
    repo: Path
    commit: str
    run_id: str


def _make_repo(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "pipeline")
    return git(repo, "rev-parse", "HEAD").strip()


def _run(repo: Path, stores: Stores, *argv: str) -> str:
    """Run python in ``repo`` as a user would; return the last line it printed (a run id)."""
    env = {**os.environ, **stores.env(), "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, *argv], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    base = tmp_path_factory.mktemp("stores")
    return Stores(f"sqlite:///{base / 'loopml.db'}", str(base / "artifacts"), str(base / "home"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, stores: Stores) -> Recorded:
    """A module pipeline run from inside its repository, then the code changed after it."""
    repo = tmp_path_factory.mktemp("project")
    commit = _make_repo(repo, {"proj/__init__.py": "", "proj/flow.py": _FLOW})
    (repo / "notes.txt").write_text("not committed\n")  # the run records a dirty tree
    program = (
        "from loopml.pipelines._loader import load_pipeline\n"
        "print(load_pipeline('proj.flow:flow').run().id)"
    )
    run_id = _run(repo, stores, "-c", program)
    flow = repo / "proj" / "flow.py"
    flow.write_text(flow.read_text().replace("FACTOR = 1", "FACTOR = 2"))
    return Recorded(repo, commit, run_id)


@pytest.fixture
def use_stores(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    for name, value in stores.env().items():
        monkeypatch.setenv(name, value)
    yield stores


def _worktrees(repo: Path) -> list[str]:
    return [
        line
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_reproduces_the_committed_code_and_names_the_nondeterministic_step(
    recorded: Recorded, use_stores: Stores
) -> None:
    events: list[Event] = []
    report = reproduce(recorded.run_id[:8], on_event=events.append)

    assert isinstance(report, ReproductionReport)
    client = get_client()
    reproduction = _state.load_pipeline_run(client.store, report.reproduced_run_id)
    assert report.original_run_id == recorded.run_id
    assert report.reproduced_run_id != recorded.run_id
    assert report.commit == recorded.commit
    by_step = {s.step: s for s in report.steps}
    assert list(by_step) == ["load", "total", "noise", "combine"]
    # FACTOR = 2 in the working tree would change `total`: the commit's code ran.
    assert by_step["load"].matches and by_step["total"].matches
    assert by_step["total"].reason == "identical"
    assert by_step["noise"].reason == "not_deterministic"
    assert not by_step["noise"].matches
    assert "not deterministic" in by_step["noise"].note
    assert by_step["combine"].reason == "inputs_differed"
    assert "noise" in by_step["combine"].note
    assert report.not_deterministic == ["noise"]
    assert report.reproduced is False
    assert report.worktree is None
    finished = {e.step for e in events if e.status == "finished"}
    assert finished == {"load", "total", "noise", "combine"}
    assert {e.run_id for e in events} == {s.run_id for s in reproduction.steps.values()}

    warnings = " ".join(report.warnings)
    assert "uncommitted changes" in warnings
    assert "'credit@latest'" in warnings and "'data'" in warnings

    assert reproduction.git_commit == recorded.commit
    assert reproduction.use_cache is False
    assert reproduction.params == {"n": 5, "data": "credit@latest"}
    assert client.get_run(report.reproduced_run_id).tags["loopml.reproduction_of"] == (
        recorded.run_id
    )
    assert _worktrees(recorded.repo) == [f"worktree {recorded.repo}"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["not_deterministic"] == ["noise"]
    assert data["steps"][1]["original"] == data["steps"][1]["reproduced"]


def test_keep_worktree_leaves_the_commit_checked_out(
    recorded: Recorded, use_stores: Stores
) -> None:
    report = reproduce(recorded.run_id, keep_worktree=True)
    try:
        assert report.worktree is not None
        worktree = Path(report.worktree)
        assert "FACTOR = 1" in (worktree / "proj" / "flow.py").read_text()
        assert len(_worktrees(recorded.repo)) == 2
        assert not list(worktree.rglob("__pycache__"))
    finally:
        if report.worktree:
            git(recorded.repo, "worktree", "remove", "--force", report.worktree)
            assert not Path(report.worktree).exists()
    assert {s.step: s.matches for s in report.steps}["total"]


def test_a_script_pipeline_reproduces_exactly(
    tmp_path: Path, stores: Stores, use_stores: Stores
) -> None:
    repo = tmp_path / "scripts"
    repo.mkdir()
    _make_repo(repo, {"jobs/train.py": _SCRIPT})
    run_id = _run(repo, stores, "jobs/train.py")
    recorded = _state.load_pipeline_run(get_client().store, run_id)
    assert recorded.reference == f"{repo / 'jobs' / 'train.py'}:numbers"
    (repo / "jobs" / "train.py").write_text("raise SystemExit('the current code must not run')")

    report = reproduce(run_id)

    assert report.reproduced is True
    assert [(s.step, s.reason) for s in report.steps] == [
        ("square", "identical"),
        ("half", "identical"),
    ]
    assert report.warnings == ()
    assert _worktrees(repo) == [f"worktree {repo}"]


def _fake_pipeline_run(git_commit: str | None, reference: str = "proj.flow:flow") -> str:
    client = get_client()
    run_id = client.create_run(name="flow", kind="pipeline", capture_context=False)
    _state.insert_pipeline_run(
        client.store,
        run_id,
        pipeline="flow",
        reference=reference,
        params={},
        graph={"nodes": []},
        executor="local",
        use_cache=True,
        git_commit=git_commit,
    )
    return run_id


def test_a_run_made_outside_git_is_refused() -> None:
    run_id = _fake_pipeline_run(None)
    with pytest.raises(InvalidParameter, match="not made from a git repository"):
        reproduce(run_id)


def test_a_commit_missing_from_the_repository_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_id = _fake_pipeline_run("0" * 40)
    with pytest.raises(InvalidParameter, match="Commit 000000000000 of the run is not in"):
        reproduce(run_id)


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="'executor' parameter of reproduce"):
        reproduce("abcd", executor="dask")


def test_code_that_cannot_be_loaded_at_the_commit_is_a_clear_error(
    recorded: Recorded, use_stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(recorded.repo)  # no recorded git root: the repository is found from here
    run_id = _fake_pipeline_run(recorded.commit, reference="proj.flow:missing")
    with pytest.raises(PipelineDefinitionError, match="has no 'missing'"):
        reproduce(run_id)
    assert _worktrees(recorded.repo) == [f"worktree {recorded.repo}"]


def test_a_src_layout_package_is_imported_from_the_worktree(tmp_path: Path) -> None:
    worktree = tmp_path / "worktree"
    (worktree / "src" / "proj").mkdir(parents=True)
    (worktree / "src" / "proj" / "__init__.py").write_text("")
    reference, paths = map_reference("proj.flow:flow", tmp_path / "repo", tmp_path, worktree)
    assert reference == "proj.flow:flow"
    assert paths == [worktree / "src", worktree]
    with pytest.raises(InvalidParameter, match="not in its repository"):
        map_reference("elsewhere.flow:flow", tmp_path / "repo", tmp_path, worktree)


def test_an_environment_difference_is_reported() -> None:
    before = {"python_version": "3.11.9", "packages_sha256": "a" * 64}
    after = {"python_version": "3.11.9", "packages_sha256": "b" * 64}
    assert _environment_differences(before, after) == [
        f"packages sha256 {'a' * 64} then, {'b' * 64} now"
    ]
    assert _environment_differences(before, before) == []
    assert _environment_differences(before, {}) == []
