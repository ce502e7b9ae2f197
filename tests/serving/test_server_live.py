"""The server under concurrency: micro-batching, overload, hot swap, /metrics, CSV, OIP.

Every test runs a real uvicorn server on 127.0.0.1 and talks to it over HTTP from
several client threads. Slow models are plain Python classes stored as pyfunc
versions (loaded with ``trust=True``), so a test controls how long a call takes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI

from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient
from loopml.serving._batching import INLINE_SECONDS, BatchPolicy
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._server import ServerOptions, create_app
from loopml.store import Store, open_store
from server_support import map_with_clients, start_in_thread


class Doubler:
    """Answers ``2 * x``, taking ``seconds`` per call (whatever the rows)."""

    def __init__(self, seconds: float = 0.0, offset: float = 0.0) -> None:
        self.seconds = seconds
        self.offset = offset

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(self.seconds)
        return np.asarray(frame["x"], dtype=float) * 2 + self.offset


class BreaksWhenFlagged:
    """Answers like :class:`Doubler` until the file ``flag`` exists."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if Path(self.flag).exists():
            raise RuntimeError("broken on purpose")
        return np.asarray(frame["x"], dtype=float) * 2


class FailsOnNegatives:
    """Answers like :class:`Doubler`, but fails with a bug of its own on a negative x."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.asarray(frame["x"], dtype=float)
        if (x < 0).any():
            raise RuntimeError("secret model internals")
        return x * 2


class TwoOutputs:
    """Answers two columns per row (like predict_proba)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.asarray(frame["x"], dtype=float)
        return np.column_stack([x, -x])


CALLS: list[tuple[str, int, str]] = []
"""(tag, rows, thread name) of every :class:`NotesItsThread` call in this process."""
POOLED = "loopml-predict"
"""The name prefix of the server's worker threads (model calls off the event loop)."""


class NotesItsThread(Doubler):
    """A :class:`Doubler` that notes which thread each of its calls ran in."""

    def __init__(self, tag: str, seconds: float = 0.0) -> None:
        super().__init__(seconds)
        self.tag = tag

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        CALLS.append((self.tag, len(frame), threading.current_thread().name))
        return super().predict(frame)


EXAMPLE = pd.DataFrame({"x": [0.5, 1.5, 2.5]})


@dataclass
class World:
    """A store, an artifact store and a registry of one project ``p``."""

    tmp: Path
    store: Store
    artifacts: ArtifactStore
    registry: RegistryClient
    deployments: DeploymentClient

    def register(self, model: Any, name: str = "m") -> str:
        return self.registry.register(model, name, project="p", input_example=EXAMPLE).ref

    def app(self, *endpoints: str, **options: Any) -> FastAPI:
        batch = options.pop("batch", BatchPolicy())
        return create_app(
            self.store,
            self.artifacts,
            list(endpoints) or None,
            "p",
            self.tmp / f"wal-{len(list(self.tmp.glob('wal-*')))}",
            ServerOptions(trust=True, batch=batch, **options),
        )

    def serve(self, *endpoints: str, **options: Any) -> tuple[str, Callable[[], None]]:
        return start_in_thread(self.app(*endpoints, **options))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}")
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    registry = RegistryClient(store, artifacts)
    yield World(tmp_path, store, artifacts, registry, DeploymentClient(store, registry))
    store.close()


def _predict(client: httpx.Client, url: str, x: Any, endpoint: str = "e") -> httpx.Response:
    return client.post(f"{url}/v1/endpoints/{endpoint}/predict", json={"records": [{"x": x}]})


def _hammer(
    url: str, xs: list[Any], threads: int = 16, endpoint: str = "e"
) -> list[tuple[Any, httpx.Response]]:
    """Send one request per value of ``xs`` from ``threads`` concurrent clients."""

    def send(client: httpx.Client, x: Any) -> tuple[Any, httpx.Response]:
        return x, _predict(client, url, x, endpoint)

    return map_with_clients(send, xs, threads)


