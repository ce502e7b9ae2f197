"""The inference server, run for real: uvicorn on a free local port, spoken to with httpx."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from process_support import serving
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient, feedback, feedback_history
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._server import ServerOptions, create_app
from loopml.store import Store, open_store
from server_support import start_in_thread


@dataclass
class Served:
    """A running server and what it serves."""

    url: str
    store: Store
    artifacts: ArtifactStore
    frame: pd.DataFrame
    expected: list[int]
    stop: Any


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame


@pytest.fixture
def served(tmp_path: Path, data: pd.DataFrame) -> Iterator[Served]:
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}")
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    registry = RegistryClient(store, artifacts)
    features = data.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, data["target"])
    registry.register(model, "cancer", project="p", input_example=features.head(5))
    # A shadow that answers the opposite: its answers must never come back.
    flipped = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        features, 1 - data["target"]
    )
    registry.register(flipped, "cancer", project="p", input_example=features.head(5))
    DeploymentClient(store, registry).set(
        "cancer", ["cancer/1:100", "cancer/2:shadow"], project="p"
    )
    sample = features.head(8)
    app = create_app(
        store, artifacts, None, "p", tmp_path / "wal", ServerOptions(max_body_bytes=200_000)
    )
    url, stop = start_in_thread(app)
    result = Served(url, store, artifacts, sample, model.predict(sample).tolist(), stop)
    try:
        yield result
    finally:
        stop()
        store.close()


def _predict(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/endpoints/cancer/predict", json=body, timeout=10, **kwargs)


def test_every_payload_shape_predicts_like_the_model(served: Served) -> None:
    frame = served.frame
    bodies = [
        {"records": frame.to_dict(orient="records")},
        {"columns": frame.to_dict(orient="list")},
        {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))},
    ]
    ids = set()
    for body in bodies:
        response = _predict(served.url, body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["predictions"] == served.expected
        assert answer["model_version"] == "cancer/1"
        assert answer["route"] == "primary:cancer/1"
        assert response.headers["X-Request-Id"] == answer["request_id"]
        ids.add(answer["request_id"])
    assert len(ids) == 3

    served.stop()  # closes the prediction log: every record becomes a segment
    logged = read_predictions(served.store, served.artifacts, "cancer")
    answered = logged[logged["route"] == "primary:cancer/1"]
    assert set(answered["request_id"]) == ids
    assert all(json.loads(o) == served.expected for o in answered["output"])
    shadows = logged[logged["route"] == "shadow:cancer/2"]
    assert len(shadows) == 3
    assert all(rid.split(":")[0] in ids for rid in shadows["request_id"])
    assert all(model == "cancer/2" for model in shadows["model_version"])
    flipped = [1 - p for p in served.expected]
    assert all(json.loads(o) == flipped for o in shadows["output"])


def test_errors_are_json_and_name_the_problem(served: Served) -> None:
    records = served.frame.to_dict(orient="records")

    missing = httpx.post(f"{served.url}/v1/endpoints/nope/predict", json={"records": records})
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]["message"]

    no_column = [{k: v for k, v in r.items() if k != "mean radius"} for r in records]
    response = _predict(served.url, {"records": no_column})
    assert response.status_code == 422
    assert "mean radius" in response.json()["error"]["message"]

    response = _predict(served.url, {"rows": records})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"

    split = json.loads(served.frame.to_json(orient="split", index=False))
    split["data"][1][0] = True  # a boolean is not a float, even among floats
    response = _predict(served.url, {"dataframe_split": split})
    assert response.status_code == 422
    assert "'mean radius'" in response.json()["error"]["message"]
    split["data"][1][0] = None  # the signature allows no missing value here
    response = _predict(served.url, {"dataframe_split": split})
    assert response.status_code == 422
    assert "'mean radius'" in response.json()["error"]["message"]

    response = _predict(served.url, {"columns": {"a": [1, 2], "b": [1]}})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "columns"

    response = httpx.post(
        f"{served.url}/v1/endpoints/cancer/predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["error"]["message"]

    big = {"records": records * 200}
    assert len(json.dumps(big)) > 200_000
    assert _predict(served.url, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the read size is what counts
        body = json.dumps(big).encode()
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    streamed = httpx.post(
        f"{served.url}/v1/endpoints/cancer/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413


def test_feedback_joins_predictions_and_a_correction_counts(served: Served) -> None:
    answer = _predict(served.url, {"records": served.frame.head(1).to_dict(orient="records")})
    request_id = answer.json()["request_id"]
    url = f"{served.url}/v1/endpoints/cancer/feedback"

    ok = httpx.post(url, json={"items": [{"request_id": request_id, "label": 0}]})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"recorded": 1}
    again = httpx.post(url, json={"items": [{"request_id": request_id, "label": 0}]})
    assert again.json() == {"recorded": 0}
    corrected = httpx.post(url, json={"items": [{"request_id": request_id, "label": 1}]})
    assert corrected.json() == {"recorded": 1}
    assert httpx.post(url, json={"items": []}).status_code == 422

    served.stop()
    joined = read_predictions(served.store, served.artifacts, "cancer", with_feedback=True)
    row = joined[joined["request_id"] == request_id].iloc[0]
    assert row["label"] == 1
    assert [f.request_id for f in feedback(served.store, "cancer")] == [request_id]
    history = feedback_history(served.store, "cancer", request_id)
    assert [(c.label, c.source) for c in history] == [(0, "http 127.0.0.1"), (1, "http 127.0.0.1")]


def test_open_inference_protocol_v2(served: Served) -> None:
    assert httpx.get(f"{served.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{served.url}/v2/health/ready").status_code == 200

    meta = httpx.get(f"{served.url}/v2/models/cancer").json()
    assert meta["name"] == "cancer"
    assert meta["platform"] == "loopml"
    assert meta["versions"] == ["cancer/1"]
    assert {"name": "mean radius", "datatype": "FP64", "shape": [-1]} in meta["inputs"]
    assert httpx.get(f"{served.url}/v2/models/nope").status_code == 404

    frame = served.frame
    inputs = [
        {"name": name, "shape": [len(frame)], "datatype": "FP64", "data": frame[name].tolist()}
        for name in frame.columns
    ]
    response = httpx.post(
        f"{served.url}/v2/models/cancer/infer", json={"id": "abc", "inputs": inputs}, timeout=10
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "cancer"
    assert body["model_version"] == "cancer/1"
    assert body["id"] == "abc"
    assert body["outputs"] == [
        {"name": "predict", "shape": [len(frame)], "datatype": "INT64", "data": served.expected}
    ]

    bad = dict(inputs[0], shape=[len(frame) + 1])
    response = httpx.post(f"{served.url}/v2/models/cancer/infer", json={"inputs": [bad]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "inputs[0].data"


def test_unknown_endpoint_fails_before_serving(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}")
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    with pytest.raises(DeploymentNotFound):
        create_app(store, artifacts, ["nope"], "p", tmp_path / "wal")
    store.close()


def test_sticky_key_keeps_a_caller_on_one_route(served: Served, tmp_path: Path) -> None:
    registry = RegistryClient(served.store, served.artifacts)
    DeploymentClient(served.store, registry).set(
        "split", ["cancer/1:50", "cancer/2:50"], project="p", settings={"sticky_key": "id"}
    )
    app = create_app(served.store, served.artifacts, ["split"], "p", tmp_path / "wal-split")
    url, stop = start_in_thread(app)
    try:
        row = served.frame.head(1).to_dict(orient="records")[0]
        routes: dict[str, set[str]] = {}
        for caller in range(12):
            for _ in range(3):
                body = {"records": [{**row, "id": caller}]}
                answer = httpx.post(f"{url}/v1/endpoints/split/predict", json=body, timeout=10)
                assert answer.status_code == 200, answer.text
                routes.setdefault(str(caller), set()).add(answer.json()["route"])
        assert all(len(seen) == 1 for seen in routes.values())
        assert set().union(*routes.values()) == {"primary:cancer/1", "primary:cancer/2"}
    finally:
        stop()


def test_cli_serve_runs_uvicorn_and_flushes_the_log_on_shutdown(
    tmp_path: Path, data: pd.DataFrame
) -> None:
    from loopml.tracking import get_client

    tracking = get_client()
    registry = RegistryClient(tracking.store, tracking.artifacts)
    features = data.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, data["target"])
    registry.register(model, "cancer", project="p", input_example=features.head(5))
    DeploymentClient(tracking.store, registry).set("cancer", ["cancer/1:100"], project="p")

    with serving(
        ["cancer", "-p", "p"], tmp_path / "wal", dict(os.environ), tmp_path / "serve.out"
    ) as server:
        sample = features.head(3)
        answer = httpx.post(
            f"{server.url}/v1/endpoints/cancer/predict",
            json={"records": sample.to_dict(orient="records")},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(sample).tolist()
        assert server.terminate(signal.SIGINT) == 0, server.output()  # Ctrl-C
    logged = read_predictions(tracking.store, tracking.artifacts, "cancer")
    assert list(logged["request_id"]) == [answer.json()["request_id"]]


def test_unexpected_errors_are_a_json_500_without_traceback(served: Served, tmp_path: Path) -> None:
    app = create_app(served.store, served.artifacts, None, "p", tmp_path / "wal-500")

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    url, stop = start_in_thread(app)
    try:
        response = httpx.get(f"{url}/boom")
    finally:
        stop()
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
