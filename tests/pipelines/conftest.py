"""Fixtures of the pipeline tests: the importable test project, execution marks, subprocesses.

``project/`` goes on ``sys.path`` when this file is imported, at collection time, so
before any local-executor forkserver starts: the forkserver copies ``sys.path`` once,
and its workers must be able to import ``lp_project`` to unpickle steps by reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

PROJECT = Path(__file__).parent / "project"
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

SCRIPT = PROJECT / "lp_run.py"

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run ``git ARGS`` in ``repo`` as a fixed test author, ignoring the user's config."""
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **_GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


class Marks:
    """The executions the project's steps appended to their marks file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def counts(self) -> Counter[str]:
        """How many times each step really ran."""
        if not self.path.exists():
            return Counter()
        return Counter(self.path.read_text(encoding="utf-8").split())

    def __getitem__(self, label: str) -> int:
        return self.counts()[label]


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Marks:
    """Make the project's steps record each execution (workers inherit the variable)."""
    path = tmp_path / "marks.txt"
    monkeypatch.setenv("LP_PROJECT_MARKS", str(path))
    return Marks(path)


@pytest.fixture
def project_env() -> dict[str, str]:
    """Environment for a child process: this one's (LOOPML_HOME …) plus the project."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_script(args: list[str], env: dict[str, str], timeout: float = 60) -> dict[str, str]:
    """Run ``lp_run.py`` with ``args`` to its end; return what it printed as JSON."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"lp_run.py {args} failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
