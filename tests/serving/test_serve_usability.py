"""``loopml serve`` as a new user meets it (issue 13): ``-m MODEL``, ``--port 0``, ``--json``,
a busy port, the swap line, and two servers in one home. Real processes, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from process_support import LOOPML, START_SECONDS, STOP_SECONDS
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopml.serving
from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient, feedback
from loopml.serving._predlog_reading import read_predictions
from loopml.store import Store, open_store

PROJECT = "p"


@dataclass
class Home:
    """One loopml home with ``iris/1`` and ``iris/2`` registered, and servers started on it."""

    store: Store
    artifacts: ArtifactStore
    env: dict[str, str]
    tmp: Path
    features: pd.DataFrame
    servers: list[Server] = field(default_factory=list)

    def serve(self, *args: str) -> Server:
        """Start ``loopml serve ARGS --json`` on a port it picks; returns once it is announced."""
        output = self.tmp / f"serve-{len(self.servers)}.err"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [str(LOOPML), "serve", *args, "--port", "0", "--json"],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=sink,
                start_new_session=True,
            )
        server = Server(process, output)
        self.servers.append(server)
        server.read_announcement()
        return server

    def body(self, row: int = 0) -> dict[str, Any]:
        return {"records": [self.features.iloc[row].to_dict()]}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    output: Path
    announced: dict[str, Any] = field(default_factory=dict)

    def read_announcement(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until announced or the process ends
        assert line, f"loopml serve exited with {self.process.wait()}:\n{self.stderr()}"
        self.announced = json.loads(line)

    @property
    def url(self) -> str:
        return str(self.announced["url"])

    def stderr(self) -> str:
        return self.output.read_text(errors="replace")

    def predict(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/v1/endpoints/{endpoint}/predict", json=body, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def wait_for_stderr(self, text: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while text not in self.stderr():
            assert self.process.poll() is None, self.stderr()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.stderr()}"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(STOP_SECONDS)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    frame = load_iris(as_frame=True)
    features = frame.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    store_uri = f"sqlite:///{tmp_path / 'loopml.db'}"
    artifact_uri = str(tmp_path / "artifacts")
    store = open_store(store_uri)
    artifacts = ArtifactStore.from_uri(artifact_uri)
    registry = RegistryClient(store, artifacts)
    for c in (1.0, 0.01):
        model = LogisticRegression(C=c, max_iter=500).fit(features, frame.target)
        registry.register(model, "iris", project=PROJECT, input_example=features.head(3))
    registry.promote("iris/1", project=PROJECT, alias="champion")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(
        LOOPML_HOME=str(tmp_path / "home"),
        LOOPML_STORE_URI=store_uri,
        LOOPML_ARTIFACT_URI=artifact_uri,
        LOOPML_PROJECT=PROJECT,
        NO_COLOR="1",
        COLUMNS="200",
    )
    found = Home(store, artifacts, env, tmp_path, features)
    try:
        yield found
    finally:
        for server in found.servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(STOP_SECONDS)
            if server.process.stdout is not None:
                server.process.stdout.close()
        store.close()


def _fail(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(LOOPML), "serve", *args],
        env=home.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return result


def test_a_model_is_served_without_a_deployment_logged_and_labelled(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = home.serve("-m", "models:/iris@champion")
    assert server.announced["port"] > 0
    assert server.url == f"http://127.0.0.1:{server.announced['port']}"
    assert server.announced["pid"] == server.process.pid
    assert server.announced["endpoints"] == ["iris"]
    answer = server.predict("iris", home.body())
    assert (answer["model_version"], answer["route"]) == ("iris/1", "primary:iris@champion")
    labelled = httpx.post(
        f"{server.url}/v1/endpoints/iris/feedback",
        json={"items": [{"request_id": answer["request_id"], "label": [0]}]},
        timeout=30,
    )
    assert labelled.status_code == 200, labelled.text
    assert "Endpoint iris serves no deployment: iris@champion → iris/1" in server.stderr()
    assert server.stop() == 0
    assert [f.request_id for f in feedback(home.store, "iris")] == [answer["request_id"]]
    for name, value in home.env.items():
        monkeypatch.setenv(name, value)
    read = loopml.serving.predictions("iris")
    assert read["request_id"].tolist() == [answer["request_id"]]
    assert read["label"].tolist() == [[0]]


def test_a_moved_alias_is_swapped_in_with_one_line(home: Home) -> None:
    server = home.serve("-m", "iris@champion", "--poll-interval", "0.2")
    assert server.predict("iris", home.body())["model_version"] == "iris/1"
    RegistryClient(home.store, home.artifacts).promote("iris/2", project=PROJECT)
    server.wait_for_stderr(
        "Endpoint iris: no deployment, iris@champion: iris/1 → iris/2 "
        "(models loaded and warmed up in "
    )
    assert server.predict("iris", home.body())["model_version"] == "iris/2"
    assert server.stop() == 0


def test_a_model_named_like_a_deployment_or_twice_is_refused(home: Home) -> None:
    registry = RegistryClient(home.store, home.artifacts)
    DeploymentClient(home.store, registry).set("iris", ["iris/2:100"], project=PROJECT)
    _fail(home, "-m", "iris/1", "--port", "0")
    refused = _fail(home, "-m", "iris/1", "-m", "iris@champion", "--port", "0")
    assert "more than once: iris" in refused.stderr
    assert "is not a model reference" in _fail(home, "-m", "iris:1", "--port", "0").stderr


def test_a_busy_port_is_one_red_line_naming_it(home: Home) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _fail(home, "-m", "iris/1", "--port", str(port))
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port 0" in result.stderr


def test_two_servers_share_a_home_and_a_crashed_ones_log_is_recovered(home: Home) -> None:
    folder = Path(home.env["LOOPML_HOME"]) / "predictions"
    first = home.serve("-m", "iris/1")
    second = home.serve("-m", "iris/1")
    answers = [first.predict("iris", home.body(i)) for i in range(3)]
    answers += [second.predict("iris", home.body(i)) for i in range(3, 5)]
    assert {p.name for p in folder.iterdir() if p.is_dir()} == {"worker-0", "worker-1"}
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # its WAL stays in worker-0
    assert list((folder / "worker-0").glob("wal-*.log"))
    third = home.serve("-m", "iris/1")  # claims the free worker-0 and recovers it
    logged = set(read_predictions(home.store, home.artifacts, "iris")["request_id"])
    assert {a["request_id"] for a in answers[:3]} <= logged
    answers.append(third.predict("iris", home.body(5)))
    assert second.stop() == third.stop() == 0
    frame = read_predictions(home.store, home.artifacts, "iris")
    assert sorted(frame["request_id"]) == sorted(a["request_id"] for a in answers)
    assert not list(folder.glob("worker-*/wal-*.log"))