def _assert_doubled(results: list[tuple[Any, httpx.Response]]) -> None:
    """Every request was answered, with the Doubler's prediction for its own value."""
    for x, response in results:
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [2 * x]


def _metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(world: World) -> None:
    world.register(Doubler(seconds=0.02))
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve("e")
    try:
        xs = [float(i) for i in range(160)]
        results = _hammer(url, xs)
        calls = _metric(url, "loopml_batch_size_requests_count", endpoint="e")
        rows = _metric(url, "loopml_batch_size_rows_sum", endpoint="e")
        timed_calls = _metric(url, "loopml_model_call_seconds_count", endpoint="e")
        call_seconds = _metric(url, "loopml_model_call_seconds_sum", endpoint="e")
        request_seconds = _metric(url, "loopml_request_latency_seconds_sum", endpoint="e")
    finally:
        stop()
    _assert_doubled(results)
    assert rows == len(xs)
    assert timed_calls == calls
    assert 0.02 * calls <= call_seconds < request_seconds  # requests also wait in the queue
    # 16 clients and a 20 ms model: calls gather what queued meanwhile.
    assert calls < len(xs) / 2
    logged = read_predictions(world.store, world.artifacts, "e")
    assert len(logged) == len(xs)
    assert logged["request_id"].is_unique


def test_a_burst_to_a_model_fast_enough_to_answer_inline_still_batches(world: World) -> None:
    # 5 ms a call: lone requests to it are predicted on the event loop; a burst must not be.
    world.register(Doubler(seconds=0.005))
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve("e")
    try:
        with httpx.Client(timeout=10) as client:
            for x in range(3):  # one at a time: the route learns it is fast
                assert _predict(client, url, float(x)).status_code == 200
        xs = [float(i) for i in range(160)]
        results = _hammer(url, xs)
        calls = _metric(url, "loopml_batch_size_requests_count", endpoint="e")
    finally:
        stop()
    _assert_doubled(results)
    assert calls - 3 < len(xs) / 2


def test_a_bad_request_in_a_batch_fails_alone(world: World) -> None:
    world.register(Doubler(seconds=0.02))
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve("e")
    try:
        xs: list[Any] = [float(i) for i in range(60)]
        xs[7] = "seven"
        xs[31] = None
        results = _hammer(url, xs)
    finally:
        stop()
    for x, response in results:
        if isinstance(x, float):
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == [2 * x]
        else:
            assert response.status_code == 422, response.text
            assert "'x'" in response.json()["error"]["message"]
    assert len(read_predictions(world.store, world.artifacts, "e")) == 58


def test_max_batch_size_and_wait_come_from_the_deployment(world: World) -> None:
    world.register(Doubler())
    world.deployments.set(
        "e", ["m/1:100"], project="p", settings={"max_batch_size": 4, "max_wait_ms": 50}
    )
    url, stop = world.serve("e")
    try:
        results = _hammer(url, [float(i) for i in range(40)], threads=8)
        largest = _metric(url, "loopml_batch_size_rows_bucket", endpoint="e", le="4.0")
        calls = _metric(url, "loopml_batch_size_rows_count", endpoint="e")
    finally:
        stop()
    assert all(r.status_code == 200 for _, r in results)
    assert largest == calls  # every call had at most 4 rows
    assert calls < 40  # and the 50 ms wait gathered several


def test_a_saturated_server_answers_503_with_retry_after(world: World) -> None:
    world.register(Doubler(seconds=0.2))
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve("e", batch=BatchPolicy(max_batch_size=1, max_queue=2))
    try:
        results = _hammer(url, [float(i) for i in range(24)], threads=24)
        refused = [r for _, r in results if r.status_code == 503]
        answered = [(x, r) for x, r in results if r.status_code == 200]
        overloaded = _metric(url, "loopml_request_errors_total", endpoint="e", code="overloaded")
        with httpx.Client(timeout=30) as client:
            after = _predict(client, url, 4.0)
    finally:
        stop()
    assert {r.status_code for _, r in results} <= {200, 503}
    assert refused and answered
    for response in refused:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "overloaded"
    assert all(r.json()["predictions"] == [2 * x] for x, r in answered)
    assert overloaded == len(refused)
    assert after.status_code == 200


