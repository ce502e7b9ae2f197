"""Helpers for the CLI tests (importable from test modules; fixtures live in conftest)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from loopml.cli import app

LOOPML = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "loopml"


@dataclass
class Cli:
    """Runs ``loopml ARGS`` in-process against the real app."""

    runner: CliRunner

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


@dataclass(frozen=True)
class Seeded:
    """Ids of the runs the ``seeded`` fixture made in project ``proj``."""

    good: str
    bad: str
    live: str


@dataclass(frozen=True)
class Demo:
    """A LOOPML_HOME in which ``loopml demo`` ran twice (the second with --json).

    Built once per test run and shared: tests read it and write nothing into it.
    """

    home: Path
    first: str  # the first demo's stdout
    second: str  # the second demo's narration, on stderr with --json
    summary: dict[str, Any]  # the second demo's JSON summary (stdout)


def run_loopml(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``loopml`` executable with :func:`subprocess_env` (``env`` added)."""
    return subprocess.run(
        [str(LOOPML), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=timeout,
        check=False,
    )


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a real ``loopml`` process: this test's LOOPML_HOME, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = os.environ["LOOPML_HOME"]
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env
