"""Class probabilities in the prediction log (issue 14): an endpoint that logs them
gives monitoring one ``proba_<class>`` column per class."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from predlog_support import log_records
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from test_server_probabilities import Served

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient, read_prediction_rows
from loopml.serving._payloads import FloatRows
from loopml.serving._predlog import PredictionRecord
from loopml.serving._probabilities import class_key
from loopml.serving._routes import DeploymentSettings
from loopml.serving._server import ServerOptions, create_app
from loopml.store import Store
from server_support import start_in_thread

T0 = 1_700_000_000_000


def _record(rid: str, rows: int, proba: FloatRows | None, ts: int = T0) -> PredictionRecord:
    inputs = {"x": [float(i) for i in range(rows)]}
    return PredictionRecord(
        rid, "e", "primary", "m/1", inputs, [0] * rows, 1.0, ts=ts, probabilities=proba
    )


def test_logged_probabilities_are_read_as_one_column_per_class(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    two = FloatRows(("0", "1"), np.array([[0.9, 0.1], [0.2, 0.8]]))
    other = FloatRows(("1", "2"), np.array([[0.3, 0.7]]))  # another version's classes
    records = [
        _record("a", 2, two),
        _record("b", 1, None, ts=T0 + 1),  # logged before the endpoint logged probabilities
        _record("c", 1, other, ts=T0 + 2),
        _record("d", 2, FloatRows(("0",), np.array([[0.5]])), ts=T0 + 3),  # damaged: 1 of 2
    ]
    log_records(store, artifacts, tmp_path / "wal", records)
    table = read_prediction_rows(store, artifacts, "e", with_feedback=False).table
    assert table.column_names[-4:] == ["prediction", "proba_0", "proba_1", "proba_2"]
    for name in ("proba_0", "proba_1", "proba_2"):
        assert table.schema.field(name).type == pa.float64()
    assert table.column("proba_0").to_pylist() == [0.9, 0.2, None, None, None, None]
    assert table.column("proba_1").to_pylist() == [0.1, 0.8, None, 0.3, None, None]
    assert table.column("proba_2").to_pylist() == [None, None, None, 0.7, None, None]


def test_unflushed_probabilities_read_like_flushed_ones(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    from loopml.serving._predlog import PredictionLog

    proba = FloatRows(("no", "yes"), np.array([[0.25, 0.75]]))
    folder = tmp_path / "wal"
    with PredictionLog(folder, store, artifacts, "h", flush_interval=60) as log:
        log.append(_record("a", 1, proba))
        unflushed = read_prediction_rows(store, artifacts, "e", wal_folders=[folder])
        assert unflushed.unflushed == 1
        assert unflushed.table.column("proba_yes").to_pylist() == [0.75]
    flushed = read_prediction_rows(store, artifacts, "e").table
    assert flushed.column("proba_no").to_pylist() == [0.25]


def test_a_feature_named_like_a_probability_column_keeps_its_prefix(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    proba = FloatRows(("1",), np.array([[0.6]]))
    record = PredictionRecord(
        "a", "e", "primary", "m/1", {"proba_1": [7]}, [1], 1.0, ts=T0, probabilities=proba
    )
    log_records(store, artifacts, tmp_path / "wal", [record])
    table = read_prediction_rows(store, artifacts, "e").table
    assert table.column("in.proba_1").to_pylist() == [7]
    assert table.column("proba_1").to_pylist() == [0.6]


def test_probability_columns_of_another_type_are_not_trusted(
    store: Store, artifacts: ArtifactStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from test_prediction_rows import _store_table, _typed_segment

    segment = _typed_segment(tmp_path, [_record("a", 1, FloatRows(("1",), np.array([[0.6]])))])
    hostile = segment.set_column(
        segment.schema.get_field_index("proba.1"), "proba.1", pa.array([["0.6"]])
    )
    _store_table(store, artifacts, tmp_path, hostile)
    with caplog.at_level(logging.WARNING):
        table = read_prediction_rows(store, artifacts, "e", with_feedback=False).table
    assert "'proba.1' is of type" in caplog.text
    assert "proba_1" not in table.column_names  # the JSON holds no probabilities
    assert table.column("x").to_pylist() == [0.0]


@pytest.mark.parametrize(
    ("label", "key"),
    [(1, "1"), (np.int64(2), "2"), (True, "1"), (1.0, "1"), (0.5, "0.5"), ("yes", "yes")],
)
def test_class_keys_match_monitorings_label_keys(label: Any, key: str) -> None:
    from loopml.monitoring._perf_frame import class_keys

    assert class_key(label) == key
    if not isinstance(label, float) or label.is_integer():
        assert class_keys(pd.Series([label], dtype=object), "label").tolist() == [key]


def test_log_probabilities_setting_is_checked() -> None:
    assert DeploymentSettings.from_dict({"log_probabilities": True}).log_probabilities is True
    with pytest.raises(InvalidParameter, match="log_probabilities must be true or false"):
        DeploymentSettings.from_dict({"log_probabilities": "yes"})


@pytest.fixture
def served(tmp_path: Path, store: Store, artifacts: ArtifactStore) -> Iterator[Served]:
    """``iris`` deployed with ``log_probabilities``; ``size`` (a regressor) served with the
    server's default turned on; ``plain`` deployed with it turned off."""
    iris = load_iris(as_frame=True)
    features = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    species = iris.target.map(dict(enumerate(iris.target_names)))
    registry = RegistryClient(store, artifacts)
    model = LogisticRegression(max_iter=500).fit(features, species)
    registry.register(model, "iris", project="p", input_example=features.head(3))
    size = LinearRegression().fit(features.drop(columns="petal_width"), features["petal_width"])
    registry.register(
        size, "size", project="p", input_example=features.drop(columns="petal_width").head(3)
    )
    deployments = DeploymentClient(store, registry)
    deployments.set("iris", ["iris/1:100"], project="p", settings={"log_probabilities": True})
    deployments.set("plain", ["iris/1:100"], project="p", settings={"log_probabilities": False})
    app = create_app(
        store,
        artifacts,
        ["iris", "plain"],
        "p",
        tmp_path / "wal",
        ServerOptions(log_probabilities=True),
        models=["size"],
    )
    url, stop = start_in_thread(app)
    try:
        yield Served(url, store, artifacts, features, model, stop)
    finally:
        stop()


