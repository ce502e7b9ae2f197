"""The suite without a PostgreSQL server: one skip line, or a loud stop when CI requires it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
_TEST = "tests/store/test_store.py::test_opening_creates_and_migrates_an_empty_store"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _pytest(port: int, *, require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "PYTEST_"))}
    env["LOOPML_TEST_POSTGRES_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    if require:
        env["LOOPML_REQUIRE_POSTGRES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", _TEST],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_unreachable_server_skips_the_postgres_tests_with_one_line(closed_port: int) -> None:
    result = _pytest(closed_port, require=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "LOOPML_REQUIRE_POSTGRES" in line]
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("SKIPPED [1] tests/conftest.py:")
    assert f"127.0.0.1:{closed_port}/test is unreachable" in lines[0]


def test_required_postgres_stops_the_run_before_any_test(closed_port: int) -> None:
    result = _pytest(closed_port, require=True)
    assert result.returncode != 0
    assert "passed" not in result.stdout
    assert (
        f"LOOPML_REQUIRE_POSTGRES=1 but PostgreSQL at postgresql+psycopg://postgres@127.0.0.1:"
        f"{closed_port}/test is not usable" in result.stderr
    )
