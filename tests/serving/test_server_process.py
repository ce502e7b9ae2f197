"""``loopml serve`` as real processes: killed mid-load, restarted, routed, run with workers.

Every test starts the console script on a free loopback port and speaks HTTP to it
from client threads. What is checked is what a user of the prediction log relies on:
an answered prediction is never lost (even after SIGKILL), never logged twice, and
the log agrees with the answers; weights, sticky keys and shadows route as deployed.
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from process_support import (
    LOOPML,
    Answer,
    Load,
    ServeProcess,
    post_all,
    segment_rows,
    serving,
)
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient, Router, feedback
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._wal import wal_files
from loopml.store import Store, open_store
from server_support import free_port

PROJECT = "p"
CLIENTS = 8

Fitted = tuple[pd.DataFrame, Pipeline, Pipeline]
"""The features, a model of them, and a model answering the opposite."""


@dataclass(frozen=True)
class Rows:
    """Single-row request bodies, and what each model predicts for them."""

    records: list[dict[str, float]]
    straight: list[int]  # cancer/1
    flipped: list[int]  # cancer/2: answers the opposite of cancer/1 on every row

    def body(self, i: int, **extra: Any) -> dict[str, Any]:
        return {"records": [{**self.records[i % len(self.records)], **extra}]}

    def expected(self, answer: Answer) -> list[int]:
        """What ``answer``'s model predicts for its (single-row) body."""
        row = self.records.index(_features(answer.body))
        return [self.flipped[row] if answer.model_version == "cancer/2" else self.straight[row]]


@dataclass
class Stack:
    """Stores with two registered versions of ``cancer``, and the env of a server on them."""

    store: Store
    artifacts: ArtifactStore
    env: dict[str, str]
    tmp: Path

    def deploy(self, endpoint: str, routes: list[str], **settings: Any) -> Router:
        registry = RegistryClient(self.store, self.artifacts)
        deployment = DeploymentClient(self.store, registry).set(
            endpoint, routes, project=PROJECT, settings=settings or None
        )
        return Router.for_deployment(deployment)

    def serve(self, *args: str) -> AbstractContextManager[ServeProcess]:
        """Run ``loopml serve ARGS`` on ``predictions/`` (output in ``serve-N.out``)."""
        return serving(args, self.tmp / "predictions", self.env, _numbered(self.tmp, "serve"))

    def logged(self, endpoint: str) -> pd.DataFrame:
        """The log of ``endpoint``, after checking that no request id was stored twice."""
        raw = segment_rows(self.store, self.artifacts, endpoint)
        assert raw["request_id"].is_unique, raw[raw["request_id"].duplicated()]
        frame = read_predictions(self.store, self.artifacts, endpoint)
        assert len(frame) == len(raw)
        return frame


def _numbered(folder: Path, name: str) -> Path:
    n = 1
    while (folder / f"{name}-{n}.out").exists():
        n += 1
    return folder / f"{name}-{n}.out"


def _features(body: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in body["records"][0].items() if k != "customer_id"}


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns="target")
    # Scaled, the solver converges in a fraction of a second (unscaled it takes ~15 s).
    straight = make_pipeline(StandardScaler(), LogisticRegression())
    straight.fit(features, frame["target"])
    flipped = make_pipeline(StandardScaler(), LogisticRegression())
    flipped.fit(features, 1 - frame["target"])
    return features, straight, flipped


@pytest.fixture(scope="module")
def rows(fitted: Fitted) -> Rows:
    features, straight, flipped = fitted
    assert (straight.predict(features) != flipped.predict(features)).all()
    return Rows(
        [{str(k): float(v) for k, v in row.items()} for row in features.to_dict(orient="records")],
        straight.predict(features).tolist(),
        flipped.predict(features).tolist(),
    )


