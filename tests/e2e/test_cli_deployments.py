"""``loopml deployments …``: set (flags and --file), show, history, rollback, list, and errors.

Three tiny scikit-learn versions of ``credit`` are registered with the SDK in
project ``proj`` (``credit/1`` is ``@champion``), where the CLI will look.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import Cli

P = ("-p", "proj")
ROUTES = (
    "--route",
    "credit@champion:90",
    "--route",
    "credit/2:10:canary",
    "--route",
    "credit/3:shadow",
)


@pytest.fixture
def models() -> None:
    """Register ``credit/1`` (@champion), ``credit/2`` and ``credit/3`` in project ``proj``."""
    from sklearn.dummy import DummyClassifier

    from loopml.registry import _api as sdk

    features, target = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
    for _ in range(3):
        sdk.register(DummyClassifier().fit(features, target), "credit", project="proj")
    sdk.promote("credit/1", project="proj", force=True, reason="test setup")


def _json(cli: Cli, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _fails(cli: Cli, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.usefixtures("models")
def test_set_show_history_rollback_list(cli: Cli) -> None:
    made = cli(
        "deployments", "set", "credit", *ROUTES, *P, "--sticky-key", "customer",
        "--max-batch-size", "16", "--max-wait-ms", "2.5", "--reason", "launch",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "revision 1" in made.stdout
    assert "credit/2:10:canary" in made.stdout

    shown = _json(cli, "deployments", "show", "credit", *P)
    assert isinstance(shown, dict)
    assert shown["revision"] == 1
    assert shown["routes"] == [
        {"model": "credit@champion", "weight": 90.0, "mode": "primary"},
        {"model": "credit/2", "weight": 10.0, "mode": "canary"},
        {"model": "credit/3", "weight": 0.0, "mode": "shadow"},
    ]
    assert shown["settings"] == {"max_batch_size": 16, "max_wait_ms": 2.5, "sticky_key": "customer"}
    assert shown["reason"] == "launch"

    table = cli("deployments", "show", "credit", *P)
    assert table.exit_code == 0, table.output
    for text in ("credit@champion", "canary", "shadow", "90%", "sticky_key=customer"):
        assert text in table.stdout

    assert cli("deployments", "set", "credit", "-r", "credit/2:100", *P).exit_code == 0
    history = _json(cli, "deployments", "history", "credit", *P)
    assert isinstance(history, list)
    assert [h["revision"] for h in history] == [1, 2]
    table = cli("deployments", "history", "credit", *P)
    assert "2 (live)" in table.stdout

    back = cli("deployments", "rollback", "credit", *P)
    assert back.exit_code == 0, back.output
    assert "revision 3" in back.stdout and "rollback to revision 1" in back.stdout
    assert (
        _json(cli, "deployments", "show", "credit", *P, "--revision", "3")["routes"]
        == (shown["routes"])
    )
    to = _json(cli, "deployments", "rollback", "credit", "--to", "2", *P)
    assert to["revision"] == 4 and to["routes"][0]["model"] == "credit/2"

    listed = _json(cli, "deployments", "list", *P)
    assert [(d["endpoint"], d["revision"]) for d in listed] == [("credit", 4)]
    table = cli("deployments", "list", *P)
    assert "credit/2:100" in table.stdout


@pytest.mark.usefixtures("models")
def test_set_from_a_yaml_file(cli: Cli, tmp_path: Path) -> None:
    assert cli("deployments", "set", "credit", *ROUTES, *P, "--sticky-key", "c").exit_code == 0
    spec = cli("deployments", "show", "credit", *P, "--yaml")
    assert spec.exit_code == 0, spec.output
    path = tmp_path / "spec.yaml"
    path.write_text(spec.stdout.replace("credit", "scoring", 1))  # the endpoint line comes first
    made = _json(cli, "deployments", "set", "--file", str(path), *P, "--max-batch-size", "4")
    assert made["endpoint"] == "scoring"
    assert made["settings"] == {"sticky_key": "c", "max_batch_size": 4}
    assert len(made["routes"]) == 3


def test_empty_list(cli: Cli) -> None:
    result = cli("deployments", "list", *P)
    assert result.exit_code == 0
    assert "No endpoints" in result.stdout


@pytest.mark.usefixtures("models")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-r", "credit/1:90", "-r", "credit/2:20:canary"), "add up to 110"),
        (
            (
                "-r",
                "credit/3:shadow",
            ),
            "at least one primary or canary",
        ),
        (("-r", "credit/1:ninety"), "weight 'ninety' is not a number"),
        (("-r", "credit/9:100"), "Route 'credit/9:100'"),
        (("-r", "credit@challenger:100"), "challenger"),
        ((), "at least one --route"),
        (("-r", "credit/1:100", "--max-batch-size", "0"), "max_batch_size"),
    ],
)
def test_bad_set_is_one_red_line(cli: Cli, args: tuple[str, ...], message: str) -> None:
    assert message in _fails(cli, "deployments", "set", "credit", *args, *P)
    assert _json(cli, "deployments", "list", *P) == []


@pytest.mark.usefixtures("models")
def test_other_errors(cli: Cli, tmp_path: Path) -> None:
    assert "No endpoint named 'nope'" in _fails(cli, "deployments", "show", "nope", *P)
    assert "No endpoint named 'nope'" in _fails(cli, "deployments", "history", "nope", *P)
    assert "No endpoint named 'nope'" in _fails(cli, "deployments", "rollback", "nope", *P)
    assert cli("deployments", "set", "credit", "-r", "credit/1:100", *P).exit_code == 0
    assert "nothing to roll back" in _fails(cli, "deployments", "rollback", "credit", *P)
    assert "no revision 7" in _fails(cli, "deployments", "show", "credit", "--revision", "7", *P)
    path = tmp_path / "spec.yaml"
    path.write_text("endpoint: other\nroutes: [credit/1:100]\n")
    both = _fails(cli, "deployments", "set", "--file", str(path), "-r", "credit/1:100", *P)
    assert "not both" in both
    assert "differs" in _fails(cli, "deployments", "set", "credit", "--file", str(path), *P)
    assert "Name the ENDPOINT" in _fails(cli, "deployments", "set", "-r", "credit/1:100", *P)
