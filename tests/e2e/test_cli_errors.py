"""Errors: one red line on stderr and exit 1; tracebacks only with --debug/LOOPML_DEBUG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, Seeded
from hypothesis import given
from hypothesis import strategies as st

from loopml.cli._app import debug_first
from loopml.tracking import TrackingClient

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"


def _boom(self: TrackingClient, run_id: str) -> None:
    raise RuntimeError("kaboom")


def test_an_unreachable_database_is_one_line(cli: Cli) -> None:
    for args in (["runs", "list"], ["runs", "show", "abcdef12"], ["projects", "list"], ["gc"]):
        result = cli(*args, env={"LOOPML_STORE_URI": UNREACHABLE})
        assert result.exit_code == 1, args
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: Cannot open the store postgresql+psycopg://nobody@")
        assert "Traceback" not in result.output


def test_a_home_that_is_a_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("")
    # A write creates the home (a read would only say there is no store there).
    result = cli("projects", "note", "p", "text", env={"LOOPML_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: Cannot create the store folder {home}: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_read_only_home_is_one_line(cli: Cli, read_only_folder: Path) -> None:
    env = {"LOOPML_HOME": str(read_only_folder)}
    result = cli("projects", "note", "p", "text", env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Cannot open the store sqlite:///")
    assert len(result.stderr.splitlines()) == 1
    read = cli("runs", "list", env=env)
    assert read.exit_code == 1
    assert read.stderr.startswith(f"error: No loopml store at {read_only_folder / 'loopml.db'}")
    assert len(read.stderr.splitlines()) == 1


def test_a_bad_setting_is_one_line(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "list", "-p", "proj", env={"LOOPML_HEARTBEAT_TIMEOUT": "soon"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: LOOPML_HEARTBEAT_TIMEOUT must be a float (s)")
    assert len(result.stderr.splitlines()) == 1


def test_debug_flag_shows_the_traceback(cli: Cli, seeded: Seeded) -> None:
    result = cli("--debug", "runs", "show", "abcdef12")
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "loopml.errors.RunNotFound" in result.stderr
    assert result.stderr.endswith("error: No run with id 'abcdef12'.\n")


@pytest.mark.parametrize("value", ["1", "true"])
def test_loopml_debug_shows_the_traceback(cli: Cli, seeded: Seeded, value: str) -> None:
    result = cli("runs", "show", "abcdef12", env={"LOOPML_DEBUG": value})
    assert result.exit_code == 1
    assert "Traceback (most recent call last):" in result.stderr


def test_a_malformed_loopml_debug_does_not_hide_the_error(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "show", "abcdef12", env={"LOOPML_DEBUG": "perhaps"})
    assert (result.exit_code, result.stderr) == (1, "error: No run with id 'abcdef12'.\n")


def test_an_unexpected_error_says_so_and_hints_at_debug(
    cli: Cli, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TrackingClient, "get_run", _boom)
    result = cli("runs", "show", seeded.good)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: unexpected RuntimeError: kaboom",
        "hint: rerun with --debug (or LOOPML_DEBUG=1) to see the traceback.",
    ]
    debug = cli("--debug", "runs", "show", seeded.good)
    assert debug.exit_code == 1
    assert "Traceback (most recent call last):" in debug.stderr
    assert "hint:" not in debug.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["runs", "list", "--foo"], "No such option: --foo (see 'loopml runs list --help')"),
        (["runs", "show"], "Missing argument 'run_id'. (see 'loopml runs show --help')"),
        (["no-such-command"], "No such command 'no-such-command'. (see 'loopml --help')"),
        (["runs", "shw"], "No such command 'shw'. Did you mean 'show'? (see 'loopml runs --help')"),
        (["runs", "list", "--max", "0"], "Invalid value for '--max' / '-n': Input should be "),
        (["runs", "list", "--json", "--bar"], "No such option: --bar (Possible options: --max) "),
        (["runs", "list", "--max"], "Option '--max' requires an argument. (see 'loopml runs list "),
        (
            ["--debug", "deployments", "compare", "credit", "-p"],
            "Option '-p' requires an argument. (see 'loopml deployments compare --help')",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(cli: Cli, args: list[str], line: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {line}")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "abcdef12", "--debug"],
        ["runs", "--debug", "show", "abcdef12"],
        ["runs", "show", "--debug", "abcdef12"],
    ],
)
def test_debug_works_anywhere_on_the_command_line(
    cli: Cli, seeded: Seeded, args: list[str]
) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.endswith("error: No run with id 'abcdef12'.\n")


def test_debug_after_a_double_dash_is_an_argument(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "note", seeded.good, "--json", "--", "--debug")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["note"] == "--debug"


_WORDS = st.sampled_from(["--debug", "--", "runs", "show", "-p", "x", "--json"])


@given(st.lists(_WORDS, max_size=8))
def test_debug_first_moves_only_debug_before_a_double_dash(args: list[str]) -> None:
    moved = debug_first(args)
    end = args.index("--") if "--" in args else len(args)
    assert moved[moved.index("--") if "--" in moved else len(moved) :] == args[end:]
    head = [a for a in args[:end] if a != "--debug"]
    wanted = (["--debug"] if "--debug" in args[:end] else []) + head
    assert moved[: len(moved) - len(args[end:])] == wanted


def test_no_arguments_prints_help(cli: Cli) -> None:
    for args in ([], ["runs"], ["artifacts"], ["projects"]):
        result = cli(*args)
        assert "Usage: " in result.output, args
        assert "Commands" in result.output


def test_help_and_version(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("runs", "artifacts", "projects", "gc", "settings", "demo", "--debug"):
        assert command in result.stdout
    assert cli("runs", "list", "--help").exit_code == 0
    from loopml import __version__

    assert cli("--version").stdout == f"loopml {__version__}\n"