def _stack(
    store_uri: str,
    tmp_path: Path,
    fitted: Fitted,
) -> Iterator[Stack]:
    features, straight, flipped = fitted
    artifact_uri = str(tmp_path / "artifacts")
    store = open_store(store_uri)
    artifacts = ArtifactStore.from_uri(artifact_uri)
    registry = RegistryClient(store, artifacts)
    for model in (straight, flipped):
        registry.register(model, "cancer", project=PROJECT, input_example=features.head(5))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(
        LOOPML_HOME=str(tmp_path / "home"),
        LOOPML_STORE_URI=store_uri,
        LOOPML_ARTIFACT_URI=artifact_uri,
        LOOPML_PROJECT=PROJECT,
        NO_COLOR="1",
        COLUMNS="200",
    )
    try:
        yield Stack(store, artifacts, env, tmp_path)
    finally:
        store.close()


@pytest.fixture
def stack(tmp_path: Path, fitted: Fitted) -> Iterator[Stack]:
    """A SQLite stack in this test's folder."""
    yield from _stack(f"sqlite:///{tmp_path / 'loopml.db'}", tmp_path, fitted)


@pytest.fixture
def any_stack(
    store_uri: str,
    tmp_path: Path,
    fitted: Fitted,
) -> Iterator[Stack]:
    """A stack on each metadata back-end (SQLite and PostgreSQL)."""
    yield from _stack(store_uri, tmp_path, fitted)


def _assert_log_matches(logged: pd.DataFrame, answers: list[Answer]) -> None:
    """Every answer is logged with the route, version and output it was answered with."""
    by_id = _by_request_id(logged)
    for answer in answers:
        row = by_id[answer.request_id]
        assert row["route"] == answer.route
        assert row["model_version"] == answer.model_version
        assert json.loads(row["output"]) == answer.predictions
        assert json.loads(row["inputs"]) == {k: [v] for k, v in answer.body["records"][0].items()}


def _by_request_id(logged: pd.DataFrame) -> dict[str, dict[str, Any]]:
    records = logged.to_dict(orient="records")
    return {str(row["request_id"]): {str(k): v for k, v in row.items()} for row in records}


def _assert_log_folder_empty(folder: Path) -> None:
    """After a clean exit every record is in a segment: no WAL file, nothing staged
    (in the log folder, and in each server process's ``worker-N`` folder in it)."""
    for each in [folder, *folder.glob("worker-*")]:
        assert wal_files(each) == []
        assert list(each.glob("*.segments*")) == []


# -- 1. the prediction log survives SIGKILL -----------------------------------------------


def test_sigkill_under_load_loses_no_answered_prediction(any_stack: Stack, rows: Rows) -> None:
    stack = any_stack
    stack.deploy("cancer", ["cancer/1:100"])
    folder = stack.tmp / "predictions"
    with stack.serve("cancer") as server:
        assert f"Started server process [{server.pid}]" in server.output()  # no wrapper
        load = Load(server.url, "cancer", rows.body, threads=CLIENTS).start()
        try:
            load.wait_for(400)  # well into the load: every client has a request in flight
            server.kill()
        finally:
            load.stop()
        assert server.process.returncode == -9
    assert not load.failures, load.failures[:3]
    answered = {a.request_id for a in load.answers}
    assert len(answered) == len(load.answers) >= 400
    # The killed server left records behind (recovery is what this test is about).
    assert wal_files(folder / "worker-0") or any((folder / "worker-0").glob("*.segments"))

    with stack.serve("cancer") as server:
        # Recovered at start-up, before the port opened: in the store already.
        assert answered <= set(stack.logged("cancer")["request_id"])
        server.stop()

    logged = stack.logged("cancer")
    assert answered <= set(logged["request_id"]), "an answered prediction was lost"
    # Logged but never answered: only requests cut off in flight by the kill.
    assert len(logged) - len(answered) <= load.cut_off <= CLIENTS
    _assert_log_matches(logged, load.answers)
    assert all(answer.predictions == rows.expected(answer) for answer in load.answers)
    _assert_log_folder_empty(folder)


