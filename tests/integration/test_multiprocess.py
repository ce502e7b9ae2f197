"""Several processes writing at once, and processes killed mid-write, on every back-end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore
from loopml.tracking import TrackingClient

PROCESSES = 8
POINTS = 5_000

_LOGGER = textwrap.dedent(
    """
    import sys
    import loopml

    worker = int(sys.argv[1])
    with loopml.start_run(name=f"worker-{{worker}}", project="multi") as run:
        for step in range({points}):
            loopml.log_metric("loss", step / {points}, step=step)
            loopml.log_metric(f"worker_{{worker}}", float(worker), step=step)
    """
)


def _env(store_uri: str, artifacts: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LOOPML_STORE_URI=store_uri, LOOPML_ARTIFACT_URI=str(artifacts), **extra)
    return env


@pytest.mark.slow
def test_eight_processes_logging_at_once_lose_nothing(store_uri: str, tmp_path: Path) -> None:
    script = tmp_path / "logger.py"
    script.write_text(_LOGGER.format(points=POINTS))
    env = _env(store_uri, tmp_path / "artifacts", LOOPML_FLUSH_MAX_POINTS="500")
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(worker)], env=env, stderr=subprocess.PIPE
        )
        for worker in range(PROCESSES)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=240)
        assert child.returncode == 0, stderr.decode()
        assert b"locked" not in stderr

    client = TrackingClient(store_uri, str(tmp_path / "artifacts"))
    try:
        runs = client.search_runs("multi", max_results=100)
        assert len(runs) == PROCESSES
        for run in runs:
            assert run.status == "finished"
            history = client.get_metric_history(run.id, "loss")
            assert [p.step for p in history] == list(range(POINTS))
            worker = run.name.split("-")[1]
            assert len(client.get_metric_history(run.id, f"worker_{worker}")) == POINTS
    finally:
        client.close()


_CRASHER = textwrap.dedent(
    """
    import os, sys
    import loopml

    folder = sys.argv[1]
    with loopml.start_run(name="doomed", project="crash") as run:
        print(run.id, flush=True)
        step = 0
        while True:
            loopml.log_metric("x", float(step), step=step)
            if step % 2000 == 0:
                path = os.path.join(folder, f"blob-{{step}}.bin")
                with open(path, "wb") as handle:
                    handle.write(os.urandom(4 * 1024 * 1024))
                loopml.log_artifact(path, f"blobs/{{step}}.bin")
                print("artifact", step, flush=True)
            step += 1
    """
)


@pytest.mark.slow
def test_sigkill_mid_write_leaves_readable_runs_and_verified_blobs(
    store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "crasher.py"
    script.write_text(_CRASHER.format())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    artifacts = tmp_path / "artifacts"
    env = _env(store_uri, artifacts, LOOPML_FLUSH_INTERVAL="0.2", LOOPML_HEARTBEAT_TIMEOUT="1")
    with subprocess.Popen(
        [sys.executable, str(script), str(scratch)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        run_id = child.stdout.readline().strip()
        artifacts_seen = 0
        while artifacts_seen < 3:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            artifacts_seen += line.startswith("artifact")
        # Kill mid-stream once some points are flushed (a loaded machine may be slow).
        observer = TrackingClient(store_uri, str(artifacts))
        deadline = time.monotonic() + 60
        while not observer.get_metric_history(run_id, "x"):
            assert time.monotonic() < deadline, "no metric point was ever flushed"
            time.sleep(0.1)
        observer.close()
        time.sleep(0.3)  # a few more flushes in flight
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    monkeypatch.setenv("LOOPML_HEARTBEAT_TIMEOUT", "1")
    client = TrackingClient(store_uri, str(artifacts))
    try:
        run = client.get_run(run_id)
        assert run.status in ("running", "lost")
        history = client.get_metric_history(run_id, "x")
        assert history, "flushed points must survive the kill"
        assert [p.step for p in history] == list(range(len(history)))  # a gap-free prefix
        assert len(run.artifacts) >= 2
        blobs = ArtifactStore.from_uri(str(artifacts))
        for digest, _ in blobs.iter_blobs():
            assert blobs.verify(digest)
        for artifact in run.artifacts:
            assert blobs.verify(artifact.digest)
        deadline = time.monotonic() + 60  # a loaded machine may have beaten late
        while client.get_run(run_id).status != "lost" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get_run(run_id).status == "lost"
    finally:
        client.close()
