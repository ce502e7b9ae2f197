"""Real ``loopml`` processes: reading never creates a home, and searches answer clearly.

Each read command runs in an empty folder with no ``LOOPML_*`` variable, so the
home is the default ``./.loopml``; it must fail with one line naming where it
looked, and leave the folder empty. Writes still create the home.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_support import LOOPML

from loopml.tracking import TrackingClient

READS = [
    ("runs", "list"),
    ("runs", "list", "--json"),
    ("runs", "list", "-p", "proj", "-f", "metrics.auc > 0.9"),
    ("runs", "show", "abcdef12"),
    ("runs", "compare", "abcdef12", "abcdef13"),
    ("runs", "history", "abcdef12", "auc"),
    ("runs", "env", "abcdef12"),
    ("runs", "delete", "abcdef12", "-y"),
    ("runs", "restore", "abcdef12"),
    ("runs", "mark-failed", "abcdef12"),
    ("runs", "tag", "abcdef12", "stage=review"),
    ("runs", "untag", "abcdef12", "stage"),
    ("artifacts", "list", "abcdef12"),
    ("artifacts", "get", "abcdef12", "model.pkl"),
    ("projects", "list"),
    ("data", "list"),
    ("data", "versions", "credit"),
    ("data", "show", "credit:1"),
    ("data", "schema", "credit"),
    ("data", "diff", "credit:1", "credit:2"),
    ("data", "delete", "credit:1", "-y"),
    ("data", "restore", "credit:1"),
    ("pipelines", "list"),
    ("pipelines", "show", "abcdef12"),
    ("approvals", "list"),
    ("models", "list"),
    ("models", "versions", "credit"),
    ("models", "show", "credit/1"),
    ("models", "policy", "credit"),
    ("models", "history", "credit"),
    ("models", "card", "credit/1"),
    ("models", "requirements", "credit/1"),
    ("deployments", "list"),
    ("deployments", "show", "credit"),
    ("deployments", "history", "credit"),
    ("deployments", "compare", "credit"),
    ("monitor", "list"),
    ("monitor", "show", "credit-live"),
    ("monitor", "history", "credit-live"),
    ("monitor", "report", "credit-live"),
    ("monitor", "delete", "credit-live", "-y"),
    ("alerts", "list"),
    ("alerts", "ack", "1"),
    ("gc",),
]


def _run(folder: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    if home is not None:
        env["LOOPML_HOME"] = str(home)
    return subprocess.run(
        [str(LOOPML), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_a_read_in_an_empty_folder_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    done = _run(folder, *args)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    store = folder / ".loopml" / "loopml.db"
    assert done.stderr.startswith(f"error: No loopml store at {store} ")
    assert "LOOPML_HOME" in done.stderr
    assert "loopml demo" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert list(folder.iterdir()) == []


def test_a_read_with_a_missing_loopml_home_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nowhere" / "home"
    done = _run(tmp_path, "runs", "list", home=home)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: No loopml store at {home / 'loopml.db'} ")
    assert not (tmp_path / "nowhere").exists()


def test_a_write_still_creates_the_home_then_reads_work(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "credit.csv").write_text("id,income\n1,10\n2,20\n")
    added = _run(folder, "data", "add", "credit", "credit.csv", "-p", "proj")
    assert added.returncode == 0, added.stderr
    assert (folder / ".loopml" / "loopml.db").is_file()
    listed = _run(folder, "data", "list", "-p", "proj", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"credit"' in listed.stdout


@pytest.fixture
def searched(tmp_path: Path) -> tuple[Path, Path, str]:
    """A home with one run of project ``proj`` (metric auc, param C=1.0, tag team)."""
    folder = tmp_path / "searched"
    folder.mkdir()
    home = folder / "home"
    client = TrackingClient(f"sqlite:///{home / 'loopml.db'}", str(home / "artifacts"))
    try:
        run_id = client.create_run(project="proj", params={"C": "1.0"}, tags={"team": "v"})
        client.log_metric(run_id, "auc", 0.95)
        client.end_run(run_id)
    finally:
        client.close()
    return folder, home, run_id


@pytest.mark.slow
def test_an_unknown_project_is_one_line_and_exit_1(searched: tuple[Path, Path, str]) -> None:
    folder, home, _ = searched
    for cmd in (("runs", "list"), ("data", "list"), ("models", "list"), ("pipelines", "list")):
        done = _run(folder, *cmd, "-p", "prj", home=home)
        assert done.returncode == 1, cmd
        assert done.stderr == (
            "error: No project named 'prj' (did you mean 'proj'?); "
            "'loopml projects list' shows the projects there are.\n"
        ), cmd
        assert done.stdout == ""
    done = _run(folder, "deployments", "list", "-p", "prj", "--json", home=home)
    assert (done.returncode, done.stdout) == (1, "")
    assert len(done.stderr.splitlines()) == 1


def test_an_unknown_filter_key_is_a_yellow_warning_and_the_empty_result_prints(
    searched: tuple[Path, Path, str],
) -> None:
    folder, home, _ = searched
    done = _run(folder, "runs", "list", "-p", "proj", "-f", "metrics.acu > 0.9", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "warning: unknown filter key metrics.acu (closest: metrics.auc): "
        "no run of project 'proj' has logged it.\n"
    )
    assert "No runs found." in done.stdout
    as_json = _run(
        folder, "runs", "list", "-p", "proj", "-f", "tags.tem = 'v'", "--json", home=home
    )
    assert (as_json.returncode, as_json.stdout.strip()) == (0, "[]")
    assert as_json.stderr.startswith("warning: unknown filter key tags.tem (closest: tags.team)")


def test_numbers_find_params_logged_as_text(searched: tuple[Path, Path, str]) -> None:
    folder, home, run_id = searched
    for text, found in (
        ("params.C = 1", True),
        ("params.C > 0.5", True),
        ("params.C = '1'", False),
    ):
        done = _run(folder, "runs", "list", "-p", "proj", "-f", text, "--json", home=home)
        assert done.returncode == 0, done.stderr
        assert (run_id in done.stdout) is found, text


def test_a_short_prefix_is_one_line_saying_so(searched: tuple[Path, Path, str]) -> None:
    folder, home, run_id = searched
    done = _run(folder, "runs", "show", run_id[:3], home=home)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: The run id prefix {run_id[:3]!r} is too short: give at least 4 characters "
        "of the run id ('loopml runs list' shows them).\n"
    )
    shown = _run(folder, "runs", "show", run_id[:4], "--json", home=home)
    assert shown.returncode == 0, shown.stderr


def test_the_read_commands_are_real_commands_and_all_tested() -> None:
    import typer.main

    from loopml.cli import app
    from loopml.cli._client import READ_COMMANDS

    root = typer.main.get_command(app)
    for path in READ_COMMANDS:
        command = root
        for word in path.split():
            command = command.commands[word]  # type: ignore[attr-defined]
    tested = {" ".join(args[:2]) if args[0] != "gc" else "gc" for args in READS}
    assert tested == set(READ_COMMANDS)
