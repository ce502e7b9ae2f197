"""``loopml settings``: the whole catalogue, current values, bad values shown."""

from __future__ import annotations

import json

from cli_support import Cli

from loopml import settings


def test_json_lists_every_setting(cli: Cli) -> None:
    result = cli("settings", "--json", env={"LOOPML_FLUSH_INTERVAL": "2.5"})
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == list(settings.SETTINGS)
    flush = rows["LOOPML_FLUSH_INTERVAL"]
    assert flush == {
        "name": "LOOPML_FLUSH_INTERVAL",
        "type": "float (s)",
        "default": 1.0,
        "doc": settings.SETTINGS["LOOPML_FLUSH_INTERVAL"].doc,
        "value": 2.5,
    }
    assert rows["LOOPML_STORE_URI"]["value"] is None


def test_table_shows_every_setting(cli: Cli) -> None:
    result = cli("settings")
    assert result.exit_code == 0, result.output
    for name in settings.SETTINGS:
        assert name in result.stdout


def test_a_bad_value_is_shown_not_fatal(cli: Cli) -> None:
    result = cli("settings", "--json", env={"LOOPML_HEARTBEAT_TIMEOUT": "soon"})
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.stdout) if r["name"] == "LOOPML_HEARTBEAT_TIMEOUT")
    assert row["value"] is None
    assert row["error"].startswith("LOOPML_HEARTBEAT_TIMEOUT must be a float (s)")
    table = cli("settings", env={"LOOPML_HEARTBEAT_TIMEOUT": "soon"})
    assert "must be a float" in table.stdout


def test_passwords_in_uris_are_hidden(cli: Cli) -> None:
    uri = "postgresql+psycopg://alice:s3cret@db.example/loopml"
    result = cli("settings", "--json", env={"LOOPML_STORE_URI": uri})
    row = next(r for r in json.loads(result.stdout) if r["name"] == "LOOPML_STORE_URI")
    assert row["value"] == "postgresql+psycopg://alice:***@db.example/loopml"
    assert "s3cret" not in cli("settings", env={"LOOPML_STORE_URI": uri}).stdout
