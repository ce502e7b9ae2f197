"""Feedback: first label wins, repeats are idempotent, joinable with predictions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.serving._feedback import feedback, record_feedback
from loopml.serving._predlog import PredictionLog, PredictionRecord, predictions
from loopml.store import Store, open_store


@pytest.fixture
def store(store_uri: str) -> Iterator[Store]:
    opened = open_store(store_uri)
    yield opened
    opened.close()


def test_record_and_list(store: Store) -> None:
    assert record_feedback(store, "fraud", [("r1", 1), ("r2", {"class": "b"}), ("r1", 1)]) == 2
    assert record_feedback(store, "fraud", [("r1", 1), ("r2", {"class": "b"})]) == 0
    assert record_feedback(store, "fraud", iter([("r3", [0, 1])])) == 1
    assert record_feedback(store, "churn", [("r1", 0)]) == 1  # per endpoint
    stored = feedback(store, "fraud")
    assert [(f.request_id, f.label) for f in stored] == [
        ("r1", 1),
        ("r2", {"class": "b"}),
        ("r3", [0, 1]),
    ]
    assert feedback(store, "fraud", since_ms=stored[-1].received_at + 10**6) == []
    assert record_feedback(store, "fraud", []) == 0


def test_conflicting_label_raises_and_stores_nothing(store: Store) -> None:
    record_feedback(store, "fraud", [("r1", 1)])
    with pytest.raises(InvalidParameter, match="'r1'"):
        record_feedback(store, "fraud", [("r9", 0), ("r1", 0)])
    assert [f.request_id for f in feedback(store, "fraud")] == ["r1"]  # r9 rolled back
    with pytest.raises(InvalidParameter, match="'r5'"):
        record_feedback(store, "fraud", [("r5", 0), ("r5", 1)])


def test_bad_items(store: Store) -> None:
    with pytest.raises(InvalidParameter, match="request ids"):
        record_feedback(store, "fraud", [("", 1)])
    with pytest.raises(InvalidParameter, match="JSON"):
        record_feedback(store, "fraud", [("r1", object())])
    with pytest.raises(InvalidParameter, match="'endpoint'"):
        record_feedback(store, "", [("r1", 1)])


def test_join_with_predictions(store: Store, tmp_path: Path) -> None:
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    with PredictionLog(tmp_path / "wal", store, artifacts, "h") as log:
        for i in range(4):
            log.append(
                PredictionRecord(
                    f"r{i}", "fraud", "champion", "fraud/1", {"i": i}, 0.5, 1.0, ts=1000 + i
                )
            )
    record_feedback(store, "fraud", [("r1", 1), ("r3", 0), ("unknown", 1)])
    frame = predictions(store, artifacts, "fraud", with_feedback=True)
    assert frame["request_id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert frame["label"].tolist() == [None, 1, None, 0]
    assert frame["feedback_at"].isna().tolist() == [True, False, True, False]
    assert "label" not in predictions(store, artifacts, "fraud").columns
