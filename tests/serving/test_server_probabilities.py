"""Class probabilities on request (issue 13): ``?probabilities=true`` or
``"return_probabilities": true`` on ``/v1/endpoints/{name}/predict``, named by class."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._server import create_app
from loopml.store import Store, open_store
from server_support import start_in_thread


@dataclass
class Served:
    url: str
    store: Store
    artifacts: ArtifactStore
    features: pd.DataFrame
    model: LogisticRegression
    stop: Any

    def predict(self, endpoint: str, body: Any, query: str = "") -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/endpoints/{endpoint}/predict{query}", json=body, timeout=30
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    iris = load_iris(as_frame=True)
    features = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    species = iris.target.map(dict(enumerate(iris.target_names)))
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}")
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    registry = RegistryClient(store, artifacts)
    model = LogisticRegression(max_iter=500).fit(features, species)
    registry.register(model, "iris", project="p", input_example=features.head(3))
    size = LinearRegression().fit(features.drop(columns="petal_width"), features["petal_width"])
    registry.register(
        size, "size", project="p", input_example=features.drop(columns="petal_width").head(3)
    )
    app = create_app(store, artifacts, [], "p", tmp_path / "wal", models=["iris/1", "size"])
    url, stop = start_in_thread(app)
    try:
        yield Served(url, store, artifacts, features, model, stop)
    finally:
        stop()
        store.close()


def test_probabilities_are_answered_by_class_when_asked(served: Served) -> None:
    rows = served.features.iloc[[0, 60, 120]]
    expected = served.model.predict_proba(rows)
    records = rows.to_dict(orient="records")
    by_query = served.predict("iris", {"records": records}, "?probabilities=true")
    by_body = served.predict("iris", {"records": records, "return_probabilities": True})
    for response in (by_query, by_body):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["classes"] == ["setosa", "versicolor", "virginica"]
        assert np.allclose(answer["probabilities"], expected)
        assert answer["predictions"] == ["setosa", "versicolor", "virginica"]
    plain = served.predict("iris", {"records": records}, "?probabilities=false").json()
    assert "probabilities" not in plain and "classes" not in plain

    served.stop()  # the log keeps the answered predictions, not the probabilities
    logged = read_predictions(served.store, served.artifacts, "iris")
    assert len(logged) == 3
    assert all(json.loads(o) == plain["predictions"] for o in logged["output"])


def test_a_model_without_predict_proba_is_refused_and_nothing_is_logged(
    served: Served,
) -> None:
    body = {"records": served.features.drop(columns="petal_width").head(2).to_dict("records")}
    refused = served.predict("size", body, "?probabilities=1")
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "probabilities_unavailable"
    assert "size/1" in error["message"] and "predict_proba" in error["message"]
    assert served.predict("size", body).status_code == 200
    served.stop()
    assert len(read_predictions(served.store, served.artifacts, "size")) == 1


@pytest.mark.parametrize(
    ("query", "extra", "field"),
    [
        ("?probabilities=maybe", {}, "probabilities"),
        ("", {"return_probabilities": "yes"}, "return_probabilities"),
    ],
)
def test_a_request_that_asks_unclearly_gets_a_422_naming_the_field(
    served: Served, query: str, extra: dict[str, Any], field: str
) -> None:
    body = {"records": served.features.head(1).to_dict("records"), **extra}
    response = served.predict("iris", body, query)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
