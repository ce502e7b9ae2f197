"""Evaluation metrics are stored with bootstrap confidence intervals, and the card shows them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.artifacts import ArtifactStore
from loopml.data import DataClient
from loopml.registry import RegistryClient
from loopml.registry._card import build_card
from loopml.store import open_store


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryClient]:
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}")
    yield RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def test_evaluation_metrics_carry_intervals_that_contain_the_value(
    registry: RegistryClient,
) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns=["target"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(features.iloc[:400], frame["target"].iloc[:400])
    registry.register(model, "cancer", project="p", input_example=features.head(3))
    DataClient(registry.store, registry.artifacts).register(
        "cancer-test", frame.iloc[400:], project="p"
    )

    result = registry.evaluate("cancer/1", "cancer-test:1", project="p", target="target")
    assert result.passed
    assert result.results == registry.policy_results(result.version)  # checks only
    metrics = registry.evaluation_metrics(result.version)
    assert set(metrics) == {"accuracy", "f1", "auc"}
    for stats in metrics.values():
        assert stats["low"] <= stats["value"] <= stats["high"]
        assert stats["confidence"] == 0.95
    card = build_card(registry, "cancer/1", "p")
    assert "value CI" in "\n".join(card.to_markdown().splitlines())
