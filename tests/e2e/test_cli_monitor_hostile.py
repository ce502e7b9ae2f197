"""``loopml monitor``/``alerts`` attacked: bad report paths, hostile YAML, other projects' ids,
and two runs of one monitor at once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import LOOPML, Cli, subprocess_env

import loopml.data


def _frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"age": rng.normal(40 + shift, 8, rows).round(), "region": rng.choice(["n", "s"], rows)}
    )


@pytest.fixture
def drifting(cli: Cli) -> Cli:
    """Monitor ``m`` of project ``p`` whose current data has drifted (one run not yet made)."""
    loopml.data.register("credit", _frame(1000, 1), project="p")
    loopml.data.register("credit", _frame(1000, 2, shift=10), project="p")
    created = cli(
        "monitor", "create", "m", "--dataset", "credit", "--reference", "dataset:credit:1",
        "--check", "drift", "-p", "p",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    return cli


def _one_line_error(result: object, expected: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert expected in output and "Traceback" not in output and "unexpected" not in output
    assert len(output.strip().splitlines()) == 1, output


def _results(cli: Cli) -> int:
    return len(json.loads(cli("monitor", "history", "m", "-p", "p", "--json").output))


def test_a_report_path_that_is_not_a_new_or_regular_file_is_refused(
    drifting: Cli, tmp_path: Path
) -> None:
    cli = drifting
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, expected in [
        (tmp_path, "must name a regular file"),
        (fifo, "must name a regular file"),
        (tmp_path / "missing" / "r.html", "does not exist"),
    ]:
        # A bad path is refused before the run, so no result is stored for nothing.
        _one_line_error(cli("monitor", "run", "m", "-p", "p", "--html", str(target)), expected)
        assert _results(cli) == 0
    assert cli("monitor", "run", "m", "-p", "p").exit_code == 0
    for target, expected in [(tmp_path, "regular file"), (fifo, "regular file")]:
        _one_line_error(cli("monitor", "report", "m", "-p", "p", "--html", str(target)), expected)
    assert fifo.is_fifo() and not list(tmp_path.glob(".report-*"))
    page = tmp_path / "r.html"
    assert cli("monitor", "report", "m", "-p", "p", "--html", str(page)).exit_code == 0
    assert "<html" in page.read_text()


def test_hostile_yaml_is_one_line_and_stores_nothing(cli: Cli, tmp_path: Path) -> None:
    loopml.data.register("credit", _frame(200, 1), project="p")
    cases = {
        "aliases.yaml": ("name: m\nendpoint: e\ndescription: &d x\nlabel: *d\n", "aliases"),
        "twice.yaml": ("name: m\nendpoint: e\nname: n\n", "appears twice"),
        "deep.yaml": ("name: m\nendpoint: e\ndescription: " + "[" * 50_000, "nested too deeply"),
        "types.yaml": ("name: m\nendpoint: e\nchecks: {drift: {fdr: lots}}\n", "'fdr'"),
    }
    for file, (text, expected) in cases.items():
        (tmp_path / file).write_text(text)
        created = cli("monitor", "create", "--file", str(tmp_path / file), "-p", "p")
        _one_line_error(created, expected)
    assert json.loads(cli("monitor", "list", "-p", "p", "--json").output) == []


def test_ids_of_another_project_reach_nothing(drifting: Cli) -> None:
    cli = drifting
    loopml.data.register("credit", _frame(200, 3), project="q")
    assert cli("monitor", "run", "m", "-p", "p").exit_code == 0
    alert = json.loads(cli("alerts", "list", "-p", "p", "--json").output)[0]
    created = cli("monitor", "create", "m", "--dataset", "credit", "--check", "drift", "-p", "q")
    assert created.exit_code == 0, created.output
    _one_line_error(cli("alerts", "ack", str(alert["id"]), "-p", "q"), "No alert")
    _one_line_error(
        cli("monitor", "report", "m", "--result", str(alert["first_result_id"]), "-p", "q"),
        "No monitor result of monitor 'm'",
    )
    _one_line_error(cli("alerts", "ack", str(2**70), "-p", "p"), "'alert_id'")
    assert json.loads(cli("alerts", "list", "-p", "p", "--json").output)[0]["acked_at"] is None


@pytest.mark.slow
def test_two_runs_at_once_open_one_alert_per_check(drifting: Cli) -> None:
    runs = [
        subprocess.Popen(
            [str(LOOPML), "monitor", "run", "m", "-p", "p", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    firing = json.loads(drifting("alerts", "list", "-p", "p", "--state", "firing", "--json").output)
    keys = [(a["check"], a["column"], a["method"]) for a in firing]
    assert keys and len(keys) == len(set(keys))
    assert len({p["result_id"] for p in json.loads(
        drifting("monitor", "history", "m", "-p", "p", "--json").output
    )}) == 2  # fmt: skip
