"""``loopml artifacts …`` against a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, Seeded


def test_list_table_and_json(cli: Cli, seeded: Seeded) -> None:
    result = cli("artifacts", "list", seeded.good)
    assert result.exit_code == 0, result.output
    for text in ("reports/summary.txt", "model", "dir", "file", "14 B"):
        assert text in result.stdout
    data = json.loads(cli("artifacts", "list", seeded.good, "--json").stdout)
    by_path = {item["path"]: item for item in data}
    assert by_path["reports/summary.txt"] == {
        "path": "reports/summary.txt",
        "digest": by_path["reports/summary.txt"]["digest"],
        "size": 14,
        "is_dir": False,
    }
    assert by_path["model"]["is_dir"] is True


def test_list_of_a_run_without_artifacts(cli: Cli, seeded: Seeded) -> None:
    result = cli("artifacts", "list", seeded.bad)
    assert result.exit_code == 0
    assert "has no artifacts" in result.stdout
    assert json.loads(cli("artifacts", "list", seeded.bad, "--json").stdout) == []


def test_get_a_file_into_a_new_folder(cli: Cli, seeded: Seeded, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "nested"
    result = cli("artifacts", "get", seeded.good, "reports/summary.txt", "--dest", str(dest))
    assert result.exit_code == 0, result.output
    assert (dest / "summary.txt").read_text() == "hello artifact"
    assert "Downloaded reports/summary.txt" in result.stdout


def test_get_a_folder(cli: Cli, seeded: Seeded, tmp_path: Path) -> None:
    dest = tmp_path / "model-copy"
    result = cli("artifacts", "get", seeded.good, "model", "--dest", str(dest))
    assert result.exit_code == 0, result.output
    assert (dest / "model" / "weights.bin").read_bytes() == b"\x00" * 2048
    assert (dest / "model" / "sub" / "config.json").read_text() == '{"a": 1}'
    assert [p.name for p in dest.iterdir()] == ["model"]  # no staging left


def test_get_defaults_to_the_current_folder(
    cli: Cli, seeded: Seeded, tmp_path: Path, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.chdir(tmp_path)
    result = cli("artifacts", "get", seeded.good, "reports/summary.txt")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "summary.txt").read_text() == "hello artifact"


def test_get_a_missing_path_or_run_is_one_error(cli: Cli, seeded: Seeded, tmp_path: Path) -> None:
    result = cli("artifacts", "get", seeded.good, "nope.txt", "--dest", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"error: Run {seeded.good} has no artifact 'nope.txt'.\n"
    result = cli("artifacts", "get", "abcdef12", "model", "--dest", str(tmp_path))
    assert (result.exit_code, result.stderr) == (1, "error: No run with id 'abcdef12'.\n")
    result = cli("artifacts", "list", "abcdef12")
    assert (result.exit_code, result.stderr) == (1, "error: No run with id 'abcdef12'.\n")


def test_get_into_a_file_is_an_environment_error(cli: Cli, seeded: Seeded, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("artifacts", "get", seeded.good, "model", "--dest", str(blocker))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: Cannot write into the folder {str(blocker)!r}")
    assert "File exists" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert blocker.read_text() == "x"


def test_get_writes_a_new_folder_in_the_current_folder_and_never_over_git_config(
    cli: Cli, seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 10: ``loopml artifacts get RUN model`` in a git checkout writes
    ``./model``, leaves ``.git/config`` alone, refuses to run again over ``./model``
    (one line, exit 1, nothing changed) and replaces it whole with ``--overwrite``."""
    work = tmp_path / "checkout"
    (work / ".git").mkdir(parents=True)
    (work / ".git" / "config").write_text("[core]\n")
    monkeypatch.chdir(work)

    result = cli("artifacts", "get", seeded.good, "model")

    assert result.exit_code == 0, result.output
    assert (work / ".git" / "config").read_text() == "[core]\n"
    assert (work / "model" / "weights.bin").read_bytes() == b"\x00" * 2048
    assert not (work / "weights.bin").exists()

    (work / "model" / "extra.txt").write_text("mine")
    again = cli("artifacts", "get", seeded.good, "model")
    assert again.exit_code == 1
    assert (
        again.stderr == "error: 'model' already exists; nothing was written. "
        "Choose another destination, or ask to overwrite it (overwrite=True, --overwrite).\n"
    )
    assert (work / "model" / "extra.txt").read_text() == "mine"

    replaced = cli("artifacts", "get", seeded.good, "model", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert not (work / "model" / "extra.txt").exists()
    assert (work / "model" / "sub" / "config.json").read_text() == '{"a": 1}'
    assert sorted(p.name for p in work.iterdir()) == [".git", "model"]


def test_get_json(cli: Cli, seeded: Seeded, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = cli("artifacts", "get", seeded.good, "model", "--dest", str(dest), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "run_id": seeded.good,
        "path": "model",
        "downloaded_to": str(dest / "model"),
    }
    assert (dest / "model" / "weights.bin").stat().st_size == 2048