def test_every_request_logs_its_rows_probabilities_even_when_batched(served: Served) -> None:
    rows = served.features.sample(60, random_state=0)
    requests = [rows.iloc[i : i + 3] for i in range(0, 60, 3)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        f"{served.url}/v1/endpoints/iris/predict",
                        json={"records": r.to_dict("records")},
                    )
                    for r in requests
                )
            )

    answers = asyncio.run(send_all())
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    asked = httpx.post(
        f"{served.url}/v1/endpoints/iris/predict?probabilities=true",
        json={"records": rows.head(2).to_dict("records")},
        timeout=30,
    ).json()
    assert np.allclose(asked["probabilities"], served.model.predict_proba(rows.head(2)))
    served.stop()
    table = read_prediction_rows(served.store, served.artifacts, "iris").table.to_pandas()
    assert len(table) == 62
    by_request = {a.json()["request_id"]: r for a, r in zip(answers, requests, strict=True)}
    by_request[asked["request_id"]] = rows.head(2)
    expected = np.vstack(
        [
            served.model.predict_proba(by_request[rid].iloc[[row]])
            for rid, row in zip(table["request_id"], table["row"], strict=True)
        ]
    )
    logged = table[[f"proba_{c}" for c in served.model.classes_]].to_numpy()
    assert np.allclose(logged, expected)


def test_endpoints_that_do_not_log_probabilities_have_no_columns_for_them(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"records": served.features.head(2).to_dict("records")}
    assert httpx.post(f"{served.url}/v1/endpoints/plain/predict", json=body, timeout=30).is_success
    regressor = {"records": served.features.drop(columns="petal_width").head(2).to_dict("records")}
    answer = httpx.post(f"{served.url}/v1/endpoints/size/predict", json=regressor, timeout=30)
    assert answer.status_code == 200, answer.text
    served.stop()
    for endpoint in ("plain", "size"):
        table = read_prediction_rows(served.store, served.artifacts, endpoint).table
        assert table.num_rows == 2
        assert not [c for c in table.column_names if c.startswith("proba_")]
    said = [r.getMessage() for r in caplog.get_records("setup")]
    assert any("'size'" in m and "size/1 has no predict_proba" in m for m in said), said