def test_sigkill_when_quiescent_logs_exactly_the_answered_requests(
    stack: Stack, rows: Rows
) -> None:
    stack.deploy("cancer", ["cancer/1:100"])
    with stack.serve("cancer") as server:
        answers = post_all(server.url, "cancer", [rows.body(i) for i in range(200)], CLIENTS)
        server.kill()
    with stack.serve("cancer") as server:
        assert len(stack.logged("cancer")) == len(answers)  # recovered at start-up
        server.stop()

    logged = stack.logged("cancer")
    assert sorted(logged["request_id"]) == sorted(a.request_id for a in answers)
    _assert_log_matches(logged, answers)
    _assert_log_folder_empty(stack.tmp / "predictions")


# -- 2. routing through the server --------------------------------------------------------


def test_weights_split_traffic_and_the_log_agrees(stack: Stack, rows: Rows) -> None:
    stack.deploy("split", ["cancer/1:80", "cancer/2:20:canary"])
    requests = 1_000
    with stack.serve("split") as server:
        answers = post_all(server.url, "split", [rows.body(i) for i in range(requests)], CLIENTS)
        server.stop()

    routes = pd.Series([a.route for a in answers]).value_counts().to_dict()
    assert set(routes) == {"primary:cancer/1", "canary:cancer/2"}
    canary = routes["canary:cancer/2"]
    tolerance = 4.5 * math.sqrt(requests * 0.2 * 0.8)  # binomial: about 57 requests
    assert abs(canary - 0.2 * requests) <= tolerance, routes
    for answer in answers:
        expected = {"primary:cancer/1": "cancer/1", "canary:cancer/2": "cancer/2"}[answer.route]
        assert answer.model_version == expected
        assert answer.predictions == rows.expected(answer)

    logged = stack.logged("split")
    assert sorted(logged["request_id"]) == sorted(a.request_id for a in answers)
    _assert_log_matches(logged, answers)


def test_sticky_key_keeps_each_caller_on_one_route_across_restarts(
    stack: Stack, rows: Rows
) -> None:
    # customer_id is a request field, not a feature: the signature drops it before predict.
    router = stack.deploy("sticky", ["cancer/1:50", "cancer/2:50:canary"], sticky_key="customer_id")
    customers = [f"customer-{n}" for n in range(40)]
    expected = {c: router.choose(c) for c in customers}
    assert {r.mode for r in expected.values()} == {"primary", "canary"}

    answers: list[Answer] = []
    for life in range(3):  # the first start and two restarts
        bodies = [
            rows.body(7 * n + 3 * life + repeat, customer_id=customer)
            for n, customer in enumerate(customers)
            for repeat in range(3)
        ]
        with stack.serve("sticky") as server:
            answers += post_all(server.url, "sticky", bodies, CLIENTS)
            server.stop()

    seen: dict[str, set[str]] = {}
    for answer in answers:
        customer = answer.body["records"][0]["customer_id"]
        seen.setdefault(customer, set()).add(answer.route)
        assert answer.predictions == rows.expected(answer)
    assert seen == {c: {f"{r.mode}:{r.model}"} for c, r in expected.items()}

    logged = stack.logged("sticky")
    assert len(logged) == len(answers) == 3 * 3 * len(customers)
    _assert_log_matches(logged, answers)


# -- 3. a shadow never answers ------------------------------------------------------------


def test_a_shadow_is_logged_and_never_answers(stack: Stack, rows: Rows) -> None:
    stack.deploy("shadowed", ["cancer/1:100", "cancer/2:shadow"])
    with stack.serve("shadowed") as server:
        answers = post_all(server.url, "shadowed", [rows.body(i) for i in range(200)], CLIENTS)
        server.stop()

    for answer in answers:
        assert answer.route == "primary:cancer/1"
        assert answer.model_version == "cancer/1"
        assert answer.predictions == rows.expected(answer)

    logged = stack.logged("shadowed")
    answered = logged[~logged["request_id"].str.contains(":shadow:")]
    shadows = logged[logged["request_id"].str.contains(":shadow:")]
    assert sorted(answered["request_id"]) == sorted(a.request_id for a in answers)
    _assert_log_matches(answered, answers)
    assert sorted(shadows["request_id"]) == sorted(
        f"{a.request_id}:shadow:cancer/2" for a in answers
    )
    assert set(shadows["route"]) == {"shadow:cancer/2"}
    assert set(shadows["model_version"]) == {"cancer/2"}
    by_id = _by_request_id(shadows)
    for answer in answers:
        shadow_output = json.loads(by_id[f"{answer.request_id}:shadow:cancer/2"]["output"])
        assert shadow_output == [1 - p for p in answer.predictions]  # differs from the answer


