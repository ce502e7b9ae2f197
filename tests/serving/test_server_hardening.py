"""Issue 12, items 11-14: what the inference server refuses, run for real (uvicorn, httpx).

A request is refused before it costs much: unknown columns and oversized shapes
before any column is built, foreign Host names, missing tokens and non-JSON bodies
before any route runs, feedback for request ids the endpoint never answered before
anything is stored, and deep nesting with a 422 instead of a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient, feedback, feedback_history
from loopml.serving._feedback import MAX_LABEL_BYTES, RequestIds
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._server import INLINE_PARSE_BYTES, ServerOptions, create_app
from loopml.store import Store, open_store
from server_support import start_in_thread

PREDICT = "/v1/endpoints/cancer/predict"
FEEDBACK = "/v1/endpoints/cancer/feedback"
TOKEN = "s3cret-token"


@dataclass
class Served:
    url: str
    store: Store
    artifacts: ArtifactStore
    records: list[dict[str, float]]
    app: Any
    stop: Any


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Store, ArtifactStore]]:
    tmp = tmp_path_factory.mktemp("hardening")
    store = open_store(f"sqlite:///{tmp / 'loopml.db'}")
    artifacts = ArtifactStore.from_uri(str(tmp / "artifacts"))
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, frame["target"])
    registry = RegistryClient(store, artifacts)
    registry.register(model, "cancer", project="p", input_example=features.head(5))
    DeploymentClient(store, registry).set("cancer", ["cancer/1:100"], project="p")
    yield tmp, store, artifacts
    store.close()


def _serve(stores: tuple[Path, Store, ArtifactStore], name: str, **options: Any) -> Served:
    tmp, store, artifacts = stores
    app = create_app(store, artifacts, None, "p", tmp / name, ServerOptions(**options))
    url, stop = start_in_thread(app)
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    records = [{str(k): float(v) for k, v in r.items()} for r in frame.head(4).to_dict("records")]
    return Served(url, store, artifacts, records, app, stop)


@pytest.fixture(scope="module")
def served(stores: tuple[Path, Store, ArtifactStore]) -> Iterator[Served]:
    server = _serve(stores, "wal", max_body_bytes=4_000_000)
    try:
        yield server
    finally:
        server.stop()


def _post(url: str, body: Any, path: str = PREDICT, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30, **kwargs)


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# -- item 11: amplification ------------------------------------------------------------------


def test_records_with_keys_the_signature_does_not_name_are_refused(served: Served) -> None:
    """Issue 12 item 11: rows that each bring new keys (rows x keys cells once built) are
    refused with 422 naming the first unknown keys, before any column is built."""
    rows = [{**served.records[0], f"k{i}": 1} for i in range(2_000)]
    error = _error(_post(served.url, {"records": rows}), 422)
    assert "unknown keys 'k0', 'k1', 'k2', 'k3', 'k4' and 1995 more" in error["message"]
    assert error["field"] == "records"
    columns = {**{k: [v] for k, v in served.records[0].items()}, "extra": [1]}
    assert "'extra'" in _error(_post(served.url, {"columns": columns}), 422)["message"]
    split = {"columns": ["mean radius", "nope"], "data": [[1.0, 2.0]]}
    error = _error(_post(served.url, {"dataframe_split": split}), 422)  # the float fast path
    assert "'nope'" in error["message"]
    assert _post(served.url, {"records": served.records}).status_code == 200


def test_wide_csv_is_refused_from_its_header(served: Served) -> None:
    """Issue 12 item 11: a CSV wider than the column cap, or with columns the endpoint
    does not take, is refused from its header row, before the rows are parsed."""
    header = ",".join(f"c{i}" for i in range(5_000))
    wide = (header + "\n" + ",".join("1" for _ in range(5_000)) + "\n").encode()
    response = httpx.post(
        f"{served.url}{PREDICT}", content=wide, headers={"content-type": "text/csv"}, timeout=30
    )
    assert "at most 1024 columns" in _error(response, 422)["message"]
    frame = pd.DataFrame(served.records).assign(extra=1)
    response = httpx.post(
        f"{served.url}{PREDICT}",
        content=frame.to_csv(index=False).encode(),
        headers={"content-type": "text/csv"},
        timeout=30,
    )
    assert "unknown keys 'extra'" in _error(response, 422)["message"]
    ok = httpx.post(
        f"{served.url}{PREDICT}",
        content=frame.drop(columns="extra").to_csv(index=False).encode(),
        headers={"content-type": "text/csv"},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text


def test_large_bodies_are_parsed_off_the_event_loop(served: Served) -> None:
    """Issue 12 item 11: a body over INLINE_PARSE_BYTES is parsed in a worker thread (the
    event loop keeps answering), a small one inline."""
    server = served.app._server

    async def threads() -> tuple[int, int, int]:
        small = await server.off_loop(INLINE_PARSE_BYTES, threading.get_ident)
        large = await server.off_loop(INLINE_PARSE_BYTES + 1, threading.get_ident)
        return threading.get_ident(), small, large

    loop_thread, small, large = asyncio.run(threads())
    assert small == loop_thread
    assert large != loop_thread
    rows = served.records * 400  # ~ 300 KB of records: parsed in a thread, same answer
    assert len(json.dumps({"records": rows})) > INLINE_PARSE_BYTES
    response = _post(served.url, {"records": rows})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(rows)


# -- item 12: who may talk to the server ------------------------------------------------------

ROUTES = [
    ("GET", "/metrics"),
    ("GET", "/v2/models/cancer"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("POST", PREDICT),
    ("POST", FEEDBACK),
    ("POST", "/v2/models/cancer/infer"),
]


def test_a_host_not_allowed_is_refused_on_every_route(served: Served) -> None:
    """Issue 12 item 12: DNS rebinding sends the attacker's name as Host: 421 on every
    route (predict included), before anything runs; loopback names pass, any port."""
    before = read_predictions(served.store, served.artifacts, "cancer", wal_folders=[_wal(served)])
    for method, path in ROUTES:
        response = httpx.request(
            method,
            f"{served.url}{path}",
            json={"records": served.records},
            headers={"host": "rebind.example:8080"},
        )
        assert "rebind.example" in _error(response, 421)["message"], path
    after = read_predictions(served.store, served.artifacts, "cancer", wal_folders=[_wal(served)])
    assert len(after) == len(before)
    for host in ("localhost", "localhost:1234", "127.0.0.1:9", "[::1]:80", "LOCALHOST"):
        assert httpx.get(f"{served.url}/metrics", headers={"host": host}).status_code == 200
    probe = httpx.get(f"{served.url}/v2/health/live", headers={"host": "10.0.0.7:8080"})
    assert probe.status_code == 200


def test_bodies_that_are_not_json_or_csv_are_refused(served: Served) -> None:
    """Issue 12 item 12: a web page may post text/plain or a form anywhere without a
    preflight; predict, infer and feedback take only JSON or CSV (415 otherwise)."""
    body = json.dumps({"records": served.records}).encode()
    for path in (PREDICT, FEEDBACK, "/v2/models/cancer/infer"):
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            response = httpx.post(
                f"{served.url}{path}", content=body, headers={"content-type": kind}
            )
            assert kind in _error(response, 415)["message"]
        response = httpx.post(f"{served.url}{path}", content=body)
        assert _error(response, 415)["code"] == "unsupported_media_type"
    ok = httpx.post(
        f"{served.url}{PREDICT}",
        content=body,
        headers={"content-type": "application/vnd.api+json; charset=utf-8"},
    )
    assert ok.status_code == 200, ok.text


def test_a_token_is_required_when_the_server_has_one(
    stores: tuple[Path, Store, ArtifactStore],
) -> None:
    """Issue 12 item 12: with a token, every route but the health probes needs
    'Authorization: Bearer <token>' (401 otherwise); extra Host names can be allowed."""
    server = _serve(stores, "wal-token", token=TOKEN, allowed_hosts=("localhost", "api.internal"))
    try:
        for method, path in ROUTES:
            for auth in (None, "Bearer wrong", f"Basic {TOKEN}", TOKEN):
                headers = {"host": "localhost"}
                if auth is not None:
                    headers["authorization"] = auth
                response = httpx.request(
                    method, f"{server.url}{path}", json={"records": server.records}, headers=headers
                )
                assert _error(response, 401)["code"] == "unauthorized", (path, auth)
                assert response.headers["www-authenticate"] == "Bearer"
        good = {"authorization": f"Bearer {TOKEN}", "host": "api.internal:443"}
        answer = _post(server.url, {"records": server.records}, headers=good)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{server.url}/metrics", headers=good).status_code == 200
        assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        # 127.0.0.1 is not in this allow-list: the token alone does not let it through.
        assert (
            httpx.get(
                f"{server.url}/metrics", headers={"authorization": good["authorization"]}
            ).status_code
            == 421
        )
    finally:
        server.stop()


# -- item 13: feedback ---------------------------------------------------------------------------


def test_feedback_is_taken_only_for_request_ids_the_endpoint_answered(served: Served) -> None:
    """Issue 12 item 13: labels for ids this endpoint never answered (made up, altered, or
    answered by another endpoint) are refused and nothing of the batch is stored."""
    answered = _post(served.url, {"records": served.records[:1]}).json()["request_id"]
    other = RequestIds.of_store(served.store).issue("fraud")
    for bogus in ("never-answered", answered[:-1] + ("0" if answered[-1] != "0" else "1"), other):
        items = [{"request_id": answered, "label": 1}, {"request_id": bogus, "label": 0}]
        error = _error(_post(served.url, {"items": items}, FEEDBACK), 422)
        assert error["code"] == "unknown_request_id"
        assert error["request_ids"] == [bogus]
    assert answered not in {f.request_id for f in feedback(served.store, "cancer")}
    ok = _post(served.url, {"items": [{"request_id": answered, "label": 1}]}, FEEDBACK)
    assert ok.json() == {"recorded": 1}
    corrected = _post(served.url, {"items": [{"request_id": answered, "label": 0}]}, FEEDBACK)
    assert corrected.json() == {"recorded": 1}
    assert [c.label for c in feedback_history(served.store, "cancer", answered)] == [1, 0]


def test_feedback_labels_are_bounded(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 12 items 13 and 14: a label over MAX_LABEL_BYTES, a deeply nested one, or too
    many items are a 422 naming the limit; no traceback is logged."""
    answered = _post(served.url, {"records": served.records[:1]}).json()["request_id"]
    big = {"items": [{"request_id": answered, "label": "x" * MAX_LABEL_BYTES}]}
    assert f"{MAX_LABEL_BYTES} bytes" in _error(_post(served.url, big, FEEDBACK), 422)["message"]
    deep = b'{"items": [{"request_id": "%s", "label": ' % answered.encode()
    deep += b"[" * 5_000 + b"]" * 5_000 + b"}]}"
    with caplog.at_level(logging.WARNING):
        response = httpx.post(
            f"{served.url}{FEEDBACK}", content=deep, headers={"content-type": "application/json"}
        )
    assert "deep" in _error(response, 422)["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    many = {"items": [{"request_id": answered, "label": 1}] * 10_001}
    assert "at most 10000" in _error(_post(served.url, many, FEEDBACK), 422)["message"]
    assert answered not in {f.request_id for f in feedback(served.store, "cancer")}


# -- item 14: deep nesting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"dataframe_split": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",  # float-only endpoint
        b"[" * 100_000 + b"]" * 100_000,
        b'{"records": [{"mean radius": ' + b"[" * 200 + b"]" * 200 + b"}]}",
        b'{"inputs": ' + b"{" * 3_000 + b"}" * 3_000 + b"}",
    ],
    ids=["float-split", "bare", "records-cell", "oip"],
)
def test_deeply_nested_json_is_a_422_not_a_500(
    served: Served, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12 item 14: deep nesting on the float-only fast path (simdjson's depth error)
    and elsewhere is answered 422 with a clear message, and no traceback is logged."""
    path = "/v2/models/cancer/infer" if body.startswith(b'{"inputs"') else PREDICT
    with caplog.at_level(logging.WARNING):
        response = httpx.post(
            f"{served.url}{path}", content=body, headers={"content-type": "application/json"}
        )
    error = _error(response, 422)
    assert "nested at most 32" in error["message"] or "JSON" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _wal(served: Served) -> Path:
    return Path(served.app.state.prediction_log.folder)
