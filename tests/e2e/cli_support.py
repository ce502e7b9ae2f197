"""Helpers for the CLI tests (importable from test modules; fixtures live in conftest)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a real ``loopml`` process: this test's LOOPML_HOME, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = os.environ["LOOPML_HOME"]
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env
