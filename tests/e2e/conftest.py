"""Fixtures for the CLI tests: a runner on the real app, and a store with runs in it.

The root ``conftest.py`` already points ``LOOPML_HOME`` at a fresh folder for each
test and unsets ``LOOPML_STORE_URI``/``LOOPML_ARTIFACT_URI``; the runs here are
written there with the SDK, exactly where the CLI will look.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Cli, Seeded
from typer.testing import CliRunner

from loopml.tracking import TrackingClient


@pytest.fixture
def cli() -> Cli:
    """Invoke the CLI in-process (wide console, so tables keep every column)."""
    return Cli(CliRunner())


@pytest.fixture
def sdk() -> Iterator[TrackingClient]:
    """A tracking client on the test's LOOPML_HOME."""
    client = TrackingClient()
    yield client
    client.close()


@pytest.fixture
def seeded(sdk: TrackingClient, tmp_path: Path) -> Seeded:
    """Project ``proj``: a finished run with everything, a failed run and a running one."""
    good = sdk.create_run(
        project="proj",
        name="good-run",
        params={"model": "rf", "depth": 5},
        tags={"team": "vision"},
    )
    for step, value in enumerate([0.5, 0.7, 0.93]):
        sdk.log_metric(good, "auc", value, step=step)
    sdk.log_metric(good, "loss", float("nan"))
    sdk.log_text(good, "hello artifact", "reports/summary.txt")
    folder = tmp_path / "model-dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00" * 2048)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    sdk.log_artifact(good, folder, "model")
    sdk.log_note("run", good, "# Findings\n\nThe **forest** wins.")
    sdk.end_run(good)

    bad = sdk.create_run(
        project="proj", name="bad-run", params={"model": "lr", "depth": 5}, capture_context=False
    )
    sdk.log_metric(bad, "auc", 0.61)
    try:
        raise ValueError("diverged at epoch 3")
    except ValueError as exc:
        sdk.end_run(bad, "failed", exc)

    live = sdk.create_run(project="proj", name="live-run", capture_context=False)
    sdk.flush()
    return Seeded(good, bad, live)
