"""``loopml runs …`` against a real store."""

from __future__ import annotations

import json

from cli_support import Cli, Seeded


def test_list_shows_a_table_with_short_ids_status_metrics_and_params(
    cli: Cli, seeded: Seeded
) -> None:
    result = cli("runs", "list", "--project", "proj")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for run_id in (seeded.good, seeded.bad, seeded.live):
        assert run_id[:8] in out
        assert run_id not in out  # full ids only in JSON
    for text in ("good-run", "finished", "failed", "running", "auc", "0.93", "model=rf"):
        assert text in out


def test_list_json_has_full_records(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "list", "--project", "proj", "--json")
    assert result.exit_code == 0, result.output
    runs = {run["id"]: run for run in json.loads(result.stdout)}
    assert set(runs) == {seeded.good, seeded.bad, seeded.live}
    good = runs[seeded.good]
    assert good["status"] == "finished"
    assert good["params"] == {"depth": "5", "model": "rf"}
    assert good["metrics"]["auc"] == 0.93
    assert good["metrics"]["loss"] == "NaN"  # strict JSON has no NaN
    assert good["duration_seconds"] >= 0
    assert runs[seeded.live]["duration_seconds"] is None


def test_list_filters_orders_and_limits(cli: Cli, seeded: Seeded) -> None:
    result = cli(
        "runs", "list", "-p", "proj", "--filter", "metrics.auc > 0.5", "--order-by",
        "metrics.auc DESC", "--json",
    )  # fmt: skip
    assert [run["id"] for run in json.loads(result.stdout)] == [seeded.good, seeded.bad]

    result = cli("runs", "list", "-p", "proj", "--order-by", "metrics.auc", "--max", "1", "--json")
    assert [run["id"] for run in json.loads(result.stdout)] == [seeded.bad]

    result = cli("runs", "list", "-p", "proj", "--filter", "params.model = 'lr'")
    assert seeded.bad[:8] in result.stdout
    assert seeded.good[:8] not in result.stdout


def test_list_without_matches_says_so(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "list", "--project", "proj", "-f", "status = 'killed'")
    assert result.exit_code == 0
    assert "No runs found." in result.stdout
    found = cli("runs", "list", "-p", "proj", "-f", "status = 'killed'", "--json")
    assert json.loads(found.stdout) == []


def test_list_of_an_unknown_project_is_one_red_line(cli: Cli, seeded: Seeded) -> None:
    for extra in ((), ("--json",)):
        result = cli("runs", "list", "--project", "nothing-here", *extra)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr == (
            "error: No project named 'nothing-here' (there are: 'proj'); "
            "'loopml projects list' shows the projects there are.\n"
        )


def test_list_uses_loopml_project_by_default(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "list", "--json", env={"LOOPML_PROJECT": "proj"})
    assert len(json.loads(result.stdout)) == 3


def test_a_bad_filter_prints_the_whole_message_with_its_caret(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "list", "-p", "proj", "--filter", "metrics.auc >")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: expected a value")
    assert lines[1] == "  metrics.auc >"
    assert lines[2] == "  " + " " * len("metrics.auc >") + "^"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_bad_order_by_is_one_error(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "list", "-p", "proj", "--order-by", "metrics.auc SIDEWAYS")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: expected 'ASC', 'DESC'")


def test_max_must_be_positive(cli: Cli) -> None:
    result = cli("runs", "list", "--max", "0")
    assert result.exit_code == 2


def test_show_renders_every_section(cli: Cli, seeded: Seeded, sdk: object) -> None:
    result = cli("runs", "show", seeded.good)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in (
        seeded.good,
        "good-run",
        "proj",
        "finished",
        "Params",
        "depth",
        "Metrics",
        "0.93",
        "nan",
        "Tags",
        "vision",
        "Resources",
        "cpu_seconds",
        "Context",
        "python_version",
        "Artifacts",
        "reports/summary.txt",
        "model",
        "dir",
        "Findings",  # the Markdown heading, rendered
        "The forest wins.",  # **forest** rendered as bold, not as asterisks
    ):
        assert text in out, text
    assert "**forest**" not in out


def test_show_renders_git_context_when_captured(cli: Cli, seeded: Seeded, sdk: object) -> None:
    from loopml.tracking import TrackingClient

    assert isinstance(sdk, TrackingClient)
    git = sdk.get_run(seeded.good).context.get("git")
    out = cli("runs", "show", seeded.good).stdout
    if git:  # the tests run from a git checkout, normally
        assert "git.commit" in out and git["commit"] in out


