"""Monitor → result → alert end to end: a real inference server, real traffic and feedback,
a real webhook receiver, and the monitor's figures on the next server's ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.data import DataClient
from loopml.monitoring import MonitorSpec, MonitorStore
from loopml.monitoring._alert_state import list_alerts
from loopml.monitoring._delivery import deliver
from loopml.monitoring._run import run_monitor
from loopml.monitoring._sources import PredictionWindow, Readers
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient
from loopml.serving._server import ServerOptions, create_app
from loopml.store import now_ms
from loopml.tracking import TrackingClient
from server_support import start_in_thread
from webhook_support import Delivery, webhook_receiver

pytestmark = pytest.mark.slow

SHIFTED = {"mean radius": 1.4, "worst area": 1.8}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    with webhook_receiver() as found:
        yield found


def _send(url: str, rows: list[dict[str, Any]]) -> list[str]:
    ids = []
    with httpx.Client(timeout=30) as http:
        for row in rows:
            answer = http.post(f"{url}/v1/endpoints/cancer/predict", json={"records": [row]})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
    return ids


def test_drift_on_live_traffic_alerts_through_a_webhook_and_metrics(
    client: TrackingClient,
    tmp_path: Path,
    receiver: tuple[str, list[Delivery]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPML_WEBHOOK_ALLOW_PRIVATE", "1")
    hook, received = receiver
    store, artifacts = client.store, client.artifacts
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    train = frame.sample(frac=0.6, random_state=0)
    live = frame.drop(train.index)
    data = DataClient(store, artifacts)
    data.register("cancer-train", train, project="p")
    features = train.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(features, train["target"])
    registry = RegistryClient(store, artifacts)
    registry.register(model, "cancer", project="p", input_example=features.head(5))
    DeploymentClient(store, registry).set("cancer", ["cancer/1:100"], project="p")

    app = create_app(store, artifacts, None, "p", tmp_path / "wal", ServerOptions())
    url, stop = start_in_thread(app)
    rows = live.drop(columns="target").to_dict(orient="records")
    rng = np.random.default_rng(0)
    normal_rows = [rows[i] for i in rng.integers(0, len(rows), 400)]
    since = now_ms()
    ids = _send(url, normal_rows)
    targets = dict(zip(live.drop(columns="target").index, live["target"], strict=True))
    labels = [int(targets[live.index[rows.index(r)]]) for r in normal_rows]
    feedback = httpx.post(
        f"{url}/v1/endpoints/cancer/feedback",
        json={"items": [{"request_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]},
        timeout=30,
    )
    assert feedback.status_code == 200, feedback.text
    normal = (since, now_ms())
    drift_since = now_ms()
    shifted = [{k: v * SHIFTED.get(k, 1.0) for k, v in r.items()} for r in normal_rows]
    _send(url, shifted)
    drifted = (drift_since, now_ms() + 1)
    stop()  # the prediction log is flushed into segments on the way out

    from loopml.monitoring._predictions import read_window

    def prediction_rows(
        endpoint: str, start: int, end: int, route: str | None, version: str | None
    ) -> PredictionWindow:
        return read_window(store, artifacts, endpoint, start, end, route, version)

    readers = Readers(store, artifacts, data, registry, prediction_rows)
    monitors = MonitorStore(store, artifacts)
    monitors.create(
        MonitorSpec(
            name="cancer-live",
            endpoint="cancer",
            reference="dataset:cancer-train:1",
            checks={
                "drift": {},
                "data_quality": {},
                "performance": {"min_labels": 100},
                "multivariate": {"sample": 2000},
                "attribution": {"method": "permutation", "sample": 300},
            },
            sinks=("log", {"webhook": hook}),
        ),
        project="p",
    )
    calm = run_monitor(
        monitors, readers, "cancer-live", project="p", window=normal, deliver=deliver
    )
    assert calm.current_rows == 400
    assert not [c for c in calm.alerts if c.check == "drift"], [c.message for c in calm.alerts]
    accuracy = [c for c in calm.checks if c.check == "performance" and c.method == "accuracy"]
    assert accuracy and accuracy[0].statistic is not None and accuracy[0].statistic > 0.85
    assert calm.lineage["model_version"] == "cancer/1" and calm.lineage["segments"]

    moved = run_monitor(
        monitors, readers, "cancer-live", project="p", window=drifted, deliver=deliver
    )
    drifting = {c.column for c in moved.alerts if c.check == "drift"}
    assert set(SHIFTED) <= drifting
    multivariate = [c for c in moved.checks if c.check == "multivariate_drift"]
    assert [c.status for c in multivariate] == ["alert"]
    ranking = [c for c in moved.checks if c.check == "attribution_drift" and c.method == "ndcg"]
    assert ranking and ranking[0].statistic is not None and 0 < ranking[0].statistic <= 1
    perf = [c for c in moved.checks if c.check == "performance"]
    assert perf and all(c.status == "no_data" for c in perf)  # no labels yet: never a pass
    firing = list_alerts(store, project="p", state="firing")
    assert set(SHIFTED) <= {a.column for a in firing}
    hooked = {d.body["column"] for d in received if d.body.get("state") == "firing"}
    assert set(SHIFTED) <= hooked

    app = create_app(store, artifacts, None, "p", tmp_path / "wal-2", ServerOptions())
    url, stop = start_in_thread(app)
    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    finally:
        stop()
    assert 'loopml_monitor_status{endpoint="cancer",monitor="cancer-live"} 1.0' in text
    assert 'loopml_monitor_drift{column="mean radius"' in text


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def test_performance_is_estimated_on_live_traffic_before_labels_arrive(
    client: TrackingClient, tmp_path: Path
) -> None:
    """An endpoint that logs class probabilities: CBPE calibrated on a labelled window
    estimates the accuracy and AUC of a later unlabelled one; realised AUC is reported."""
    store, artifacts = client.store, client.artifacts
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    train = frame.sample(frac=0.5, random_state=1)
    live = frame.drop(train.index)
    features = train.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(features, train["target"])
    registry = RegistryClient(store, artifacts)
    registry.register(model, "cancer", project="p", input_example=features.head(5))
    deployments = DeploymentClient(store, registry)
    deployments.set("cancer", ["cancer/1:100"], project="p", settings={"log_probabilities": True})

    app = create_app(store, artifacts, None, "p", tmp_path / "wal", ServerOptions())
    url, stop = start_in_thread(app)
    inputs = live.drop(columns="target")
    since = now_ms()
    ids = _send(url, inputs.to_dict(orient="records"))
    feedback = httpx.post(
        f"{url}/v1/endpoints/cancer/feedback",
        json={
            "items": [
                {"request_id": i, "label": int(y)} for i, y in zip(ids, live["target"], strict=True)
            ]
        },
        timeout=30,
    )
    assert feedback.status_code == 200, feedback.text
    labelled = (since, now_ms() + 1)
    unlabelled_since = now_ms() + 1
    while now_ms() < unlabelled_since:  # the windows must not share a millisecond
        pass
    _send(url, inputs.sample(200, random_state=2).to_dict(orient="records"))
    unlabelled = (unlabelled_since, now_ms() + 1)
    stop()

    from loopml.monitoring._predictions import read_window

    def prediction_rows(
        endpoint: str, start: int, end: int, route: str | None, version: str | None
    ) -> PredictionWindow:
        return read_window(store, artifacts, endpoint, start, end, route, version)

    readers = Readers(store, artifacts, DataClient(store, artifacts), registry, prediction_rows)
    monitors = MonitorStore(store, artifacts)
    monitors.create(
        MonitorSpec(
            name="cancer-cbpe",
            endpoint="cancer",
            reference=f"window:{_iso(labelled[0])}/{_iso(labelled[1])}",
            checks={
                "estimated_performance": {"metrics": ["accuracy", "auc"]},
                "performance": {"min_labels": 100, "metrics": ["accuracy", "auc"]},
            },
        ),
        project="p",
    )
    result = run_monitor(monitors, readers, "cancer-cbpe", project="p", window=unlabelled)
    estimated = {c.method: c for c in result.checks if c.check == "estimated_performance"}
    assert set(estimated) == {"accuracy", "auc"}, [c.message for c in result.checks]
    accuracy = estimated["accuracy"]
    assert accuracy.status == "ok" and accuracy.statistic is not None
    assert accuracy.detail["estimated"] is True
    realised_accuracy = float((model.predict(inputs) == live["target"]).mean())
    assert abs(accuracy.statistic - realised_accuracy) < 0.1
    assert estimated["auc"].statistic is not None and estimated["auc"].statistic > 0.9
    realised = [c for c in result.checks if c.check == "performance"]
    assert realised and all(c.status == "no_data" for c in realised)  # no labels yet

    labelled_run = run_monitor(monitors, readers, "cancer-cbpe", project="p", window=labelled)
    auc = [c for c in labelled_run.checks if c.check == "performance" and c.method == "auc"]
    assert auc and auc[0].statistic is not None and auc[0].statistic > 0.9
