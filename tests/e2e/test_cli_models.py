"""``loopml models …``: list, show, versions, policy, evaluate, approve, reject, promote,
rollback, history and card, with their error paths.

Two small scikit-learn models on the breast-cancer data are registered with the
SDK in project ``proj``: ``clf/1`` a depth-1 tree (AUC below 0.9), ``clf/2`` a
scaled logistic regression; ``clf-eval:1`` holds the evaluation rows with the
target and a ``site`` column for the fairness check.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import Cli

from loopml.tracking import TrackingClient

POLICY = """\
- auc >= 0.9
- {kind: beats_champion, metric: auc, n_resamples: 200}
- {kind: fairness, sensitive: site, max: 0.3}
- {kind: approvals, count: 1}
"""
EVALUATE = ("--data", "clf-eval:1", "--target", "target", "--sensitive", "site", "-p", "proj")


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """Register ``clf/1`` (weak) and ``clf/2`` (strong) and ``clf-eval:1``; return a policy file."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    import loopml.data
    from loopml.registry import _api as sdk

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    order = np.random.default_rng(0).permutation(len(features))
    train, test = order[:400], order[400:]
    weak = DecisionTreeClassifier(max_depth=1, random_state=0)
    strong = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    example = features.iloc[test[:5]]
    for model in (weak, strong):
        model.fit(features.iloc[train], target.iloc[train])
        sdk.register(model, "clf", project="proj", input_example=example)
    frame = features.iloc[test].copy()
    frame["target"] = target.iloc[test].to_numpy()
    frame["site"] = np.where(np.arange(len(frame)) % 2 == 0, "north", "south")
    loopml.data.register("clf-eval", frame, project="proj")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return policy


def _json(cli: Cli, *args: str) -> object:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_versions_and_show(cli: Cli, models: Path) -> None:
    listed = cli("models", "list", "-p", "proj")
    assert listed.exit_code == 0, listed.output
    assert "clf/2" in listed.stdout
    assert [m["latest"] for m in _json(cli, "models", "list", "-p", "proj")] == ["clf/2"]  # type: ignore[union-attr, index]

    versions = cli("models", "versions", "clf", "-p", "proj")
    assert "Versions of model 'clf'" in versions.stdout
    data = _json(cli, "models", "versions", "clf", "-p", "proj")
    assert [(v["ref"], v["status"]) for v in data] == [  # type: ignore[union-attr, index]
        ("clf/1", "candidate"),
        ("clf/2", "candidate"),
    ]

    shown = cli("models", "show", "clf/1", "-p", "proj")
    assert shown.exit_code == 0, shown.output
    assert "Model clf/1" in shown.stdout
    assert "mean radius (float)" in shown.stdout
    assert "Not evaluated yet." in shown.stdout
    latest = _json(cli, "models", "show", "clf", "-p", "proj")
    assert latest["ref"] == "clf/2"  # type: ignore[index]
    assert latest["policy_results"] == []  # type: ignore[index]

    unknown = cli("models", "list", "-p", "nothing-here")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: No project named 'nothing-here'")
    client = TrackingClient()
    client.create_run(project="nothing-here")  # a project without models
    client.close()
    empty = cli("models", "list", "-p", "nothing-here")
    assert "No models in project 'nothing-here'" in empty.stdout


def test_unknown_model_version_and_alias_are_one_line(cli: Cli, models: Path) -> None:
    for args, message in (
        (("models", "show", "nope", "-p", "proj"), "No model named 'nope' in project 'proj'."),
        (("models", "show", "clf/9", "-p", "proj"), "has no version 9"),
        (("models", "show", "clf@champion", "-p", "proj"), "has no alias 'champion'"),
        (("models", "versions", "nope", "-p", "proj"), "No model named 'nope'"),
        (("models", "rollback", "clf", "-p", "proj"), "no earlier version to roll back to"),
    ):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: ")
        assert message in result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.output


