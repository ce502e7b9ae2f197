"""``loopml up`` (issue 15): the server and the scheduler started together, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from loopml.automation import Lease
from loopml.registry import RegistryClient
from loopml.tracking import TrackingClient
from server_support import free_port

pytestmark = pytest.mark.slow

LOOPML = Path(sys.executable).with_name("loopml")
DEADLINE = 120.0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # back-end independent; slow
def test_up_serves_and_schedules_and_stops_both(client: TrackingClient, tmp_path: Path) -> None:
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(features, target)
    RegistryClient(client.store, client.artifacts).register(
        model, "iris", project="p", input_example=features.head(2)
    )
    port = free_port()
    env = {
        **os.environ,
        "LOOPML_STORE_URI": client.store.uri,
        "LOOPML_ARTIFACT_URI": client.artifacts.uri,
        "LOOPML_HOME": str(tmp_path / "home"),
        "LOOPML_PROJECT": "p",
    }
    with (tmp_path / "up.log").open("wb") as output:
        process = subprocess.Popen(
            [str(LOOPML), "up", "-m", "iris/1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(url), "the server to answer")
        row = features.head(1).to_dict(orient="records")
        answer = httpx.post(f"{url}/v1/endpoints/iris/predict", json={"records": row}, timeout=30)
        assert answer.status_code == 200, answer.text
        _wait_for(lambda: Lease(client.store, "reader").current() is not None, "the scheduler")
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(DEADLINE) == 0, (tmp_path / "up.log").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    log = (tmp_path / "up.log").read_text()
    assert "Scheduler stopped." in log and "Finished server process" in log, log
    state = Lease(client.store, "reader").current()
    assert state is not None and state.expires_at == 0  # the scheduler gave its lease up