def test_promoting_a_new_champion_under_load_fails_no_request(world: World) -> None:
    world.register(Doubler(seconds=0.002))
    world.registry.promote("m/1", project="p", alias="champion")
    world.deployments.set("e", ["m@champion:100"], project="p")
    url, stop = world.serve("e", poll_interval=0.1)
    answers: list[tuple[float, httpx.Response]] = []
    done = threading.Event()

    def client_loop(seed: int) -> None:
        with httpx.Client(timeout=30) as client:
            x = float(seed)
            while not done.is_set():
                answers.append((x, _predict(client, url, x)))
                x += 8

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        world.register(Doubler(seconds=0.002, offset=1000))
        world.registry.promote("m/2", project="p", alias="champion")
        deadline = time.monotonic() + 30
        while not any(r.json().get("model_version") == "m/2" for _, r in answers[-50:]):
            assert time.monotonic() < deadline, "the server never switched to m/2"
            time.sleep(0.05)
        time.sleep(0.5)
        done.set()
        for thread in threads:
            thread.join()
        swaps = _metric(url, "loopml_model_swaps_total", endpoint="e")
    finally:
        done.set()
        stop()
    assert answers
    assert all(r.status_code == 200 for _, r in answers)
    versions = [r.json()["model_version"] for _, r in answers]
    assert set(versions) == {"m/1", "m/2"}
    # Every answer comes from the version it names, and once m/2 answers, m/1 stops.
    for x, response in answers:
        offset = 1000 if response.json()["model_version"] == "m/2" else 0
        assert response.json()["predictions"] == [2 * x + offset]
    first_new = versions.index("m/2")
    assert versions[first_new:].count("m/1") <= len(threads)  # at most those in flight
    assert swaps == 1


def test_a_new_revision_with_a_canary_is_followed_and_rolled_back(world: World) -> None:
    world.register(Doubler())
    world.register(Doubler(offset=1000))
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve(poll_interval=0.1)  # every endpoint of the project
    try:
        world.deployments.set("e", ["m/1:50", "m/2:50:canary"], project="p")
        world.deployments.set("late", ["m/2:100"], project="p")  # deployed after start
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=30) as client:
            while seen != {"primary:m/1", "canary:m/2"}:
                assert time.monotonic() < deadline, f"only saw {seen}"
                seen.add(_predict(client, url, 1.0).json()["route"])
            late = _predict(client, url, 1.0, endpoint="late")
            world.deployments.rollback("e", project="p", to=1)
            deadline = time.monotonic() + 30
            while True:
                routes = {_predict(client, url, 1.0).json()["route"] for _ in range(20)}
                if routes == {"primary:m/1"}:
                    break
                assert time.monotonic() < deadline, f"still serving {routes}"
            meta = client.get(f"{url}/v2/models/e").json()
    finally:
        stop()
    assert late.status_code == 200
    assert late.json()["model_version"] == "m/2"
    assert meta["versions"] == ["m/1"]


def test_a_version_that_fails_warm_up_is_not_switched_to(world: World) -> None:
    flag = world.tmp / "broken"
    world.register(Doubler())
    world.registry.promote("m/1", project="p", alias="champion")
    world.register(BreaksWhenFlagged(str(flag)))
    world.deployments.set("e", ["m@champion:100"], project="p")
    url, stop = world.serve("e", poll_interval=0.1)
    try:
        flag.touch()
        world.registry.promote("m/2", project="p", alias="champion")
        deadline = time.monotonic() + 30
        while _metric(url, "loopml_model_swap_failures_total", endpoint="e") < 1:
            assert time.monotonic() < deadline, "the failed swap was not counted"
            time.sleep(0.05)
        with httpx.Client(timeout=30) as client:
            still = _predict(client, url, 3.0)
    finally:
        stop()
    assert still.status_code == 200
    assert still.json()["model_version"] == "m/1"
    assert still.json()["predictions"] == [6.0]


