"""``loopml models policy | archive | unarchive | requirements | history`` (issue 13).

Empty policies refused, clears recorded and shown, unknown metrics warned in
yellow on stderr, archiving by one reference, requirements exported.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import Cli

P = ("-p", "proj")


@pytest.fixture
def clf() -> None:
    """Register ``clf/1`` and ``clf/2`` (small logistic regressions) in project ``proj``."""
    from sklearn.linear_model import LogisticRegression

    from loopml.registry import _api as sdk

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    y = (X["a"] > 0).astype("int64")
    for c in (0.5, 1.0):
        sdk.register(
            LogisticRegression(C=c).fit(X, y),
            "clf",
            project="proj",
            input_example=X[:5],
            extra_pip=["pandas>=2"],
        )


def _error_line(result: object, code: int = 1) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return stderr


@pytest.mark.parametrize("text", ["", "# nothing here\n", "[]\n"])
def test_an_empty_policy_file_is_one_red_line_and_changes_nothing(
    cli: Cli, clf: None, tmp_path: Path, text: str
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("- accuracy >= 0.5\n")
    assert cli("models", "policy", "clf", "--set", str(good), *P).exit_code == 0
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    message = _error_line(cli("models", "policy", "clf", "--set", str(empty), *P))
    assert "has no checks" in message and "--clear --reason" in message
    data = json.loads(cli("models", "policy", "clf", *P, "--json").stdout)
    assert len(data["checks"]) == 1 and data["last_change"]["revision"] == 1


def test_clear_needs_a_reason_and_shows_everywhere(cli: Cli, clf: None, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("- accuracy >= 0.5\n")
    cli("models", "policy", "clf", "--set", str(good), "--reason", "launch bar", *P)
    assert "needs a reason" in _error_line(cli("models", "policy", "clf", "--clear", *P))
    both = cli("models", "policy", "clf", "--clear", "--set", str(good), "--reason", "x", *P)
    assert "either --set FILE or --clear" in _error_line(both)

    cleared = cli("models", "policy", "clf", "--clear", "--reason", "gate moved to CI", *P)
    assert cleared.exit_code == 0, cleared.output
    assert "cleared on purpose (rev 2)" in cleared.stdout
    assert "gate moved to CI" in cleared.stdout
    shown = cli("models", "policy", "clf", *P)
    assert "cleared on purpose" in shown.stdout and "gate moved to CI" in shown.stdout
    data = json.loads(cli("models", "policy", "clf", *P, "--json").stdout)
    assert data["checks"] == []
    assert data["last_change"]["action"] == "policy_clear"
    assert data["last_change"]["reason"] == "gate moved to CI"
    show = cli("models", "show", "clf/1", *P)
    assert "cleared on purpose" in show.stdout
    change = json.loads(cli("models", "show", "clf/1", *P, "--json").stdout)["policy_change"]
    assert (change["action"], change["reason"]) == ("policy_clear", "gate moved to CI")
    assert "cleared" in cli("models", "list", *P).stdout

    table = cli("models", "history", "clf", *P)
    assert "policy set" in table.stdout and "policy clear" in table.stdout
    assert "launch bar" in table.stdout and "gate moved to CI" in table.stdout
    events = json.loads(cli("models", "history", "clf", *P, "--json").stdout)
    assert [(e["kind"], e["action"], e["revision"]) for e in events] == [
        ("policy", "policy_set", 1),
        ("policy", "policy_clear", 2),
    ]
    assert events[0]["policy_text"] == "- accuracy >= 0.5\n"


def test_an_unknown_metric_is_a_yellow_warning_and_the_policy_is_stored(
    cli: Cli, clf: None, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("- acuracy >= 0.5\n")
    stored = cli("models", "policy", "clf", "--set", str(typo), *P)
    assert stored.exit_code == 0, stored.output
    (line,) = stored.stderr.splitlines()
    assert line.startswith("warning: Policy check 'acuracy >= 0.5'")
    assert "Did you mean 'accuracy'?" in line
    assert "1 check(s)" in stored.stdout


def test_policy_file_errors_are_one_line(cli: Cli, clf: None, tmp_path: Path) -> None:
    missing = _error_line(cli("models", "policy", "clf", "--set", str(tmp_path / "no.yaml"), *P))
    assert "no.yaml" in missing
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"- accuracy >= 0.5\n\xff\xfe")
    assert "is not UTF-8 text" in _error_line(
        cli("models", "policy", "clf", "--set", str(binary), *P)
    )
    assert "--reason goes with" in _error_line(cli("models", "policy", "clf", "--reason", "x", *P))


def test_archive_and_unarchive_by_one_reference(cli: Cli, clf: None) -> None:
    from loopml.errors import ModelError
    from loopml.registry import _api as sdk

    # promote through the SDK: its CLI arguments are being moved to one reference elsewhere
    sdk.promote("clf/2", force=True, reason="first", project="proj")
    refused = _error_line(cli("models", "archive", "clf@champion", *P))
    assert "clf/2 is @champion" in refused and "Move @champion first" in refused
    bare = _error_line(cli("models", "archive", "clf", *P), code=2)  # a usage error
    assert "'clf' names a model, not a version" in bare

    archived = cli("models", "archive", "models:/clf/1", "--reason", "weak", *P)
    assert archived.exit_code == 0, archived.output
    assert archived.stdout.strip() == "Archived clf/1: weak"
    with pytest.raises(ModelError, match=r"clf/1 is archived; .*loopml models unarchive clf/1"):
        sdk.promote("clf/1", force=True, reason="x", project="proj")
    versions = json.loads(cli("models", "versions", "clf", *P, "--json").stdout)
    assert [v["status"] for v in versions] == ["archived", "approved"]

    back = json.loads(cli("models", "unarchive", "clf/1", *P, "--json").stdout)
    assert (back["ref"], back["status"]) == ("clf/1", "candidate")
    events = json.loads(cli("models", "history", "clf", *P, "--json").stdout)
    assert [(e["kind"], e["action"]) for e in events] == [
        ("alias", "promote"),
        ("version", "archive"),
        ("version", "unarchive"),
    ]
    table = cli("models", "history", "clf", *P).stdout
    assert "clf/1" in table and "archive" in table and "weak" in table


def test_requirements_print_a_requirements_file(cli: Cli, clf: None, tmp_path: Path) -> None:
    printed = cli("models", "requirements", "clf/2", *P)
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in lines
    assert "pandas>=2" in lines
    data = json.loads(cli("models", "requirements", "clf/2", *P, "--json").stdout)
    assert data == {"ref": "clf/2", "requirements": lines}
    target = tmp_path / "out" / "requirements.txt"
    target.parent.mkdir()
    written = cli("models", "requirements", "models:/clf/1", "-o", str(target), *P)
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8").splitlines() == lines
    shown = json.loads(cli("models", "show", "clf/1", *P, "--json").stdout)
    assert shown["requirements"] == lines
    assert "has no version 7" in _error_line(cli("models", "requirements", "clf/7", *P))

    from loopml.registry._api import get_client
    from loopml.store import tables

    registry = get_client()
    with registry.store.write() as conn:  # as a store migrated from 0006 holds it
        conn.execute(tables.MODEL_VERSION.update().values(requirements=None))
    old = _error_line(cli("models", "requirements", "clf/1", *P))
    assert "registered before loopml recorded requirements" in old
