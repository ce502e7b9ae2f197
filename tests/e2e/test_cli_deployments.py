"""``loopml deployments …``: set (flags and --file), show, history, rollback, list, compare,
and errors.

Three tiny scikit-learn versions of ``credit`` are registered with the SDK in
project ``proj`` (``credit/1`` is ``@champion``), where the CLI will look.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import LOOPML, Cli, subprocess_env

from loopml.serving._feedback import record_feedback
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.tracking import TrackingClient

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
        "--max-batch-size", "16", "--max-wait-ms", "2.5", "--log-probabilities",
        "--reason", "launch",
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
    assert shown["settings"] == {
        "max_batch_size": 16,
        "max_wait_ms": 2.5,
        "sticky_key": "customer",
        "log_probabilities": True,
    }
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
    assert cli("deployments", "list", *P).stderr.startswith("error: No loopml store at ")
    client = TrackingClient()
    client.create_run(project="proj")  # a project without endpoints
    client.close()
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


# -- compare -------------------------------------------------------------------------------

PRIMARY, CANARY = "primary:credit@champion", "canary:credit/2"


def _log_traffic(sdk: TrackingClient, folder: Path, *, labelled: bool = True) -> None:
    """Log predictions of ``credit`` and their labels: 400 by the primary (70 % right),
    200 by the canary (95 % right), and the shadow's (always right) on 20 primary requests;
    one more primary request has two labels for its one row.
    """
    labels: dict[str, Any] = {"p-extra": [0, 1]}
    with PredictionLog(folder, sdk.store, sdk.artifacts, "test") as log:
        extra = PredictionRecord("p-extra", "credit", PRIMARY, "credit/1", [{}], [0], 1.0)
        log.append(extra, wait=False)
        for i in range(20):
            shadow = PredictionRecord(
                f"p-{i}:shadow:credit/3",
                "credit",
                "shadow:credit/3",
                "credit/3",
                [{}],
                [i % 2],
                1.0,
            )
            log.append(shadow, wait=False)
        for route, version, count, accuracy in (
            (PRIMARY, "credit/1", 400, 0.70),
            (CANARY, "credit/2", 200, 0.95),
        ):
            for i in range(count):
                truth = i % 2
                right = (i * 37) % 100 < accuracy * 100
                request_id = f"{route[0]}-{i}"
                predicted = truth if right else 1 - truth
                log.append(
                    PredictionRecord(
                        request_id, "credit", route, version, [{}], [predicted], 1.0 + i % 4
                    ),
                    wait=False,
                )
                labels[request_id] = truth
    if labelled:
        record_feedback(sdk.store, "credit", labels.items())


@pytest.mark.usefixtures("models")
def test_compare_shows_each_route_against_the_baseline(
    cli: Cli, sdk: TrackingClient, tmp_path: Path
) -> None:
    assert cli("deployments", "set", "credit", *ROUTES, *P).exit_code == 0
    _log_traffic(sdk, tmp_path / "wal")

    table = cli("deployments", "compare", "credit", *P, "--since", "1h")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].startswith("credit: accuracy per route of credit, 95% intervals")
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.split("│")[1:-1]] for line in lines)
        if cells
    }
    assert rows["version"] == ["v1", "v2", "v3"]
    assert rows["predictions"] == ["401", "200", "20"]
    assert rows["labelled"] == ["400", "200", "20"]
    assert rows["accuracy"] == ["0.7", "0.95", "1"]
    assert rows["Δ vs baseline"][:2] == ["baseline", "+0.25"]
    assert rows["Δ vs baseline"][2].endswith("(paired)")
    assert float(rows["p"][1]) < 0.001 and rows["p"][2] == "-"
    assert rows["significant"] == ["", "better", "too few labels"]
    assert rows["latency p50/p95"][1:] == ["2.5 / 4 ms", "1 / 1 ms"]
    assert "primary @champion" in lines[2] and "canary v2" in lines[2] and "shadow v3" in lines[2]
    assert lines[-2] == "Left out 1 label(s) that do not pair with their prediction: a request " + (
        "of k rows needs a list of k labels."
    )
    assert lines[-1].startswith(f"On accuracy, {CANARY} is significantly better than {PRIMARY}")

    found = _json(cli, "deployments", "compare", "credit", *P)
    assert (found["endpoint"], found["metric"], found["baseline"]) == (
        "credit",
        "accuracy",
        PRIMARY,
    )
    assert [(r["route"], r["predictions"], r["labelled"]) for r in found["routes"]] == [
        (PRIMARY, 401, 400),
        (CANARY, 200, 200),
        ("shadow:credit/3", 20, 20),
    ]
    difference, shadow = found["differences"]
    assert shadow["paired"] is True and shadow["verdict"] == "too_few_labels"
    assert difference["route"] == CANARY and difference["verdict"] == "better"
    assert difference["significant"] is True and difference["paired"] is False
    assert difference["difference"]["value"] == pytest.approx(0.25)
    assert difference["p_value"] < 0.001
    assert found["summary"] == table.stdout.splitlines()[-1]

    flipped = _json(cli, "deployments", "compare", "credit", *P, "--baseline", "credit/2")
    assert flipped["baseline"] == CANARY
    assert flipped["differences"][0]["route"] == PRIMARY
    assert flipped["differences"][0]["verdict"] == "worse"
    f1 = _json(cli, "deployments", "compare", "credit", *P, "--metric", "f1")
    assert f1["metric"] == "f1" and f1["differences"][0]["test"] == "bootstrap interval"


@pytest.mark.usefixtures("models")
def test_compare_errors_are_one_red_line(cli: Cli, sdk: TrackingClient, tmp_path: Path) -> None:
    assert "No endpoint named 'credit'" in _fails(cli, "deployments", "compare", "credit", *P)
    assert cli("deployments", "set", "credit", *ROUTES, *P).exit_code == 0
    assert "no logged predictions" in _fails(cli, "deployments", "compare", "credit", *P)
    _log_traffic(sdk, tmp_path / "wal", labelled=False)
    assert "has feedback yet" in _fails(cli, "deployments", "compare", "credit", *P)
    record_feedback(sdk.store, "credit", [("p-0", 0)])
    tomorrow = (datetime.now() + timedelta(days=1)).isoformat(timespec="minutes")
    since = _fails(cli, "deployments", "compare", "credit", *P, "--since", tomorrow)
    assert "no logged predictions since" in since
    assert "'--since' option" in _fails(
        cli, "deployments", "compare", "credit", *P, "--since", "yesterday"
    )
    assert "'metric' parameter must be one of" in _fails(
        cli, "deployments", "compare", "credit", *P, "--metric", "auc"
    )
    assert "'baseline' parameter" in _fails(
        cli, "deployments", "compare", "credit", *P, "--baseline", "credit/9"
    )
    # A duration back before 1970 (or of hundreds of digits) is refused, not an overflow.
    for far in ("99999999999w", "9" * 400 + "d"):
        assert "goes back before 1970" in _fails(
            cli, "deployments", "compare", "credit", *P, "--since", far
        )


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("credit", *P, "--since"), 2),  # an option without its value
        (("credit", *P, "--bogus"), 2),
        ((), 2),  # the endpoint missing
        (("credit", *P), 1),  # no such endpoint
        (("credit", *P, "--since", "yesterday"), 1),
        (("credit", *P, "--since", "99999999999w"), 1),
    ],
)
def test_compare_errors_in_a_real_process_are_one_lowercase_line(
    args: tuple[str, ...], status: int
) -> None:
    """A real ``loopml`` process (Click's standalone mode, where an error reaching Click is
    printed as ``Error: ...`` under a usage box) prints every error of compare as loopml's
    one red ``error:`` line, with exit 2 for usage errors and 1 for the others."""
    found = subprocess.run(
        [str(LOOPML), "deployments", "compare", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert found.returncode == status, found.stderr
    assert found.stdout == ""
    lines = found.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), found.stderr
    assert "Usage:" not in found.stderr