def test_metrics_are_per_endpoint_route_and_version(world: World) -> None:
    world.register(Doubler())
    world.register(Doubler(offset=1))
    world.deployments.set("e", ["m/1:50", "m/2:50:canary"], project="p")
    url, stop = world.serve("e")
    try:
        _hammer(url, [float(i) for i in range(60)], threads=4)
        with httpx.Client(timeout=30) as client:
            client.post(f"{url}/v1/endpoints/e/predict", json={"records": [{"x": "one"}]})
            client.post(f"{url}/v1/endpoints/nope/predict", json={"records": [{"x": 1}]})
        text = httpx.get(f"{url}/metrics")
        primary = _metric(
            url, "loopml_requests_total", route="primary:m/1", model_version="m/1", status="200"
        )
        canary = _metric(
            url, "loopml_requests_total", route="canary:m/2", model_version="m/2", status="200"
        )
        timed = _metric(url, "loopml_request_latency_seconds_count", endpoint="e")
        invalid = _metric(url, "loopml_request_errors_total", endpoint="e", code="invalid_input")
        unknown = _metric(url, "loopml_request_errors_total", endpoint="-", code="not_found")
    finally:
        stop()
    assert text.headers["content-type"].startswith("text/plain")
    assert primary + canary == 60
    assert primary > 0 and canary > 0
    assert timed == 60
    assert invalid == 1
    assert unknown == 1


def test_csv_bodies(world: World) -> None:
    world.register(Doubler())
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve("e")
    try:
        with httpx.Client(timeout=30) as client:
            ok = client.post(
                f"{url}/v1/endpoints/e/predict",
                content=b"x\n1.5\n2\n",
                headers={"content-type": "text/csv; charset=utf-8"},
            )
            unknown = client.post(  # a column the model does not take (issue 12 item 11)
                f"{url}/v1/endpoints/e/predict",
                content=b"x,note\n1.5,a\n2,b\n",
                headers={"content-type": "text/csv"},
            )
            bad_type = client.post(
                f"{url}/v1/endpoints/e/predict",
                content=b"x\nhello\n",
                headers={"content-type": "text/csv"},
            )
            empty = client.post(
                f"{url}/v1/endpoints/e/predict",
                content=b"x\n",
                headers={"content-type": "text/csv"},
            )
    finally:
        stop()
    assert ok.status_code == 200, ok.text
    assert ok.json()["predictions"] == [3.0, 4.0]
    assert unknown.status_code == 422
    assert "unknown keys 'note'" in unknown.json()["error"]["message"]
    assert bad_type.status_code == 422
    assert "'x'" in bad_type.json()["error"]["message"]
    assert empty.status_code == 422
    assert empty.json()["error"]["field"] == "body"


def test_open_inference_protocol_tensors(world: World) -> None:
    world.register(TwoOutputs(), name="two")
    world.deployments.set("two", ["two/1:100"], project="p")
    url, stop = world.serve("two")
    try:
        with httpx.Client(timeout=30) as client:
            server = client.get(f"{url}/v2").json()
            openapi = client.get(f"{url}/openapi.json").json()
            ready = client.get(f"{url}/v2/models/two/ready")
            not_served = client.get(f"{url}/v2/models/nope/ready")
            infer = client.post(
                f"{url}/v2/models/two/infer",
                json={
                    "inputs": [
                        {"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [[1.0], [2.0]]},
                    ]
                },
            )
            extra = client.post(  # an input the model does not take (issue 12 item 11)
                f"{url}/v2/models/two/infer",
                json={
                    "inputs": [
                        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]},
                        {"name": "extra", "shape": [1], "datatype": "INT64", "data": [7]},
                    ]
                },
            )
            ragged = client.post(
                f"{url}/v2/models/two/infer",
                json={"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": []}]},
            )
    finally:
        stop()
    assert server["name"] == "loopml" and "version" in server
    assert {"/v1/endpoints/{name}/predict", "/v2/models/{name}/infer", "/metrics"} <= set(
        openapi["paths"]
    )
    assert ready.json() == {"name": "two", "ready": True}
    assert not_served.status_code == 404
    assert infer.status_code == 200, infer.text
    output = infer.json()["outputs"][0]
    assert output["shape"] == [2, 2]
    assert output["datatype"] == "FP64"
    assert output["data"] == [1.0, -1.0, 2.0, -2.0]
    assert ragged.status_code == 422
    assert ragged.json()["error"]["field"] == "inputs[0].shape"
    assert extra.status_code == 422
    assert "unknown keys 'extra'" in extra.json()["error"]["message"]


