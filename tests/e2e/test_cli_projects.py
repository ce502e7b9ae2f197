"""``loopml projects …`` against a real store."""

from __future__ import annotations

import json

from cli_support import Cli, Seeded

from loopml import settings
from loopml.store import open_store
from loopml.tracking import TrackingClient


def test_list_without_projects(cli: Cli) -> None:
    missing = cli("projects", "list")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: No loopml store at ")
    open_store(settings.store_uri()).close()  # a store, still without projects
    result = cli("projects", "list")
    assert result.exit_code == 0, result.output
    assert "No projects yet" in result.stdout
    assert json.loads(cli("projects", "list", "--json").stdout) == []


def test_list_and_note(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    sdk.create_run(project="another", capture_context=False)
    result = cli("projects", "list")
    assert "proj" in result.stdout and "another" in result.stdout
    data = json.loads(cli("projects", "list", "--json").stdout)
    assert [project["name"] for project in data] == ["another", "proj"]

    result = cli("projects", "note", "proj", "Baseline is **rf**.")
    assert result.exit_code == 0, result.output
    assert "Added a note to project 'proj'." in result.stdout
    assert [note.text for note in sdk.get_notes("project", "proj")] == ["Baseline is **rf**."]


def test_note_needs_text(cli: Cli, seeded: Seeded) -> None:
    result = cli("projects", "note", "proj", "")
    assert result.exit_code == 1
    assert result.stderr == "error: A note needs some text; got an empty note.\n"


def test_note_json(cli: Cli, seeded: Seeded) -> None:
    result = cli("projects", "note", "proj", "Baseline.", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"project": "proj", "note": "Baseline."}