# -- 4. several worker processes ----------------------------------------------------------


def test_two_workers_serve_and_log_every_answer_once(stack: Stack, rows: Rows) -> None:
    stack.deploy("cancer", ["cancer/1:100"])
    folder = stack.tmp / "predictions"
    temp = stack.tmp / "temp"  # where the workers' shared metrics folder goes
    temp.mkdir()
    stack.env["TMPDIR"] = str(temp)
    with stack.serve("cancer", "--workers", "2") as server:
        server.wait_for_output("Application startup complete.", times=2)  # both workers
        assert len(list(temp.glob("loopml-metrics-*"))) == 1
        # New connections, not keep-alive ones, so the kernel spreads them over both.
        load = Load(server.url, "cancer", rows.body, threads=CLIENTS, new_connections=True)
        load.start()
        used: set[str] = set()
        try:
            # A worker's WAL file lives >= 2 s after its first record: a WAL file in
            # two worker folders shows that both processes answered.
            deadline = time.monotonic() + 60
            while (len(used) < 2 or load.answered() < 400) and time.monotonic() < deadline:
                used |= {p.parent.name for p in folder.glob("worker-*/wal-*.log")}
                time.sleep(0.01)
        finally:
            load.stop()
        # Each scrape on a new connection reaches either worker; each must count both.
        scrapes = [_served_figures(server.url, "cancer") for _ in range(6)]
        server.stop()

    assert not load.failures, load.failures[:3]
    assert load.cut_off == load.refused == 0
    assert len(used) == 2, used
    assert scrapes == [(len(load.answers), 1.0)] * len(scrapes)
    assert not list(temp.iterdir())  # removed once the workers stopped
    workers = {p.name for p in folder.iterdir() if p.is_dir()}
    assert {"worker-0", "worker-1"} <= workers
    logged = stack.logged("cancer")
    assert sorted(logged["request_id"]) == sorted(a.request_id for a in load.answers)
    _assert_log_matches(logged, load.answers)
    for worker in workers:
        _assert_log_folder_empty(folder / worker)


def _served_figures(url: str, endpoint: str) -> tuple[int, float]:
    """From one scrape of ``/metrics``: requests answered 200, and the revision served."""
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
    answered, revisions = 0.0, []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("endpoint") != endpoint:
                continue
            if sample.name == "loopml_requests_total" and sample.labels["status"] == "200":
                answered += sample.value
            elif sample.name == "loopml_deployment_revision":
                revisions.append(sample.value)
    assert len(revisions) == 1, revisions  # one figure for the server, not one per worker
    return int(answered), revisions[0]


# -- 5. start-up errors --------------------------------------------------------------------