def test_lone_requests_to_a_fast_model_skip_the_thread_hop_but_never_shadows_or_slow_ones(
    world: World,
) -> None:
    """Whether a lone request runs on the event loop follows the route's measured call time,
    never the machine's speed: the test reads that measure before each request and checks
    where the call ran, so a busy machine (slow calls) changes which path is taken, not
    whether the decision was right. Shadows and slow models never run on the loop."""
    world.register(NotesItsThread("fast"))
    world.register(NotesItsThread("shadow"))
    world.register(NotesItsThread("slow", seconds=2 * INLINE_SECONDS), name="s")
    world.deployments.set("fast", ["m/1:100", "m/2:shadow"], project="p")
    world.deployments.set("slow", ["s/1:100"], project="p")
    app = world.app("fast", "slow")
    url, stop = start_in_thread(app)
    fast = app.state.live.get("fast").batchers["m/1"]
    CALLS.clear()
    fast_calls: list[tuple[float | None, str]] = []  # (measure before the call, its thread)
    inlined = 0
    deadline = time.monotonic() + 120  # generous: the machine may be busy
    try:
        with httpx.Client(timeout=30) as client:
            # One at a time, so each request is alone in its batch; until the fast route
            # has been called on the loop a few times (at once on a quiet machine).
            while len(fast_calls) < 6 or inlined < 3:
                assert time.monotonic() < deadline, fast_calls
                for endpoint in ("fast", "slow"):
                    before = fast.lone_seconds
                    response = _predict(client, url, float(len(fast_calls)), endpoint)
                    assert response.status_code == 200, response.text
                    if endpoint == "fast":
                        thread = next(t for g, _, t in reversed(CALLS) if g == "fast")
                        fast_calls.append((before, thread))
                        inlined += not thread.startswith(POOLED)
    finally:
        stop()
    # The first call of a route runs in a worker thread: it tells how fast the model is.
    assert fast_calls[0][0] is None and fast_calls[0][1].startswith(POOLED)
    for before, thread in fast_calls[1:]:
        assert before is not None
        assert thread.startswith(POOLED) == (before > INLINE_SECONDS), fast_calls
    shadows = [t for g, rows, t in CALLS if g == "shadow" and rows == 1]
    assert len(shadows) == len(fast_calls)
    assert all(t.startswith(POOLED) for t in shadows), shadows
    slow = [t for g, rows, t in CALLS if g == "slow" and rows == 1]
    assert len(slow) == len(fast_calls)
    assert all(t.startswith(POOLED) for t in slow), slow


def test_a_model_that_breaks_is_a_json_500_counted_and_the_next_request_is_fine(
    world: World,
) -> None:
    world.register(FailsOnNegatives())
    world.deployments.set("e", ["m/1:100"], project="p")
    url, stop = world.serve("e")
    try:
        with httpx.Client(timeout=10) as client:
            broken = _predict(client, url, -1.0)
            fine = _predict(client, url, 2.0)
        failures = _metric(url, "loopml_request_errors_total", endpoint="e", code="internal_error")
    finally:
        stop()
    assert broken.status_code == 500
    assert broken.headers["content-type"] == "application/json"
    assert broken.json()["error"]["code"] == "internal_error"
    assert "secret" not in broken.text and "Traceback" not in broken.text
    assert fine.status_code == 200 and fine.json()["predictions"] == [4.0]
    assert failures == 1