def test_show_of_a_failed_run_shows_the_failure_and_traceback(cli: Cli, seeded: Seeded) -> None:
    out = cli("runs", "show", seeded.bad).stdout
    assert "Failure" in out
    assert "ValueError: diverged at epoch 3" in out
    assert "Traceback (most recent call last)" in out  # the run's, stored; not ours


def test_show_json(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "show", seeded.bad, "--json")
    data = json.loads(result.stdout)
    assert data["id"] == seeded.bad
    assert data["status"] == "failed"
    assert data["failure"]["type"] == "builtins.ValueError"
    assert "diverged" in data["failure"]["traceback"]
    good = json.loads(cli("runs", "show", seeded.good, "--json").stdout)
    assert good["notes"][0]["text"].startswith("# Findings")
    assert {a["path"] for a in good["artifacts"]} == {"model", "reports/summary.txt"}


def test_show_unknown_run_is_one_red_line(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "show", "abcdef12")
    assert result.exit_code == 1
    assert result.stderr == "error: No run with id 'abcdef12'.\n"
    assert result.stdout == ""


def test_compare_highlights_differing_params(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "compare", seeded.good, seeded.bad, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [run["id"] for run in data["runs"]] == [seeded.good, seeded.bad]
    assert data["params"]["model"] == {seeded.good: "rf", seeded.bad: "lr"}
    assert data["differing_params"] == ["model"]
    assert data["metrics"]["auc"] == {seeded.good: 0.93, seeded.bad: 0.61}
    assert data["metrics"]["loss"] == {seeded.good: "NaN", seeded.bad: None}

    table = cli("runs", "compare", seeded.good, seeded.bad, seeded.live)
    assert table.exit_code == 0
    for text in ("params.model", "params.depth", "metrics.auc", "rf", "lr", seeded.live[:8]):
        assert text in table.stdout


def test_compare_highlights_in_colour(seeded: Seeded) -> None:
    from loopml.cli._run_views import comparison_table
    from loopml.tracking import TrackingClient

    client = TrackingClient()
    try:
        runs = [client.get_run(seeded.good), client.get_run(seeded.bad)]
    finally:
        client.close()
    table = comparison_table(runs)
    first = table.columns[0]._cells  # row labels
    styles = {str(cell): getattr(cell, "style", "") for cell in first}
    assert styles["params.model"] == "bold yellow"
    assert styles["params.depth"] == ""


def test_compare_needs_two_runs_and_known_ids(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "compare", seeded.good)
    assert result.exit_code == 2
    assert "at least two run ids" in result.stderr
    result = cli("runs", "compare", seeded.good, "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: No run with id 'nope'.\n"


def test_note_is_added_and_shown(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "note", seeded.bad, "Learning rate *too* high.")
    assert result.exit_code == 0, result.output
    assert f"Added a note to run {seeded.bad}." in result.stdout
    data = json.loads(cli("runs", "show", seeded.bad, "--json").stdout)
    assert [note["text"] for note in data["notes"]] == ["Learning rate *too* high."]


def test_note_errors(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "note", "abcdef12", "text")
    assert (result.exit_code, result.stderr) == (1, "error: No run with id 'abcdef12'.\n")
    result = cli("runs", "note", seeded.good, "   ")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: A note needs some text")


def test_history_table_and_json(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "history", seeded.good, "auc", "--json")
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)
    assert [(p["step"], p["value"]) for p in points] == [(0, 0.5), (1, 0.7), (2, 0.93)]
    assert all(p["key"] == "auc" and p["timestamp"] > 0 for p in points)

    table = cli("runs", "history", seeded.good, "auc").stdout
    assert "auc of run " + seeded.good[:8] in table
    assert "0.93" in table


def test_history_errors(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "history", seeded.good, "accuracy")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: Run {seeded.good} has no metric 'accuracy'; its metrics are: auc, loss.\n"
    )
    result = cli("runs", "history", "abcdef12", "auc")
    assert (result.exit_code, result.stderr) == (1, "error: No run with id 'abcdef12'.\n")


def test_a_run_whose_process_stopped_is_listed_as_lost(cli: Cli, seeded: Seeded) -> None:
    import time

    time.sleep(0.05)
    env = {"LOOPML_HEARTBEAT_TIMEOUT": "0.01"}
    runs = json.loads(cli("runs", "list", "-p", "proj", "--json", env=env).stdout)
    assert {run["name"]: run["status"] for run in runs}["live-run"] == "lost"
    assert "lost" in cli("runs", "list", "-p", "proj", env=env).stdout


def test_note_json(cli: Cli, seeded: Seeded) -> None:
    result = cli("runs", "note", seeded.bad[:8], "Too *high*.", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run_id": seeded.bad, "note": "Too *high*."}