def _serve_once(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``loopml serve ARGS`` expecting it to fail fast."""
    return subprocess.run(
        [str(LOOPML), "serve", *args, "--host", "127.0.0.1", "--port", str(free_port())],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *mentions: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for mention in mentions:
        assert mention in lines[0], lines[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serving_an_unknown_endpoint_fails_with_one_line(stack: Stack, workers: str) -> None:
    stack.deploy("cancer", ["cancer/1:100"])
    result = _serve_once(
        stack, "nope", "--workers", workers, "--log-folder", str(stack.tmp / "predictions")
    )
    _assert_one_line_error(result, "nope")


# -- 6. limits and exposure (issue 12) -------------------------------------------------------


def _raw_request(port: int, chunks: Iterable[bytes], timeout: float = 60) -> bytes:
    """Send ``chunks`` on one raw connection (stopping once the server answers), then read
    until the server closes it; returns everything the server sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered already: it reads no further
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        with suppress(ConnectionResetError):
            while part := sock.recv(65536):
                received += part
        return received


def test_request_heads_over_the_limits_are_refused(stack: Stack, rows: Rows) -> None:
    """Issue 12 item 14: an 8 MiB header, too many headers and a head that never completes
    are refused with 431 / 408 (they used to be read without limit), and the server
    keeps answering."""
    stack.deploy("cancer", ["cancer/1:100"])
    stack.env.update(LOOPML_SERVE_HEADER_TIMEOUT="1", LOOPML_SERVE_MAX_HEADERS="50")
    with stack.serve("cancer") as server:
        head = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: "
        huge = [head, *(b"a" * 65536 for _ in range(128)), b"\r\n\r\n"]  # 8 MiB
        answer = _raw_request(server.port, huge)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"at most 65536 bytes" in answer

        many = b"".join(b"X-H%d: v\r\n" % i for i in range(100_000))
        answer = _raw_request(
            server.port, [b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n", many, b"\r\n"]
        )
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"at most 50 headers" in answer

        slow = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n"  # never ends
        answer = _raw_request(server.port, [slow])
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]

        assert post_all(server.url, "cancer", [rows.body(0)], threads=1)[0].route
        server.stop()
    assert "Traceback" not in server.output()


def test_connections_beyond_the_limit_get_503(stack: Stack) -> None:
    """Issue 12 item 14: concurrent connections are capped (LOOPML_SERVE_MAX_CONNECTIONS)."""
    stack.deploy("cancer", ["cancer/1:100"])
    stack.env.update(LOOPML_SERVE_MAX_CONNECTIONS="3", LOOPML_SERVE_HEADER_TIMEOUT="300")
    with stack.serve("cancer") as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        try:
            refused = httpx.get(f"{server.url}/v2/health/live", timeout=30)
            assert refused.status_code == 503
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/v2/health/live", timeout=30).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.stop()


def test_workers_take_feedback_for_ids_any_worker_answered(stack: Stack, rows: Rows) -> None:
    """Issue 12 items 12-14 with --workers: every worker checks the token and the head
    limits, and takes feedback for request ids another worker answered."""
    stack.deploy("cancer", ["cancer/1:100"])
    stack.env.update(LOOPML_SERVE_TOKEN="tok", LOOPML_SERVE_MAX_HEADERS="20")
    auth = {"authorization": "Bearer tok", "connection": "close"}
    with stack.serve("cancer", "--workers", "2") as server:
        server.wait_for_output("Application startup complete.", times=2)
        ids = []
        for i in range(16):  # new connections: the kernel spreads them over both workers
            answer = httpx.post(
                f"{server.url}/v1/endpoints/cancer/predict", json=rows.body(i), headers=auth
            )
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
        for request_id in ids:
            items = {"items": [{"request_id": request_id, "label": 1}]}
            url = f"{server.url}/v1/endpoints/cancer/feedback"
            assert httpx.post(url, json=items, headers=auth).json() == {"recorded": 1}
            assert httpx.post(url, json=items, headers={"connection": "close"}).status_code == 401
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
        for _ in range(4):
            answer = _raw_request(
                server.port, [b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n"]
            )
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        server.stop()
    assert sorted(f.request_id for f in feedback(stack.store, "cancer")) == sorted(ids)


def test_exposed_addresses_are_warned_about(stack: Stack) -> None:
    """Issue 12 item 12: binding a non-loopback address without a token, or allowing any
    Host, prints a warning line (checked here before the server would start)."""

    def warnings(*args: str, **env: str) -> str:
        result = subprocess.run(
            [str(LOOPML), "serve", "nope", "--port", str(free_port()), *args],
            env={**stack.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode != 0  # no endpoint 'nope'
        return result.stderr

    exposed = warnings("--host", "0.0.0.0")
    assert "Warning: listening on 0.0.0.0 without a token" in exposed
    assert "--allowed-hosts" in exposed
    quiet = warnings("--host", "0.0.0.0", "--allowed-hosts", "api.internal", LOOPML_SERVE_TOKEN="t")
    assert "Warning" not in quiet
    assert "Note" not in quiet
    anything = warnings("--allowed-hosts", "*")
    assert "answers any Host header" in anything
    assert "Warning" not in warnings()  # loopback, no token: nothing to say
