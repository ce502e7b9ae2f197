"""``loopml settings``: the whole catalogue, current values, bad values shown."""

from __future__ import annotations

import json

from cli_support import Cli

from loopml import settings
from loopml.cli._settings import shown_value


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


def test_no_setting_shows_credentials(cli: Cli) -> None:
    """Issue 12 item 16: ``loopml settings`` hides credentials in every URL it shows (query
    signatures and tokens included), and the values of secret settings."""
    env = {
        "LOOPML_STORE_URI": "postgresql+psycopg://alice:s3cret@db.example/loopml?password=pw2",
        "LOOPML_ARTIFACT_URI": "s3://bucket/prefix?X-Amz-Signature=SIGSECRET&region=eu",
        "LOOPML_TEST_POSTGRES_URL": "postgresql+psycopg://pg:PGSECRET@db.example/test",
    }
    for args in (("settings", "--json"), ("settings",)):
        result = cli(*args, env=env)
        assert result.exit_code == 0, result.output
        for secret in ("s3cret", "pw2", "SIGSECRET", "PGSECRET"):
            assert secret not in result.stdout
    rows = {r["name"]: r for r in json.loads(cli("settings", "--json", env=env).stdout)}
    assert (
        rows["LOOPML_ARTIFACT_URI"]["value"] == "s3://bucket/prefix?X-Amz-Signature=***&region=eu"
    )


def test_secret_settings_show_only_that_they_are_set() -> None:
    assert shown_value("LOOPML_SERVE_TOKEN", "tok-123") == "*** (set)"
    assert shown_value("LOOPML_SERVE_TOKEN", None) is None
    assert shown_value("LOOPML_SERVE_KEEP_ALIVE", 5.0) == 5.0


def test_store_errors_never_show_the_password(cli: Cli) -> None:
    """A store that cannot be reached is named without its password (debug mode included)."""
    env = {"LOOPML_STORE_URI": "postgresql+psycopg://alice:s3cret@127.0.0.1:1/loopml"}
    result = cli("runs", "list", "-p", "proj", env=env)
    assert result.exit_code == 1
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/loopml" in result.stderr
    assert "s3cret" not in result.output
    debug = cli("--debug", "runs", "list", "-p", "proj", env=env)
    assert debug.exit_code == 1 and "s3cret" not in debug.output
