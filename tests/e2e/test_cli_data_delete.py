"""``loopml data delete`` / ``data restore`` in real processes, on SQLite and PostgreSQL.

Deleting asks on a terminal (checked through a pseudo-terminal), refuses without
one unless ``--yes`` (exit 2, never waits), and every error is one line.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_support import LOOPML, Cli, subprocess_env

import loopml.data
from loopml.data import DataClient
from loopml.errors import DatasetVersionDeleted
from loopml.tracking import get_client

pytestmark = pytest.mark.slow

P = ("-p", "proj")


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(rows), "x": [i / 7 for i in range(rows)]})


@pytest.fixture
def two(fluent_store: str) -> str:
    """Dataset ``ds`` of project ``proj`` with versions 1 and 2, in the store under test."""
    loopml.data.register("ds", _frame(10), project="proj")
    loopml.data.register("ds", _frame(20), project="proj")
    return fluent_store


def _loopml(store_uri: str, *args: str, stdin: Any = subprocess.DEVNULL) -> Any:
    return subprocess.run(
        [str(LOOPML), *args],
        capture_output=True,
        text=True,
        stdin=stdin,
        env=subprocess_env(LOOPML_STORE_URI=store_uri),
        timeout=120,
        check=False,
    )


def _one_line(done: Any, code: int, starts: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(starts), done.stderr
    assert "Traceback" not in done.stderr


def _live() -> list[int]:
    # Read in-process: a process start per check would only slow the tests down (the
    # listing's own output is checked below, in-process, and by ``--all`` in a process).
    return [v.version for v in loopml.data.versions("ds", project="proj")]


def test_delete_and_restore_in_real_processes(two: str) -> None:
    refused = _loopml(two, "data", "delete", "ds:2", *P)
    _one_line(
        refused,
        2,
        "error: refusing to delete ds:2 without confirmation: stdin is not a terminal; "
        "pass --yes (-y) to delete.",
    )
    deleted = _loopml(two, "data", "delete", "ds:2", *P, "-y", "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stderr == ""
    body = json.loads(deleted.stdout)
    assert (body["ref"], body["deleted"], body["references"], body["latest"]) == (
        "ds:2",
        True,
        [],
        "ds:1",
    )
    assert isinstance(body["deleted_at"], int)
    assert _live() == [1]
    _one_line(
        _loopml(two, "data", "delete", "ds:2", *P, "--yes"),
        1,
        "error: Dataset version ds:2 in project 'proj' was deleted on ",
    )
    shown = _loopml(two, "data", "versions", "ds", *P, "--all")
    assert shown.returncode == 0, shown.stderr
    assert "deleted (was ready)" in shown.stdout
    restored = _loopml(two, "data", "restore", "ds:2", *P)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == "Restored dataset version ds:2; ds@latest is ds:2.\n"
    _one_line(
        _loopml(two, "data", "restore", "ds:2", *P, "--json"),
        1,
        "error: Dataset version ds:2 in project 'proj' is not deleted; "
        "there is nothing to restore.",
    )
    assert _live() == [1, 2]


def _on_a_terminal(store_uri: str, answer: str, *args: str) -> tuple[int, str, str]:
    """Run ``loopml ARGS`` with a pseudo-terminal as stdin, ``answer`` typed ahead."""
    main, secondary = pty.openpty()
    try:
        os.write(main, answer.encode())
        done = _loopml(store_uri, *args, stdin=secondary)
    finally:
        os.close(secondary)
        os.close(main)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, [1]), ("n\n", 1, [1, 2])])
def test_a_terminal_is_asked_first(two: str, answer: str, code: int, left: list[int]) -> None:
    returncode, stdout, stderr = _on_a_terminal(two, answer, "data", "delete", "ds:2", *P)
    assert returncode == code, (stdout, stderr)
    # The question and what it is about go to stderr: stdout is only the result.
    assert "Delete dataset version ds:2? [y/N]" in stderr
    assert "Dataset version ds:2" in stderr
    if code:
        assert stderr.endswith("error: Not confirmed: ds:2 is not deleted.\n")
        assert stdout == ""
    else:
        assert stdout.startswith("Deleted dataset version ds:2")
    assert _live() == left


def test_a_terminal_answer_keeps_json_clean(two: str) -> None:
    code, stdout, stderr = _on_a_terminal(two, "y\n", "data", "delete", "ds:1", *P, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["ref"] == "ds:1"
    assert "Delete dataset version ds:1?" in stderr


# -- in-process: the details of every output and error ----------------------------------


def test_versions_list_show_and_diff_mark_deleted(cli: Cli, two: str) -> None:
    assert cli("data", "delete", "ds:1", *P, "-y").exit_code == 0
    hidden = json.loads(cli("data", "versions", "ds", *P, "--json").stdout)
    assert [v["ref"] for v in hidden] == ["ds:2"]
    every = json.loads(cli("data", "versions", "ds", *P, "--all", "--json").stdout)
    assert [(v["ref"], v["deleted"]) for v in every] == [("ds:1", True), ("ds:2", False)]
    only = json.loads(cli("data", "versions", "ds", *P, "--deleted", "--json").stdout)
    assert [v["ref"] for v in only] == ["ds:1"]
    both = cli("data", "versions", "ds", *P, "--all", "--deleted")
    assert both.exit_code == 2
    assert both.stderr == (
        "error: Invalid value for --deleted: use either --all or --deleted, not both. "
        "(see 'loopml data versions --help')\n"
    )
    (listed,) = json.loads(cli("data", "list", *P, "--json").stdout)
    assert (listed["latest"], listed["version_count"], listed["deleted_count"]) == ("ds:2", 1, 1)
    table = cli("data", "list", *P).stdout
    assert "1 (+1 deleted)" in table
    show = cli("data", "show", "ds:1", *P)
    assert show.exit_code == 0, show.output
    assert "deleted (was ready)" in show.stdout
    assert "loopml data restore ds:1 -p proj" in show.stdout
    assert json.loads(cli("data", "show", "ds:1", *P, "--json").stdout)["deleted"] is True
    diff = json.loads(cli("data", "diff", "ds:1", "ds:2", *P, "--json").stdout)
    assert diff["deleted"] == ["ds:1"]
    assert "note: ds:1 is deleted" in cli("data", "diff", "ds:1", "ds:2", *P).stdout


def test_deleting_the_last_version_says_none_is_usable(cli: Cli, two: str) -> None:
    assert cli("data", "delete", "ds:1", *P, "-y").exit_code == 0
    last = cli("data", "delete", "ds:2", *P, "-y")
    assert last.exit_code == 0, last.output
    assert "note: dataset 'ds' now has no usable version." in last.stdout
    shown = cli("data", "show", "ds", *P)
    assert shown.exit_code == 1
    assert shown.stderr.splitlines() == [
        "error: Dataset 'ds' in project 'proj' has no usable version (deleted: 1, 2). "
        "Restore one with 'loopml data restore ds:2 -p proj' (or loopml.data.restore('ds:2'))."
    ]
    assert cli("data", "versions", "ds", *P).stdout.startswith("Dataset 'ds' has no versions")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("ds", "error: Invalid value for 'REF': 'ds' does not name one version; write ds:N"),
        ("ds@latest", "error: Invalid value for 'REF': 'ds@latest' does not name one version"),
        ("ds:x", "error: Invalid value for 'REF': 'ds:x' is not a dataset reference"),
    ],
)
def test_a_version_is_named_by_number(cli: Cli, two: str, ref: str, message: str) -> None:
    for command in ("delete", "restore"):
        result = cli("data", command, ref, *P, "-y" if command == "delete" else "--json")
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith(message), result.stderr


def test_unknown_versions_are_one_line(cli: Cli, two: str) -> None:
    result = cli("data", "delete", "ds:7", *P, "-y")
    assert result.exit_code == 1
    assert result.stderr == "error: Dataset 'ds' in project 'proj' has no version 7.\n"
    result = cli("data", "restore", "nope:1", *P)
    assert result.exit_code == 1
    assert result.stderr == "error: No dataset named 'nope' in project 'proj'.\n"


def test_loading_a_deleted_version_names_the_restore(cli: Cli, two: str) -> None:
    assert cli("data", "delete", "ds:2", *P, "-y").exit_code == 0
    result = cli("data", "validate", "ds:2", "/no/such/file.csv", *P)
    # validating against a deleted version's schema is metadata: only the file is missing
    assert "deleted" not in result.stderr
    with pytest.raises(DatasetVersionDeleted, match="loopml data restore ds:2"):
        loopml.data.load("ds:2", project="proj")


def test_references_are_listed_and_do_not_block(cli: Cli, two: str, tmp_path: Path) -> None:
    tracking = get_client()
    run = tracking.create_run(project="proj", name="fit", capture_context=False)
    DataClient(tracking.store, tracking.artifacts).load("ds:1", project="proj", run_id=run)
    text = cli("data", "delete", "ds:1", *P, "-y")
    assert text.exit_code == 0, text.output
    assert text.stderr == ""  # no Python warning: the references are in the output
    assert "warning: ds:1 is still referred to by 1 live object(s)" in text.stdout
    assert f"  - experiment fit (run {run}): input" in text.stdout
    assert cli("data", "restore", "ds:1", *P).exit_code == 0
    body = json.loads(cli("data", "delete", "ds:1", *P, "-y", "--json").stdout)
    assert body["references"] == [
        {"kind": "run", "id": run, "relation": "input", "label": f"experiment fit (run {run})"}
    ]
