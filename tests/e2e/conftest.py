"""Fixtures for the CLI tests: a runner on the real app, a store with runs in it, the demo.

The root ``conftest.py`` already points ``LOOPML_HOME`` at a fresh folder for each
test and unsets ``LOOPML_STORE_URI``/``LOOPML_ARTIFACT_URI``; the runs here are
written there with the SDK, exactly where the CLI will look.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Cli, Demo, Seeded, run_loopml
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


def _build_demo(folder: Path) -> Demo:
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOPML_HOME", str(home))
        # The demo takes ~25 s alone; a shared machine can make it 10x slower.
        first = run_loopml("demo", timeout=900)
        second = run_loopml("demo", "--json", timeout=900)
    for done in (first, second):
        assert done.returncode == 0, done.stderr
    assert first.stderr == ""
    return Demo(home, first.stdout, second.stderr, json.loads(second.stdout))


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Demo:
    """A home in which ``loopml demo`` ran twice, in real processes, built once per test run.

    The demo is the suite's most expensive setup (a minute or more each time on a busy
    machine), so the tests only read it. Under pytest-xdist the first worker to need it
    builds it in the folder all workers of the run share, holding a lock; the others
    wait for that lock, then read what it recorded.
    """
    if worker_id == "master":  # not distributed: this process is the whole run
        return _build_demo(tmp_path_factory.mktemp("demo"))
    # Each worker's basetemp is a folder of one per-run folder: that one is shared.
    shared = tmp_path_factory.getbasetemp().parent / "demo"
    shared.mkdir(exist_ok=True)
    record = shared / "demo.json"
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if record.is_file():
            saved = json.loads(record.read_text(encoding="utf-8"))
            return Demo(Path(saved.pop("home")), **saved)
        if (shared / "home").exists():
            pytest.fail("the shared demo failed to build in another worker (see its error)")
        built = _build_demo(shared)
        saved = {**dataclasses.asdict(built), "home": str(built.home)}
        record.write_text(json.dumps(saved), encoding="utf-8")
        return built


@pytest.fixture
def in_demo(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    """Point this test's LOOPML_HOME at the shared demo home (to read it)."""
    monkeypatch.setenv("LOOPML_HOME", str(demo.home))
    return demo