def test_policy_print_and_set(cli: Cli, models: Path, tmp_path: Path) -> None:
    assert "has no promotion policy" in cli("models", "policy", "clf", "-p", "proj").stdout
    stored = cli("models", "policy", "clf", "--set", str(models), "-p", "proj")
    assert stored.exit_code == 0, stored.output
    assert "4 check(s)" in stored.stdout
    shown = cli("models", "policy", "clf", "-p", "proj")
    assert "kind: beats_champion" in shown.stdout
    data = _json(cli, "models", "policy", "clf", "-p", "proj")
    assert [c["kind"] for c in data["checks"]] == [  # type: ignore[index]
        "metric_threshold",
        "beats_champion",
        "fairness",
        "approvals",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {kind: nonsense}\n")
    refused = cli("models", "policy", "clf", "--set", str(bad), "-p", "proj")
    assert refused.exit_code == 1
    assert "unknown kind 'nonsense'" in refused.stderr


def test_evaluate_approve_promote_rollback_and_history(cli: Cli, models: Path) -> None:
    cli("models", "policy", "clf", "--set", str(models), "-p", "proj")

    weak = cli("models", "evaluate", "clf/1", *EVALUATE)
    assert weak.exit_code == 1  # auc below 0.9, no approval yet
    assert "✗" in weak.stdout and "auc >= 0.9" in weak.stdout
    assert "fails 2 of 4 checks" in weak.stdout

    strong = _json_exit(cli, 1, "models", "evaluate", "clf/2", *EVALUATE)
    assert strong["metrics"]["auc"] > 0.9
    failing = [r["name"] for r in strong["results"] if not r["passed"]]
    assert failing == ["1 approval"]

    refused = cli("models", "promote", "clf/2", "-p", "proj")
    assert refused.exit_code == 1
    assert "Failing checks of clf/2" in refused.stdout
    assert "0 of 1 required approval(s)" in refused.stdout
    assert refused.stderr.startswith("error: Cannot promote clf/2 to @champion")

    approved = cli("models", "approve", "clf/2", "--comment", "looks good", "-p", "proj")
    assert approved.exit_code == 0, approved.output
    assert "Approved clf/2" in approved.stdout
    twice = cli("models", "approve", "clf/2", "-p", "proj")
    assert twice.exit_code == 1
    assert "already approved clf/2" in twice.stderr

    promoted = cli("models", "promote", "clf/2", "-p", "proj")
    assert promoted.exit_code == 0, promoted.output
    assert "@champion → clf/2" in promoted.stdout
    assert _json(cli, "models", "show", "clf@champion", "-p", "proj")["ref"] == "clf/2"  # type: ignore[index]

    # The weak model, evaluated against the new champion, fails to beat it.
    again = _json_exit(cli, 1, "models", "evaluate", "clf/1", *EVALUATE)
    beats = next(r for r in again["results"] if r["kind"] == "beats_champion")
    assert not beats["passed"]
    assert "not significant" in beats["reason"]

    no_reason = cli("models", "promote", "clf/1", "--force", "-p", "proj")
    assert no_reason.exit_code == 1
    assert "needs a reason" in no_reason.stderr
    forced = cli("models", "promote", "clf/1", "--force", "--reason", "hotfix", "-p", "proj")
    assert forced.exit_code == 0, forced.output
    assert "forced" in forced.stdout and "@champion → clf/1 (was clf/2)" in forced.stdout

    back = cli("models", "rollback", "clf", "-p", "proj")
    assert back.exit_code == 0, back.output
    assert "@champion → clf/2 (was clf/1)" in back.stdout

    table = cli("models", "history", "clf", "--alias", "champion", "-p", "proj")
    assert "promote (forced)" in table.stdout and "hotfix" in table.stdout
    events = _json(cli, "models", "history", "clf", "-p", "proj")
    moves = [e for e in events if e["kind"] == "alias"]  # type: ignore[union-attr, index]
    assert [(e["action"], e["from_version"], e["to_version"]) for e in moves] == [  # type: ignore[index]
        ("promote", None, 2),
        ("promote", 2, 1),
        ("rollback", 1, 2),
    ]
    assert (
        "has never moved" in cli("models", "history", "clf", "-a", "staging", "-p", "proj").stdout
    )


def test_evaluating_the_champion_says_so_and_promoting_it_again_moves_nothing(
    cli: Cli, models: Path
) -> None:
    """Issue 12 item 18a: 'evaluate' on the champion says it is the champion."""
    cli("models", "policy", "clf", "--set", str(models), "-p", "proj")
    assert cli("models", "approve", "clf/2", "-p", "proj").exit_code == 0
    forced = cli("models", "promote", "clf/2", "--force", "--reason", "first", "-p", "proj")
    assert forced.exit_code == 0, forced.output
    first = _json_exit(cli, 0, "models", "evaluate", "clf/2", *EVALUATE)
    beats = next(r for r in first["results"] if r["kind"] == "beats_champion")  # type: ignore[attr-defined]
    assert beats["passed"]
    assert beats["reason"].startswith("the candidate already is @champion; comparing it")
    shown = cli("models", "evaluate", "clf@champion", *EVALUATE)
    assert shown.exit_code == 0, shown.output
    assert "no champion" not in shown.stdout and "already is @champion" in shown.stdout

    again = cli("models", "promote", "clf/2", "-p", "proj")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "@champion already is clf/2; nothing moved."
    history = _json(cli, "models", "history", "clf", "-p", "proj")
    assert [e["kind"] for e in history] == ["policy", "alias"]  # type: ignore[union-attr, index]


def _json_exit(cli: Cli, code: int, *args: str) -> dict[str, object]:
    result = cli(*args, "--json")
    assert result.exit_code == code, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_reject_blocks_approval_and_promotion(cli: Cli, models: Path) -> None:
    rejected = cli("models", "reject", "clf/1", "--comment", "too weak", "-p", "proj")
    assert rejected.exit_code == 0, rejected.output
    assert "Rejected clf/1" in rejected.stdout
    twice = cli("models", "reject", "clf/1", "-p", "proj")
    assert twice.exit_code == 1
    assert "already rejected" in twice.stderr
    approve = cli("models", "approve", "clf/1", "-p", "proj")
    assert approve.exit_code == 1
    assert "rejected" in approve.stderr
    promote = cli("models", "promote", "clf/1", "--force", "--reason", "x", "-p", "proj")
    assert promote.exit_code == 1
    assert "cannot be promoted" in promote.stderr


def test_evaluate_with_a_missing_column_is_one_line(cli: Cli, models: Path) -> None:
    result = cli("models", "evaluate", "clf/2", "--data", "clf-eval:1", "-t", "nope", "-p", "proj")
    assert result.exit_code == 1
    assert "Column 'nope' is not in dataset 'clf-eval:1'" in result.stderr


def test_card_markdown_and_html(cli: Cli, models: Path, tmp_path: Path) -> None:
    cli("models", "policy", "clf", "--set", str(models), "-p", "proj")
    cli("models", "evaluate", "clf/2", *EVALUATE)
    described = cli("models", "describe", "clf", "--intended-use", "Tests <only>", "-p", "proj")
    assert described.exit_code == 0, described.output
    markdown = cli("models", "card", "clf/2", "-p", "proj")
    assert markdown.exit_code == 0, markdown.output
    for section in ("# Model card: clf/2", "## Intended use", "Tests <only>", "## Fairness"):
        assert section in markdown.stdout
    assert 'loopml.models.load("clf/2", project="proj")' in markdown.stdout

    html = cli("models", "card", "clf/2", "--html", "-p", "proj")
    assert html.exit_code == 0, html.output
    path = Path(html.stdout.split(": ", 1)[1].strip())
    assert path.parent.name == "cards" and path.name == "clf-2.html"
    page = path.read_text()
    assert "Tests &lt;only&gt;" in page and "site = north" in page

    target = tmp_path / "card.md"
    written = cli("models", "card", "clf/1", "-o", str(target), "-p", "proj")
    assert written.exit_code == 0, written.output
    assert target.read_text().startswith("# Model card: clf/1")
    missing = cli("models", "card", "clf@champion", "-p", "proj")
    assert missing.exit_code == 1
    assert "has no alias 'champion'" in missing.stderr


def test_a_tampered_model_is_refused(cli: Cli, models: Path, loopml_home: Path) -> None:
    cli("models", "policy", "clf", "--set", str(models), "-p", "proj")
    digest = _json(cli, "models", "show", "clf/2", "-p", "proj")["digest"]  # type: ignore[index]
    blobs = loopml_home / "artifacts" / "blobs"
    manifest = json.loads((blobs / digest[:2] / digest).read_text())
    for entry in manifest["entries"]:
        if entry["path"] != "loopml-model.json":
            blob = blobs / entry["digest"][:2] / entry["digest"]
            blob.chmod(0o644)
            blob.write_bytes(blob.read_bytes() + b"tampered")
    result = cli("models", "evaluate", "clf/2", *EVALUATE)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "error: Blob " in result.stderr  # ArtifactIntegrityError names the bad blob
    assert "restored from a copy" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "ref", ["clf/1", "clf@champion", "models:/clf/1", "models:/clf@champion", "clf/champion"]
)
def test_every_version_command_takes_the_three_reference_forms(
    cli: Cli, models: Path, ref: str
) -> None:
    seeded = cli("models", "promote", "clf/1", "--force", "--reason", "seed", "-p", "proj")
    assert seeded.exit_code == 0, seeded.output
    shown = _json(cli, "models", "card", ref, "-p", "proj")
    assert shown == {"ref": "clf/1", "format": "markdown", "markdown": shown["markdown"]}  # type: ignore[index]
    approved = _json(cli, "models", "approve", ref, "--comment", "fine", "-p", "proj")
    assert approved["ref"] == "clf/1" and approved["decision"] == "approved"  # type: ignore[index]
    assert approved["comment"] == "fine"  # type: ignore[index]


