"""``loopml predict``: batch scoring from the command line, on every back-end.

Two scikit-learn classifiers of ``cancer`` (breast-cancer data, string labels) are
registered with the SDK in project ``proj`` of the store named by ``store_uri``,
which the CLI reads from ``LOOPML_STORE_URI``; inputs and outputs are real files.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import LOOPML, Cli, subprocess_env

from loopml.serving._scoring import DEFAULT_CHUNK_ROWS

P = ("-p", "proj")
ROWS = 569


@pytest.fixture
def fitted(fluent_store: str) -> dict[str, Any]:
    """``cancer/1`` (logistic regression) and ``cancer/2`` (a tree), registered in ``proj``."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from loopml.registry import _api as sdk

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    labels = np.where(target.to_numpy() == 1, "benign", "malignant")
    models = {
        "cancer/1": LogisticRegression(max_iter=5000).fit(features, labels),
        "cancer/2": DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, labels),
    }
    for model in models.values():
        sdk.register(model, "cancer", project="proj", input_example=features.head())
    return models


@pytest.fixture
def features() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).data
    return frame


@pytest.fixture
def source(features: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "input.parquet"
    features.to_parquet(path)
    return path


def _deploy(endpoint: str, *routes: str) -> None:
    from loopml.serving._deployments import get_client

    get_client().set(endpoint, routes, project="proj")


def _ok(cli: Cli, *args: str, env: dict[str, str] | None = None) -> str:
    result = cli("predict", *args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(cli: Cli, *args: str) -> str:
    result = cli("predict", *args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_predict_writes_the_scores_and_one_summary_line(
    cli: Cli, fitted: dict[str, Any], features: pd.DataFrame, source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.parquet"
    result = cli("predict", "cancer/1", str(source), "-o", str(output), *P, "--chunk-rows", "100")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"Scored 569 rows (6 chunks) with cancer/1 → {output} in ")
    scored = pd.read_parquet(output)
    pd.testing.assert_frame_equal(scored[features.columns], features)
    assert scored["prediction"].tolist() == fitted["cancer/1"].predict(features).tolist()


def test_json_and_proba(
    cli: Cli, fitted: dict[str, Any], features: pd.DataFrame, source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.parquet"
    data = json.loads(
        _ok(cli, "cancer@latest", str(source), "--output", str(output), *P, "--proba", "--json")
    )

    assert isinstance(data.pop("seconds"), float)
    assert data == {
        "destination": str(output),
        "rows": ROWS,
        "chunks": 1,
        "model_version": "cancer/2",
        "endpoint": None,
        "revision": None,
    }
    scored = pd.read_parquet(output)
    expected = fitted["cancer/2"].predict_proba(features)
    np.testing.assert_allclose(scored[["proba_benign", "proba_malignant"]], expected)


def test_an_endpoint_scores_with_its_primary_route(
    cli: Cli, fitted: dict[str, Any], features: pd.DataFrame, source: Path, tmp_path: Path
) -> None:
    _deploy("triage", "cancer/2:30", "cancer/1:70:canary")
    output = tmp_path / "scored.parquet"

    line = _ok(cli, "triage", str(source), "-o", str(output), *P).strip()

    assert line.startswith("Scored 569 rows (1 chunk) with cancer/2 via endpoint triage rev 1 → ")
    expected = fitted["cancer/2"].predict(features)
    assert pd.read_parquet(output)["prediction"].tolist() == expected.tolist()


def test_csv_input(
    cli: Cli, fitted: dict[str, Any], features: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "input.csv"
    features.to_csv(source, index=False)
    output = tmp_path / "scored.parquet"

    data = json.loads(
        _ok(cli, "cancer/1", str(source), "-o", str(output), *P, "--chunk-rows", "50", "--json")
    )

    assert (data["rows"], data["chunks"]) == (ROWS, 12)
    expected = fitted["cancer/1"].predict(features)
    assert pd.read_parquet(output)["prediction"].tolist() == expected.tolist()


@pytest.mark.usefixtures("fitted")
def test_a_terminal_sees_a_progress_bar_of_rows(cli: Cli, source: Path, tmp_path: Path) -> None:
    terminal = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    result = cli(
        "predict", "cancer/1", str(source), "-o", str(tmp_path / "s.parquet"), *P,
        "--chunk-rows", "100", env=terminal,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Scoring" in result.stderr
    assert "569/569" in result.stderr
    assert "rows" in result.stderr


def test_help_names_the_default_chunk_size(cli: Cli) -> None:
    result = cli("predict", "--help")
    assert result.exit_code == 0, result.output
    assert f"(default: {DEFAULT_CHUNK_ROWS:,})" in " ".join(result.stdout.split())
    for option in ("--output", "--chunk-rows", "--proba", "--project", "--trust", "--json"):
        assert option in result.stdout


# -- errors: one red line, exit 1, an existing output untouched --------------------------------


def _broken_inputs(folder: Path, features: pd.DataFrame) -> dict[str, Path]:
    paths = {
        "missing": folder / "nowhere.parquet",
        "garbage": folder / "garbage.parquet",
        "no-column": folder / "no-column.parquet",
        "null": folder / "null.parquet",
    }
    paths["garbage"].write_bytes(b"not a parquet file")
    features.drop(columns=["mean radius"]).to_parquet(paths["no-column"])
    nulls = features.copy()
    nulls.loc[420, "mean texture"] = np.nan
    nulls.to_parquet(paths["null"])
    return paths


@pytest.mark.usefixtures("fitted")
@pytest.mark.parametrize(
    ("model", "data", "extra", "message"),
    [
        ("cancer/1", "missing", (), "nowhere.parquet: no such file or folder"),
        ("cancer/1", "garbage", (), "garbage.parquet: not a readable Parquet file"),
        (
            "cancer/1",
            "no-column",
            ("--chunk-rows", "100"),
            "chunk 1, rows 0-99: Input column 'mean radius' is missing",
        ),
        (
            "cancer/1",
            "null",
            ("--chunk-rows", "100"),
            "chunk 5, rows 400-499: Input column 'mean texture' has 1 missing value "
            "(first at row 420)",
        ),
        ("nothing", "input", (), "No endpoint or model named 'nothing' in project 'proj'."),
        ("cancer/7", "input", (), "Model 'cancer' in project 'proj' has no version 7."),
        ("canaries", "input", (), "Endpoint 'canaries' (revision 1) has no primary route"),
        ("cancer/1", "input", ("--chunk-rows", "0"), "chunk size must be an int >= 1 row; got 0."),
    ],
    ids=["missing", "garbage", "no-column", "null", "unknown", "no-version", "canaries", "chunk"],
)
def test_errors_are_one_line_and_leave_the_old_output(
    cli: Cli,
    features: pd.DataFrame,
    source: Path,
    tmp_path: Path,
    model: str,
    data: str,
    extra: tuple[str, ...],
    message: str,
) -> None:
    _deploy("canaries", "cancer/1:100:canary")
    inputs = {"input": source, **_broken_inputs(tmp_path, features)}
    output = tmp_path / "scored.parquet"
    output.write_bytes(b"yesterday's scores")

    line = _fails(cli, model, str(inputs[data]), "-o", str(output), *P, *extra)

    assert message in line
    assert output.read_bytes() == b"yesterday's scores"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []


@pytest.mark.usefixtures("fitted")
def test_bad_outputs_are_one_line(cli: Cli, source: Path, tmp_path: Path) -> None:
    before = source.read_bytes()
    assert "would overwrite the input" in _fails(
        cli, "cancer/1", str(source), "-o", str(source), *P
    )
    assert source.read_bytes() == before
    missing = tmp_path / "missing" / "scored.parquet"
    assert f"The output folder '{missing.parent}' does not exist" in _fails(
        cli, "cancer/1", str(source), "-o", str(missing), *P
    )
    assert "must end in .parquet" in _fails(
        cli, "cancer/1", str(source), "-o", str(tmp_path / "scored.csv"), *P
    )


@pytest.mark.usefixtures("fitted")
def test_an_unwritable_output_folder_is_one_line(
    cli: Cli, source: Path, read_only_folder: Path
) -> None:
    line = _fails(cli, "cancer/1", str(source), "-o", str(read_only_folder / "scored.parquet"), *P)
    assert str(read_only_folder) in line
    assert list(read_only_folder.iterdir()) == []


@pytest.mark.usefixtures("fitted")
def test_debug_shows_the_traceback(cli: Cli, tmp_path: Path) -> None:
    result = cli(
        "--debug", "predict", "cancer/1", str(tmp_path / "nowhere.parquet"), "-o",
        str(tmp_path / "s.parquet"), *P,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.strip().endswith("nowhere.parquet: no such file or folder")


@pytest.mark.slow
def test_the_real_executable(
    fluent_store: str, fitted: dict[str, Any], features: pd.DataFrame, source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.parquet"

    def loopml(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LOOPML), "predict", *args, *P],
            capture_output=True,
            text=True,
            env=subprocess_env(LOOPML_STORE_URI=fluent_store),
            timeout=120,
            check=False,
        )

    done = loopml("cancer/1", str(source), "-o", str(output), "--chunk-rows", "200")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("Scored 569 rows (3 chunks) with cancer/1")
    assert (
        pd.read_parquet(output)["prediction"].tolist()
        == fitted["cancer/1"].predict(features).tolist()
    )

    failed = loopml("cancer/1", str(tmp_path / "nowhere.csv"), "-o", str(output))
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr == f"error: {tmp_path / 'nowhere.csv'}: no such file or folder\n"
