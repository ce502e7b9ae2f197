"""``loopml data …`` against a real store: every command, its JSON, and its error paths."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest
from cli_support import Cli

import loopml.data
from loopml.tracking import TrackingClient

P = ("-p", "proj")


def _frame(rows: int = 50, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(rows),
            "x": [i / rows + shift for i in range(rows)],
            "color": ["red", "green"] * (rows // 2),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """CSV files: a good one, a second good one, a bad one (x out of range, a column gone)."""
    paths = {
        "good": tmp_path / "good.csv",
        "more": tmp_path / "more.csv",
        "bad": tmp_path / "bad.csv",
    }
    _frame().to_csv(paths["good"], index=False)
    _frame(40).to_csv(paths["more"], index=False)
    _frame(shift=-5).drop(columns="color").to_csv(paths["bad"], index=False)
    return paths


@pytest.fixture
def registered(cli: Cli, files: dict[str, Path]) -> dict[str, Path]:
    """Dataset ``ds`` in project ``proj`` with one version from good.csv (keyed on id)."""
    result = cli("data", "add", "ds", str(files["good"]), *P, "--key", "id", "-d", "toy data")
    assert result.exit_code == 0, result.output
    return files


def _x_range_label() -> str:
    """The label of the range inferred for column x (widened beyond its observed 0..0.98)."""
    x = loopml.data.get_schema("ds", project="proj")[1].column("x")
    assert x.min is not None and x.max is not None and x.min < 0.0 and x.max > 0.98
    return f"x: in_range({x.min}, {x.max})"


def _one_error_line(result: object, starts: str) -> None:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {starts}"), lines[0]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


# -- add ---------------------------------------------------------------------------------


def test_add_prints_the_new_version_then_finds_the_identical_one(
    cli: Cli, files: dict[str, Path]
) -> None:
    result = cli("data", "add", "ds", str(files["good"]), *P, "--key", "id")
    assert result.exit_code == 0, result.output
    for text in ("Dataset version ds:1", "ready", "new version", "50", "good.csv"):
        assert text in result.stdout

    again = cli("data", "add", "ds", str(files["good"]), *P, "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["ref"] == "ds:1"
    assert data["existing"] is True
    assert data["row_count"] == 50
    assert [c["name"] for c in data["columns"]] == ["id", "x", "color"]
    assert data["report"] is None
    assert len(loopml.data.versions("ds", project="proj")) == 1


def test_add_with_parent_and_format(cli: Cli, registered: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "more.data"
    copy.write_bytes(registered["more"].read_bytes())
    result = cli(
        "data", "add", "derived", str(copy), *P, "--format", "csv", "--parent", "ds:1", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ref"] == "derived:1"
    assert data["parents"] == ["ds:1"]
    assert data["existing"] is False


def test_add_failing_data_without_strict_warns(cli: Cli, registered: dict[str, Path]) -> None:
    result = cli("data", "add", "ds", str(registered["bad"]), *P)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "warning: ds:2 fails 2 of" in out
    assert "missing columns: color" in out
    assert _x_range_label() in out
    assert "row 0: -5" in out
    assert "FAILED" in out
    assert loopml.data.get("ds:2", project="proj").status == "ready"


def test_add_strict_quarantines_prints_the_checks_and_exits_1(
    cli: Cli, registered: dict[str, Path]
) -> None:
    result = cli("data", "add", "ds", str(registered["bad"]), *P, "--strict")
    _one_error_line(result, "ds:2 failed 2 check(s) and is quarantined: schema differs")
    assert "Failing checks" in result.stdout
    assert "quarantined" in result.stdout
    assert "color: present" in result.stdout
    assert loopml.data.get("ds:2", project="proj").status == "quarantined"

    # The identical data again: the service hands back the quarantined version.
    again = cli("data", "add", "ds", str(registered["bad"]), *P, "--strict", "--json")
    _one_error_line(again, "ds:2 holds identical data and is quarantined")
    data = json.loads(again.stdout)
    assert data["status"] == "quarantined"
    assert data["existing"] is True
    assert data["report"]["passed"] is False

    lenient = cli("data", "add", "ds", str(registered["bad"]), *P)
    assert lenient.exit_code == 0
    assert "warning: ds:2 holds identical data and is quarantined" in lenient.stdout


def test_add_strict_on_data_stored_earlier_as_ready_fails(
    cli: Cli, registered: dict[str, Path]
) -> None:
    assert cli("data", "add", "ds", str(registered["bad"]), *P).exit_code == 0
    result = cli("data", "add", "ds", str(registered["bad"]), *P, "--strict")
    _one_error_line(result, "ds:2 holds identical data and was stored as ready")


# -- list / versions / show ----------------------------------------------------------------


def test_list_empty_table_and_json(cli: Cli, registered: dict[str, Path]) -> None:
    unknown = cli("data", "list", "-p", "elsewhere")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: No project named 'elsewhere'")
    client = TrackingClient()
    client.create_run(project="elsewhere")  # a project without datasets
    client.close()
    empty = cli("data", "list", "-p", "elsewhere")
    assert empty.exit_code == 0
    assert "No datasets in project 'elsewhere'" in empty.stdout
    assert json.loads(cli("data", "list", "-p", "elsewhere", "--json").stdout) == []

    cli("data", "add", "ds", str(registered["bad"]), *P, "--strict")
    table = cli("data", "list", *P)
    assert table.exit_code == 0
    for text in ("Datasets of project 'proj'", "ds:1", "toy data", "id"):
        assert text in table.stdout
    (item,) = json.loads(cli("data", "list", *P, "--json").stdout)
    assert item["name"] == "ds"
    assert item["latest"] == "ds:1"
    assert item["version_count"] == 2
    assert item["key_columns"] == ["id"]


def test_versions_show_quarantined_ones(cli: Cli, registered: dict[str, Path]) -> None:
    cli("data", "add", "ds", str(registered["bad"]), *P, "--strict")
    cli("data", "add", "ds", str(registered["more"]), *P)
    table = cli("data", "versions", "ds", *P)
    assert table.exit_code == 0
    assert "quarantined" in table.stdout
    assert "failed" in table.stdout
    assert "passed" in table.stdout
    data = json.loads(cli("data", "versions", "ds", *P, "--json").stdout)
    assert [(v["ref"], v["status"]) for v in data] == [
        ("ds:1", "ready"),
        ("ds:2", "quarantined"),
        ("ds:3", "ready"),
    ]
    assert "profile" not in data[0]


def test_show_profile_and_stored_report(cli: Cli, registered: dict[str, Path]) -> None:
    first = cli("data", "show", "ds", *P)
    assert first.exit_code == 0, first.output
    for text in ("Dataset version ds:1", "Columns", "min 0 · max 49", "red (25)", "0%"):
        assert text in first.stdout
    assert "No checks ran" in first.stdout

    cli("data", "add", "ds", str(registered["bad"]), *P, "--strict")
    shown = cli("data", "show", "ds:2", *P)
    assert shown.exit_code == 0
    assert "quarantined" in shown.stdout
    assert "Failing checks" in shown.stdout
    data = json.loads(cli("data", "show", "ds:2", *P, "--json").stdout)
    assert data["status"] == "quarantined"
    assert data["report"]["passed"] is False
    assert {c["name"] for c in data["profile"]["columns"]} == {"id", "x"}
    # NAME alone and NAME@latest are the newest usable version, never the quarantined one.
    latest = json.loads(cli("data", "show", "ds@latest", *P, "--json").stdout)
    assert latest["ref"] == "ds:1"


# -- validate ------------------------------------------------------------------------------


def test_validate_passing_data(cli: Cli, registered: dict[str, Path]) -> None:
    result = cli("data", "validate", "ds", str(registered["more"]), *P)
    assert result.exit_code == 0, result.output
    assert "PASSED: all" in result.stdout
    assert "✓ pass" in result.stdout
    assert "ds@schema:1" in result.stdout


def test_validate_failing_data_exits_1_and_writes_html(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    page = tmp_path / "out" / "report.html"
    result = cli("data", "validate", "ds", str(registered["bad"]), *P, "--html", str(page))
    assert result.exit_code == 1
    assert result.stderr == ""
    for text in ("Schema differences", "missing columns: color", "✗ FAIL", "FAILED: 2 of"):
        assert text in result.stdout
    assert f"HTML report: {page}" in result.stdout
    html = page.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert _x_range_label() in html
    assert "<script" not in html

    as_json = cli("data", "validate", "ds", str(registered["bad"]), *P, "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["passed"] is False
    assert data["schema_diff"]["missing"] == ["color"]
    assert data["html"] is None
    failing = {c["name"]: c for c in data["checks"] if not c["passed"]}
    assert failing[_x_range_label()]["failing_count"] == 50
    # Validating stores nothing.
    assert len(loopml.data.versions("ds", project="proj")) == 1


def test_cli_validate_against_a_version_uses_its_schema_revision(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 12 item 18b: ``loopml data validate ds:1`` checks against the schema revision
    in force for version 1, not the newest one."""
    spec = tmp_path / "schema.yaml"
    spec.write_text("expectations:\n- kind: row_count\n  min: 45\n")
    assert cli("data", "schema", "ds", *P, "--set", str(spec)).exit_code == 0
    newest = cli("data", "validate", "ds", str(registered["more"]), *P, "--json")
    assert (newest.exit_code, json.loads(newest.stdout)["against"]) == (1, "ds@schema:2")
    first = cli("data", "validate", "ds:1", str(registered["more"]), *P, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["against"] == "ds@schema:1"


def test_cli_stored_import_path_check_needs_trust(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 12 item 8: a stored custom check naming ``module:function`` is refused in one
    line that says how to register or trust it; ``--trust`` runs it."""
    loopml.data.save_schema(
        "ds", project="proj", expectations="- {kind: custom, function: 'builtins:len'}\n"
    )
    refused = cli("data", "validate", "ds", str(registered["more"]), *P)
    _one_error_line(refused, "The custom check 'builtins:len' names code by import path")
    assert "register_check" in refused.stderr and "--trust" in refused.stderr
    added = cli("data", "add", "ds", str(registered["bad"]), *P)
    _one_error_line(added, "The custom check 'builtins:len'")
    assert len(loopml.data.versions("ds", project="proj")) == 1
    trusted = cli("data", "validate", "ds", str(registered["more"]), *P, "--trust", "--json")
    assert trusted.exit_code == 0, trusted.output
    assert [c["kind"] for c in json.loads(trusted.stdout)["checks"]][-1] == "custom"


def test_cli_never_prints_source_url_credentials(cli: Cli, tmp_path: Path) -> None:
    """Issue 12 item 16: ``loopml data`` output (text, JSON, HTML, errors) shows a source URL
    without its credentials."""
    import fsspec

    secret = "wJalrXUtnFEMI-K7MDENG-CLI"
    bucket = f"memory://AKIAKEY:{secret}@cli-{tmp_path.name}"
    with fsspec.open(f"{bucket}/x.csv", "w") as handle:
        _frame().to_csv(handle, index=False)
    page = tmp_path / "report.html"
    runs = [
        cli("data", "add", "ds", f"{bucket}/x.csv", *P),
        cli("data", "add", "ds", f"{bucket}/x.csv", *P, "--json"),
        cli("data", "show", "ds", *P),
        cli("data", "show", "ds", *P, "--json"),
        cli("data", "versions", "ds", *P, "--json"),
        cli("data", "validate", "ds", f"{bucket}/x.csv", *P, "--json", "--html", str(page)),
    ]
    for result in runs:
        assert result.exit_code == 0, result.output
        assert secret not in result.output
    assert json.loads(runs[1].stdout)["source"] == f"{bucket.replace(secret, '***')}/x.csv"
    assert secret not in page.read_text()
    missing = cli("data", "add", "ds", f"{bucket}/absent.csv", *P)
    _one_error_line(missing, "memory://AKIAKEY:***@")
    assert secret not in missing.output


# -- diff ------------------------------------------------------------------------------------


def test_diff_table_and_json(cli: Cli, registered: dict[str, Path]) -> None:
    cli("data", "add", "ds", str(registered["bad"]), *P)
    result = cli("data", "diff", "ds:1", "ds:2", *P)
    assert result.exit_code == 0, result.output
    for text in ("ds:1 → ds:2", "Schema changes", "- removed", "color", "DRIFTED", "0.49 → -4.51"):
        assert text in result.stdout
    data = json.loads(cli("data", "diff", "ds:1", "ds", *P, "--json").stdout)
    assert (data["old"], data["new"]) == ("ds:1", "ds:2")
    assert data["removed"] == [{"name": "color", "arrow_type": "large_string"}]
    assert data["drifted_columns"] == ["x"]
    x = next(c for c in data["columns"] if c["name"] == "x")
    assert x["drifted"] is True
    assert x["psi"] > 0.2

    same = cli("data", "diff", "ds:1", "ds:1", *P)
    assert "No differences" in same.stdout


# -- schema ----------------------------------------------------------------------------------


def test_schema_prints_yaml_and_json(cli: Cli, registered: dict[str, Path]) -> None:
    result = cli("data", "schema", "ds", *P)
    assert result.exit_code == 0, result.output
    for text in ("revision 1", "columns:", "type: int64", "unique: true", "expectations:\n"):
        assert text in result.stdout
    data = json.loads(cli("data", "schema", "ds", *P, "--json").stdout)
    assert data["revision"] == 1
    assert data["schema"]["columns"]["color"]["allowed"] == ["green", "red"]
    assert data["expectations"] == []


def test_schema_set_saves_a_revision_that_applies(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    spec = tmp_path / "schema.yaml"
    spec.write_text(
        "expectations:\n- kind: row_count\n  min: 45\n- kind: range\n  column: x\n  min: 0\n"
    )
    result = cli("data", "schema", "ds", *P, "--set", str(spec))
    assert result.exit_code == 0, result.output
    assert "Saved revision 2" in result.stdout
    revision, schema, expectations = loopml.data.get_schema("ds", project="proj")
    assert revision == 2
    assert [e.kind for e in expectations] == ["row_count", "range"]
    assert "color" in schema.columns  # the schema was left as it was
    checked = cli("data", "validate", "ds", str(registered["more"]), *P, "--json")
    assert checked.exit_code == 1
    failed = [c["kind"] for c in json.loads(checked.stdout)["checks"] if not c["passed"]]
    assert failed == ["row_count"]
    shown = cli("data", "schema", "ds", *P)
    assert "expectations:\n- kind: row_count" in shown.stdout


def test_schema_output_round_trips_through_set(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 13: what ``data schema NAME`` prints is what ``--set`` reads back."""
    printed = cli("data", "schema", "ds", *P).stdout
    spec = tmp_path / "schema.yaml"
    spec.write_text(printed)
    unchanged = cli("data", "schema", "ds", *P, "--set", str(spec))
    assert unchanged.exit_code == 0, unchanged.output
    assert "No changes; the schema stays at revision 1." in unchanged.stdout
    assert cli("data", "schema", "ds", *P).stdout == printed

    example = "# - {kind: not_null_rate, column: COLUMN, min_rate: 0.99}\n"
    assert example in printed
    spec.write_text(printed.replace(example, "- {kind: not_null_rate, column: x, min_rate: 0.9}\n"))
    assert "Saved revision 2" in cli("data", "schema", "ds", *P, "--set", str(spec)).stdout
    printed = cli("data", "schema", "ds", *P).stdout
    assert "(revision 2)" in printed and "column: x" in printed
    spec.write_text(printed)
    assert "stays at revision 2" in cli("data", "schema", "ds", *P, "--set", str(spec)).stdout
    assert cli("data", "schema", "ds", *P).stdout == printed

    # the --json form is accepted as well
    spec.write_text(cli("data", "schema", "ds", *P, "--json").stdout)
    as_json = cli("data", "schema", "ds", *P, "--set", str(spec), "--json")
    assert json.loads(as_json.stdout) == {"name": "ds", "revision": 2}


def test_schema_set_with_an_expectation_on_an_unknown_column_saves_nothing(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    spec = tmp_path / "schema.yaml"
    spec.write_text("expectations:\n- {kind: range, column: colour, min: 0}\n")
    result = cli("data", "schema", "ds", *P, "--set", str(spec))
    _one_error_line(result, "Expectation #1 (range(colour, 0, None)) names column(s) ['colour']")
    assert "its columns are ['id', 'x', 'color']" in result.stderr
    assert loopml.data.get_schema("ds", project="proj")[0] == 1


def test_add_hints_at_columns_that_look_like_ids(cli: Cli, files: dict[str, Path]) -> None:
    result = cli("data", "add", "unkeyed", str(files["good"]), *P)
    assert result.exit_code == 0, result.output
    assert "hint: 'id' look(s) like row ids" in result.stdout
    assert "loopml data schema unkeyed --edit" in result.stdout
    keyed = cli("data", "add", "keyed", str(files["good"]), *P, "--key", "id")
    assert "hint:" not in keyed.stdout


def test_diff_shows_key_columns_as_keys(cli: Cli, registered: dict[str, Path]) -> None:
    assert cli("data", "add", "ds", str(registered["more"]), *P).exit_code == 0
    result = cli("data", "diff", "ds:1", "ds:2", *P, "--json")
    columns = {c["name"]: c for c in json.loads(result.stdout)["columns"]}
    assert columns["id"]["key"] is True and columns["id"]["psi"] is None
    assert not columns["id"]["drifted"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema: [oops\n", "The schema and expectations YAML does not parse at line 2"),
        ("colour: {}\n", "The schema file has unknown top-level key(s) ['colour']"),
        ("- 1\n", "The schema file must be a mapping"),
        ("schema:\n  columns:\n    id: {type: int64, nullable: maybe}\n", "Invalid schema"),
        ("expectations:\n- kind: rnage\n", "Expectation #1 (line 2) has unknown kind 'rnage'"),
    ],
)
def test_schema_set_that_does_not_parse_saves_nothing(
    cli: Cli, registered: dict[str, Path], tmp_path: Path, text: str, message: str
) -> None:
    spec = tmp_path / "schema.yaml"
    spec.write_text(text)
    result = cli("data", "schema", "ds", *P, "--set", str(spec))
    _one_error_line(result, message)
    assert loopml.data.get_schema("ds", project="proj")[0] == 1


def _editor_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.sh"
    script.write_text(f'#!/bin/sh\nset -e\n{body}\ncp "$1" "{tmp_path}/seen.yaml"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_schema_edit_saves_the_edited_document(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    editor = _editor_script(
        tmp_path,
        "sed -i 's/^\\( *\\)unique: true$/&\\n\\1max: 1000/' \"$1\"\n"
        "printf -- '- kind: not_null_rate\\n  column: x\\n  min_rate: 0.9\\n' >> \"$1\"",
    )
    result = cli("data", "schema", "ds", *P, "--edit", env={"EDITOR": editor, "VISUAL": ""})
    assert result.exit_code == 0, result.output
    assert "Saved revision 2 of the schema of dataset 'ds'." in result.stdout
    seen = (tmp_path / "seen.yaml").read_text()
    assert seen.startswith("# Schema and expectations of dataset 'ds' (revision 1).")
    assert "schema:\n  version: 1" in seen
    revision, schema, expectations = loopml.data.get_schema("ds", project="proj")
    assert revision == 2
    assert schema.column("id").max == 1000
    assert [e.kind for e in expectations] == ["not_null_rate"]


def test_schema_edit_unchanged_bad_or_failed(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    unchanged = cli("data", "schema", "ds", *P, "--edit", env={"VISUAL": "true"})
    assert unchanged.exit_code == 0, unchanged.output
    assert "No changes; the schema stays at revision 1." in unchanged.stdout

    editor = _editor_script(tmp_path, "echo 'schema: [oops' >> \"$1\"")
    broken = cli("data", "schema", "ds", *P, "--edit", env={"VISUAL": editor})
    _one_error_line(broken, "The schema and expectations YAML does not parse at line")
    kept = broken.stderr.split("your edit is kept in ")[1].strip().rstrip(".")
    assert Path(kept).read_text().endswith("schema: [oops\n")
    Path(kept).unlink()

    failed = cli("data", "schema", "ds", *P, "--edit", env={"VISUAL": "false"})
    _one_error_line(failed, "The editor 'false' exited with status 1; nothing saved.")
    missing = cli("data", "schema", "ds", *P, "--edit", env={"VISUAL": "no-such-editor-xyz"})
    _one_error_line(missing, "Cannot start the editor 'no-such-editor-xyz'")
    assert loopml.data.get_schema("ds", project="proj")[0] == 1

    both = cli("data", "schema", "ds", *P, "--edit", "--set", str(tmp_path / "x.yaml"))
    assert both.exit_code == 2


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("data", "show", "nope"),
        ("data", "versions", "nope"),
        ("data", "schema", "nope"),
        ("data", "diff", "nope:1", "ds:1"),
        ("data", "validate", "nope", "ignored.csv"),
    ],
)
def test_unknown_dataset_is_one_line(
    cli: Cli, registered: dict[str, Path], args: tuple[str, ...]
) -> None:
    _one_error_line(cli(*args, *P), "No dataset named 'nope' in project 'proj'.")


def test_unknown_version_is_one_line(cli: Cli, registered: dict[str, Path]) -> None:
    _one_error_line(
        cli("data", "show", "ds:7", *P), "Dataset 'ds' in project 'proj' has no version 7."
    )


def test_unreadable_sources_are_one_line(
    cli: Cli, registered: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    text = tmp_path / "data.txt"
    text.write_text("a,b\n1,2\n")
    whole = tmp_path / "whole.parquet"
    _frame(2000).to_parquet(whole)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    cases = [
        (empty, "the file is empty (0 bytes)"),
        (text, "unknown format '.txt'"),
        (truncated, "not a readable Parquet file"),
        (tmp_path / "absent.csv", "no such file or folder"),
    ]
    for path, message in cases:
        for command in (("add", "new"), ("validate", "ds")):
            result = cli("data", *command, str(path), *P)
            _one_error_line(result, f"{path}: ")
            assert message in result.stderr, result.stderr
    assert [d.name for d in loopml.data.datasets(project="proj")] == ["ds"]


def test_bad_names_and_formats(cli: Cli, registered: dict[str, Path]) -> None:
    _one_error_line(
        cli("data", "add", "bad name", str(registered["good"]), *P),
        "A dataset name must start with a letter or digit",
    )
    _one_error_line(
        cli("data", "add", "ds", str(registered["good"]), *P, "--format", "parquet"),
        f"{registered['good']}: not a readable Parquet file",
    )
    usage = cli("data", "add", "ds", str(registered["good"]), *P, "--format", "xml")
    assert usage.exit_code == 2
    assert "'xml' is not one of 'csv', 'parquet', 'jsonl'" in usage.stderr