@pytest.mark.parametrize("command", ["evaluate", "approve", "reject", "promote", "card"])
def test_the_old_name_version_form_names_the_new_one(cli: Cli, command: str) -> None:
    result = cli("models", command, "clf", "2", "-p", "proj")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: Invalid value for 'MODEL_REF': 'clf' names a model, not a version; write "
        f"clf/2, clf@champion or models:/clf/2. (see 'loopml models {command} --help')\n"
    )


def test_decisions_description_and_cards_print_json(cli: Cli, models: Path, tmp_path: Path) -> None:
    rejected = _json(cli, "models", "reject", "models:/clf/1", "--comment", "weak", "-p", "proj")
    assert rejected["decision"] == "rejected" and rejected["status"] == "rejected"  # type: ignore[index]
    assert rejected["identity"] and rejected["role"] is None  # type: ignore[index]

    described = _json(cli, "models", "describe", "clf", "-d", "A classifier.", "-p", "proj")
    assert described["name"] == "clf" and described["description"] == "A classifier."  # type: ignore[index]

    target = tmp_path / "card.html"
    written = _json(cli, "models", "card", "clf/2", "--html", "-o", str(target), "-p", "proj")
    assert written == {"ref": "clf/2", "format": "html", "path": str(target)}
    assert "clf/2" in target.read_text()
