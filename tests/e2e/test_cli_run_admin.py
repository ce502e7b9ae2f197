"""``loopml runs delete|restore|mark-failed|tag|untag|env``, ``runs list --deleted
--all-projects``, ``projects list`` counts and ``gc --deleted-grace`` against a real store."""

from __future__ import annotations

import json
import subprocess

import pytest
from cli_support import LOOPML, Cli, Seeded, subprocess_env
from sqlalchemy import update

from loopml.store import tables
from loopml.tracking import TrackingClient


def _one_error_line(stderr: str, *fragments: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, stderr)


def test_delete_list_show_and_restore(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    child = sdk.create_run(parent_id=seeded.good, capture_context=False)
    sdk.end_run(child)
    done = cli("runs", "delete", seeded.good[:8], "-y")
    assert done.exit_code == 0, done.output
    assert "Deleted 1 run, with 1 child run(s)" in done.stdout

    listed = json.loads(cli("runs", "list", "-p", "proj", "--json").stdout)
    assert {run["id"] for run in listed} == {seeded.bad, seeded.live}
    gone = cli("runs", "list", "-p", "proj", "--deleted")
    assert gone.exit_code == 0, gone.output
    assert seeded.good[:8] in gone.stdout and child[:8] in gone.stdout
    assert seeded.bad[:8] not in gone.stdout and "Deleted runs of 'proj'" in gone.stdout

    shown = cli("runs", "show", seeded.good)
    assert shown.exit_code == 0, shown.output
    assert "(deleted)" in shown.stdout and f"loopml runs restore {seeded.good[:8]}" in shown.stdout
    data = json.loads(cli("runs", "show", seeded.good, "--json").stdout)
    assert data["deleted"] is True and data["deleted_at"] > 0

    compared = cli("runs", "compare", seeded.good, seeded.bad)
    assert compared.exit_code == 1
    _one_error_line(compared.stderr, f"Run {seeded.good} is deleted", "runs restore")

    restored = cli("runs", "restore", seeded.good, "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["restored"] == [seeded.good, child]
    listed = json.loads(cli("runs", "list", "-p", "proj", "--json").stdout)
    assert len(listed) == 4


def test_delete_errors_are_one_line_and_change_nothing(
    cli: Cli, seeded: Seeded, sdk: TrackingClient
) -> None:
    running = cli("runs", "delete", seeded.live, "-y")
    assert running.exit_code == 1
    _one_error_line(running.stderr, seeded.live, "still running", "--force")
    unknown = cli("runs", "delete", seeded.good, "feedfacefeedface", "-y")
    assert unknown.exit_code == 1
    _one_error_line(unknown.stderr, "No run with id 'feedfacefeedface'")
    not_deleted = cli("runs", "restore", seeded.bad)
    assert not_deleted.exit_code == 1
    _one_error_line(not_deleted.stderr, "is not deleted")
    assert len(sdk.search_runs("proj")) == 3
    forced = cli("runs", "delete", seeded.live, "-y", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["deleted"] == [seeded.live]


def test_delete_without_yes_and_without_a_terminal_refuses(
    cli: Cli, seeded: Seeded, sdk: TrackingClient
) -> None:
    result = cli("runs", "delete", seeded.good)
    assert result.exit_code == 2
    _one_error_line(result.stderr, "--yes")
    assert not sdk.get_run(seeded.good).deleted


@pytest.mark.slow
def test_delete_in_a_real_process_without_a_terminal_does_not_hang(
    seeded: Seeded, sdk: TrackingClient
) -> None:
    done = subprocess.run(
        [str(LOOPML), "runs", "delete", seeded.good],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    _one_error_line(done.stderr, "pass --yes")
    assert not sdk.get_run(seeded.good).deleted


def test_mark_failed(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    sdk.writer.untrack(seeded.live)  # its process "died": no more heartbeats
    with sdk.store.write() as conn:
        conn.execute(
            update(tables.RUN).where(tables.RUN.c.id == seeded.live).values(heartbeat_at=0)
        )
    assert "lost" in cli("runs", "list", "-p", "proj").stdout
    done = cli("runs", "mark-failed", seeded.live, "--reason", "node preempted", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["status"] == "failed" and data["failure"]["message"] == "node preempted"
    shown = cli("runs", "show", seeded.live).stdout
    assert "loopml.MarkedFailed: node preempted" in shown

    finished = cli("runs", "mark-failed", seeded.good)
    assert finished.exit_code == 1
    _one_error_line(finished.stderr, "is finished, not running")


def test_tag_and_untag(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    done = cli("runs", "tag", seeded.good, "stage=tuned", "note=a=b", "empty=", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["tags"] == {
        "team": "vision",
        "stage": "tuned",
        "note": "a=b",
        "empty": "",
    }
    filtered = json.loads(
        cli("runs", "list", "-p", "proj", "-f", "tags.stage = 'tuned'", "--json").stdout
    )
    assert [run["id"] for run in filtered] == [seeded.good]

    removed = cli("runs", "untag", seeded.good, "stage", "empty")
    assert removed.exit_code == 0, removed.output
    assert dict(sdk.get_run(seeded.good).tags) == {"team": "vision", "note": "a=b"}

    missing = cli("runs", "untag", seeded.good, "note", "nope")
    assert missing.exit_code == 1
    _one_error_line(missing.stderr, "no tag 'nope'")
    assert "note" in sdk.get_run(seeded.good).tags  # nothing removed
    reserved = cli("runs", "tag", seeded.good, "loopml.digest=x")
    assert reserved.exit_code == 1
    _one_error_line(reserved.stderr, "reserved")
    malformed = cli("runs", "tag", seeded.good, "novalue")
    assert malformed.exit_code == 2
    _one_error_line(malformed.stderr, "'novalue' is not KEY=VALUE")


def test_env_prints_the_captured_packages(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    packages = sdk.get_environment(seeded.good)
    lines = cli("runs", "env", seeded.good).stdout.splitlines()
    assert lines == [f"{name}=={packages[name]}" for name in sorted(packages)]  # by name
    data = json.loads(cli("runs", "env", seeded.good, "--format", "json").stdout)
    assert data["packages"] == packages and data["python_version"]
    assert json.loads(cli("runs", "env", seeded.good, "--json").stdout) == data
    table = cli("runs", "env", seeded.good, "--format", "table").stdout
    assert f"{len(packages)} packages" in table and "sqlalchemy" in table
    shown = cli("runs", "show", seeded.good).stdout
    assert f"Environment: {len(packages)} packages, Python " in shown
    assert json.loads(cli("runs", "show", seeded.good, "--json").stdout)[
        "environment_packages"
    ] == len(packages)

    bare = cli("runs", "env", seeded.bad)
    assert bare.exit_code == 1 and bare.stdout == ""
    _one_error_line(bare.stderr, "has no captured environment")
    wrong = cli("runs", "env", seeded.good, "--format", "yaml")
    assert wrong.exit_code == 2


def test_list_all_projects_has_a_project_column(
    cli: Cli, seeded: Seeded, sdk: TrackingClient
) -> None:
    other = sdk.create_run(project="other-project", capture_context=False)
    sdk.end_run(other)
    result = cli("runs", "list", "--all-projects")
    assert result.exit_code == 0, result.output
    assert "Runs of every project" in result.stdout and "other-project" in result.stdout
    assert seeded.good[:8] in result.stdout and other[:8] in result.stdout
    data = json.loads(cli("runs", "list", "--all-projects", "--json").stdout)
    assert {run["project"] for run in data} == {"proj", "other-project"}
    both = cli("runs", "list", "--all-projects", "-p", "proj")
    assert both.exit_code == 2
    _one_error_line(both.stderr, "not both")


def test_projects_list_counts(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    sdk.delete_run(seeded.bad)
    sdk.create_run(project="another", capture_context=False)
    data = json.loads(cli("projects", "list", "--json").stdout)
    assert [p["name"] for p in data] == ["another", "proj"]
    proj = data[1]
    assert (proj["runs"], proj["deleted_runs"]) == (2, 1)
    assert (proj["datasets"], proj["models"], proj["endpoints"]) == (0, 0, 0)
    assert proj["last_activity"] > 0
    table = cli("projects", "list").stdout
    for heading in ("runs", "deleted runs", "datasets", "models", "endpoints", "last activity"):
        assert heading in table


def test_gc_purges_old_deleted_runs(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    sdk.delete_run(seeded.good)
    digest = sdk.get_run(seeded.good).artifacts[0].digest
    kept = json.loads(cli("gc", "--json").stdout)  # default grace: 30 days
    assert kept["deleted_grace_seconds"] == 30 * 86400 and kept["purged_runs"] == []

    dry = cli("gc", "--deleted-grace", "0s", "--grace", "0")
    assert dry.exit_code == 0, dry.output
    assert seeded.good in dry.stdout and "1 deleted run(s)" in dry.stdout
    assert "would be purged" in dry.stdout and "rerun with --yes" in dry.stdout
    assert sdk.get_run(seeded.good).deleted

    from_setting = json.loads(
        cli("gc", "--grace", "0", "--json", env={"LOOPML_GC_DELETED_GRACE": "0s"}).stdout
    )
    assert from_setting["purged_runs"] == [seeded.good]

    done = json.loads(cli("gc", "--deleted-grace", "0s", "--grace", "0", "--yes", "--json").stdout)
    assert done["purged_runs"] == [seeded.good] and done["dry_run"] is False
    assert digest in {blob["digest"] for blob in done["unreferenced"]}
    assert not sdk.artifacts.exists(digest)
    gone = cli("runs", "show", seeded.good)
    assert gone.exit_code == 1
    _one_error_line(gone.stderr, "No run with id")

    bad = cli("gc", "--deleted-grace", "soon")
    assert bad.exit_code == 2
    _one_error_line(bad.stderr, "--deleted-grace", "'soon'")
    negative = cli("gc", "--grace", "-1")
    assert negative.exit_code == 2
    _one_error_line(negative.stderr, "--grace", ">= 0")


def _on_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``loopml ARGS`` with a pseudo-terminal as stdin/stdout, answering ``answer``."""
    import os
    import pty
    import select as select_module

    main, child = pty.openpty()
    process = subprocess.Popen(
        [str(LOOPML), *args], stdin=child, stdout=child, stderr=child, env=subprocess_env()
    )
    os.close(child)
    seen = b""
    answered = False
    while True:
        ready, _, _ = select_module.select([main], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError(f"no output for 120 s; so far: {seen!r}")
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closes when the process ends (Linux)
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(main, answer)
            answered = True
    os.close(main)
    return process.wait(timeout=120), seen.decode(errors="replace")


@pytest.mark.slow
def test_delete_asks_on_a_terminal(seeded: Seeded, sdk: TrackingClient) -> None:
    code, text = _on_a_terminal(["runs", "delete", seeded.good], b"n\n")
    assert code == 1 and "Delete 1 run (and any child runs)?" in text
    assert "Nothing deleted." in text
    assert not sdk.get_run(seeded.good).deleted
    code, text = _on_a_terminal(["runs", "delete", seeded.good], b"y\n")
    assert code == 0, text
    assert sdk.get_run(seeded.good).deleted
