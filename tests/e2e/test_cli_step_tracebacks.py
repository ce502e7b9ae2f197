"""``loopml pipelines run FILE.py:PIPELINE`` then ``loopml runs show``: a failing step's
traceback names the user's file and line and shows the source line."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from cli_support import LOOPML, subprocess_env

FLOW = textwrap.dedent(
    """
    import loopml


    @loopml.step
    def load() -> list:
        return [1, 2, 3]


    @loopml.step
    def check(xs: list) -> int:
        total = sum(xs)
        raise ValueError(f"bad total {total}")


    @loopml.pipeline
    def flow():
        check(load())
    """
)


def _loopml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOOPML), *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_a_failing_steps_traceback_shows_the_users_file_line_and_source(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(FLOW)
    line = FLOW.splitlines().index('    raise ValueError(f"bad total {total}")') + 1

    ran = _loopml("pipelines", "run", "flow.py:flow", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    pipeline_run = json.loads(_loopml("pipelines", "list", "--json", cwd=tmp_path).stdout)[0]
    step_run = pipeline_run["steps"]["check"]["run_id"]

    stored = json.loads(_loopml("runs", "show", step_run, "--json", cwd=tmp_path).stdout)
    traceback = stored["failure"]["traceback"]
    assert "<dynamic-code>" not in traceback
    assert f'File "{path}", line {line}, in check\n' in traceback
    assert '    raise ValueError(f"bad total {total}")\n' in traceback

    shown = _loopml("runs", "show", step_run, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f'File "{path}", line {line}, in check' in shown.stdout
    assert 'raise ValueError(f"bad total {total}")' in shown.stdout
