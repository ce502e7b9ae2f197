"""``loopml monitor …`` and ``loopml alerts …`` on a dataset monitor, errors included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from cli_support import Cli

import loopml.data


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 8, rows).round(),
            "income": rng.lognormal(10, 0.4, rows),
            "region": rng.choice(["north", "south", "east"], rows),
        }
    )


def test_a_dataset_monitor_from_create_to_ack(cli: Cli, tmp_path: Path) -> None:
    loopml.data.register("credit", _frame(1000, 1), project="p")
    created = cli(
        "monitor",
        "create",
        "quality",
        "--dataset",
        "credit",
        "--reference",
        "dataset:credit:1",
        "--check",
        "data_quality",
        "-p",
        "p",
    )
    assert created.exit_code == 0, created.output
    assert "Monitor quality saved" in created.output
    again = cli("monitor", "create", "quality", "--dataset", "credit", "-p", "p")
    assert again.exit_code == 1 and "already exists" in again.output
    bad = _frame(1000, 2)
    bad.loc[:9, "age"] = -900.0
    loopml.data.register("credit", bad, project="p")
    run = cli("monitor", "run", "quality", "-p", "p", "--json")
    assert run.exit_code == 0, run.output
    result = json.loads(run.output)
    assert result["status"] == "alert"
    failing = [c for c in result["checks"] if c["status"] == "alert"]
    assert failing and failing[0]["column"] == "age" and failing[0]["detail"]["failing"] == 10
    assert cli("monitor", "run", "quality", "-p", "p", "--fail-on-alert").exit_code == 3
    listed = cli("monitor", "list", "-p", "p")
    assert "quality" in listed.output and "alert" in listed.output
    history = json.loads(
        cli("monitor", "history", "quality", "--column", "age", "-p", "p", "--json").output
    )
    assert {p["status"] for p in history} == {"alert", "ok"} or {"alert"} <= {
        p["status"] for p in history
    }
    alerts = json.loads(cli("alerts", "list", "-p", "p", "--state", "firing", "--json").output)
    assert [a["column"] for a in alerts] == ["age"]
    acked = cli("alerts", "ack", str(alerts[0]["id"]), "--note", "bad delivery", "-p", "p")
    assert acked.exit_code == 0, acked.output
    shown = json.loads(cli("monitor", "show", "quality", "-p", "p", "--json").output)
    assert shown["latest"]["status"] == "alert" and shown["spec"]["dataset"] == "credit"
    as_yaml = cli("monitor", "show", "quality", "-p", "p", "--yaml").output
    (tmp_path / "m.yaml").write_text(as_yaml.replace("quality", "quality-2", 1))
    from_file = cli("monitor", "create", "--file", str(tmp_path / "m.yaml"), "-p", "p")
    assert from_file.exit_code == 0, from_file.output
    html = tmp_path / "report.html"
    reported = cli("monitor", "report", "quality", "--html", str(html), "-p", "p")
    assert reported.exit_code == 0, reported.output
    page = html.read_text()
    assert "<html" in page and "age" in page
    assert 'src="http' not in page and 'href="http' not in page  # self-contained
    deleted = cli("monitor", "delete", "quality", "--yes", "-p", "p", "--json")
    assert json.loads(deleted.output) == {"deleted": "quality", "results": 2}


def test_bad_monitor_input_is_one_line_and_stores_nothing(cli: Cli, tmp_path: Path) -> None:
    loopml.data.register("credit", _frame(200, 1), project="p")
    cases = [
        (("monitor", "create", "m", "--endpoint", "e", "--window", "3 days"), "'window'"),
        (("monitor", "create", "m", "--endpoint", "e", "--check", "drfit"), "did you mean"),
        (("monitor", "create", "m", "--endpoint", "e", "--schedule", "soon"), "'schedule'"),
        (("monitor", "create", "m", "--endpoint", "e", "--reference", "x"), "'reference'"),
        (("monitor", "create", "m", "--endpoint", "e", "--sink", "ftp://x"), "'--sink'"),
        (("monitor", "create", "m"), "exactly one of"),
        (("monitor", "run", "nope", "-p", "p"), "No monitor named 'nope'"),
        (("monitor", "history", "nope", "-p", "p"), "No monitor named"),
        (("alerts", "ack", "12345", "-p", "p"), "No alert 12345"),
        (("monitor", "list", "-p", "nope"), "No project named 'nope'"),
    ]
    for args, expected in cases:
        result = cli(*args, "-p", "p") if "-p" not in args else cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert expected in result.output, (args, result.output)
        assert "Traceback" not in result.output
    (tmp_path / "bad.yaml").write_text("name: m\nendpoint: e\nwindw: 1d\n")
    from_file = cli("monitor", "create", "--file", str(tmp_path / "bad.yaml"), "-p", "p")
    assert from_file.exit_code == 1 and "did you mean 'window'" in from_file.output
    assert json.loads(cli("monitor", "list", "-p", "p", "--json").output) == []
