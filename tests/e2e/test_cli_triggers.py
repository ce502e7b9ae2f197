"""``loopml triggers …`` and ``loopml scheduler --once``: create from flags and from YAML,
list, show, fire by hand (idempotently), run, history, pause, resume, delete — and bad
input, each refused as one error line with exit 1 and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Cli

from webhook_support import Delivery, webhook_receiver


@pytest.fixture
def hook() -> Iterator[tuple[str, list[Delivery]]]:
    with webhook_receiver() as found:
        yield found


def _ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _listed(cli: Cli) -> list[str]:
    return [t["name"] for t in json.loads(_ok(cli("triggers", "list", "-p", "p", "--json")))]


def test_a_manual_trigger_from_create_to_delete(
    cli: Cli, tmp_path: Path, hook: tuple[str, list[Delivery]]
) -> None:
    url, received = hook
    created = cli("triggers", "create", "by-hand", "--kind", "manual", "--webhook", url, "-p", "p")
    assert "Trigger by-hand saved in project 'p': manual → webhook." in _ok(created)
    (tmp_path / "t.yaml").write_text(
        "name: on-data\nkind: dataset\nsource: {dataset: credit}\n"
        "action: {pipeline: 'train.py:pipe', params: {data: '{event.ref}'}}\n"
        "hygiene: {cooldown: 60, min_evidence: 100}\n"
    )
    _ok(cli("triggers", "create", "--file", str(tmp_path / "t.yaml"), "-p", "p"))
    assert _listed(cli) == ["by-hand", "on-data"]
    table = _ok(cli("triggers", "list", "-p", "p"))
    assert "dataset (dataset=credit)" in table and "pipeline train.py:pipe" in table

    shown = _ok(cli("triggers", "show", "on-data", "-p", "p", "--yaml"))
    spec = yaml.safe_load(shown)
    assert spec["hygiene"] == {
        "cooldown": 60,
        "min_evidence": 100,
        "catch_up": "once",
        "max_concurrent": 1,
    }
    (tmp_path / "again.yaml").write_text(shown.replace("on-data", "on-data-2", 1))
    _ok(cli("triggers", "create", "--file", str(tmp_path / "again.yaml"), "-p", "p"))
    copy = json.loads(_ok(cli("triggers", "show", "on-data-2", "-p", "p", "--json")))
    assert {**copy, "name": "on-data"}.items() >= spec.items()  # the YAML round-trips

    first = json.loads(_ok(cli("triggers", "fire", "by-hand", "--key", "k1", "-p", "p", "--json")))
    again = json.loads(_ok(cli("triggers", "fire", "by-hand", "--key", "k1", "-p", "p", "--json")))
    assert (first["new"], again["new"]) == (True, False)
    assert "already asked to fire for key 'k1'" in _ok(
        cli("triggers", "fire", "by-hand", "--key", "k1", "-p", "p")
    )
    ran = _ok(cli("scheduler", "--once", env={"LOOPML_WEBHOOK_ALLOW_PRIVATE": "1"}))
    assert "active: 3 trigger(s) evaluated, 1 fired, 1 action(s) run" in ran
    assert [d.body["dedup_key"] for d in received] == ["manual:k1"]
    history = json.loads(_ok(cli("triggers", "history", "by-hand", "-p", "p", "--json")))
    ((outcome, reason),) = [(h["outcome"], h["reason"]) for h in history]
    assert outcome == "fired" and reason.startswith("fired on a request by ")
    assert reason.endswith("(key k1)"), reason
    assert "fired" in _ok(cli("triggers", "history", "by-hand", "-p", "p"))
    (firing,) = json.loads(_ok(cli("triggers", "show", "by-hand", "-p", "p", "--json")))["firings"]
    assert firing["status"] == "succeeded" and firing["dedup_key"] == "manual:k1"
    _ok(cli("scheduler", "--once"))  # the key fired: it never fires again
    assert len(received) == 1

    assert "paused" in _ok(cli("triggers", "pause", "by-hand", "-p", "p"))
    _ok(cli("triggers", "fire", "by-hand", "--key", "k2", "-p", "p"))
    assert "2 trigger(s) evaluated, 0 fired" in _ok(cli("scheduler", "--once"))
    assert "resumed" in _ok(cli("triggers", "resume", "by-hand", "-p", "p"))
    assert "1 fired" in _ok(cli("scheduler", "--once", env={"LOOPML_WEBHOOK_ALLOW_PRIVATE": "1"}))
    assert [d.body["dedup_key"] for d in received] == ["manual:k1", "manual:k2"]
    assert "deleted" in _ok(cli("triggers", "delete", "by-hand", "--yes", "-p", "p"))
    assert _listed(cli) == ["on-data", "on-data-2"]


def test_bad_trigger_input_is_one_line_and_stores_nothing(cli: Cli, tmp_path: Path) -> None:
    _ok(
        cli(
            "triggers",
            "create",
            "by-hand",
            "--kind",
            "manual",
            "--webhook",
            "https://x.io/h",
            "-p",
            "p",
        )
    )
    hook = ("--webhook", "https://hooks.example.com/x")
    (tmp_path / "bad.yaml").write_text(
        "name: t\nkind: manual\naction: {webhook: 'https://x.io'}\nwhen: now\n"
    )
    cases = [
        (("create", "t", "--kind", "sometimes", *hook), "unknown kind 'sometimes'"),
        (("create", "t", "--kind", "schedule", "--source", "cron=every day", *hook), "cron"),
        (
            (
                "create",
                "t",
                "--kind",
                "dataset",
                "--source",
                "dataset=d",
                "--source",
                "rows=3",
                *hook,
            ),
            "unknown source",
        ),
        (
            ("create", "t", "--kind", "git", "--source", "url=ext::sh -c touch% /tmp/x", *hook),
            "ext::",
        ),
        (("create", "t", "--kind", "manual", "--webhook", "file:///etc/passwd"), "http(s) URL"),
        (("create", "--file", str(tmp_path / "bad.yaml")), "Unknown trigger field(s) ['when']"),
        (("show", "by-hnd"), "did you mean 'by-hand'"),
        (("fire", "by-hnd"), "did you mean 'by-hand'"),
        (("history", "nope"), "No trigger named 'nope'"),
    ]
    for args, expected in cases:
        result = cli("triggers", *args, "-p", "p")
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert expected in lines[0], (args, lines[0])
    assert _listed(cli) == ["by-hand"]
