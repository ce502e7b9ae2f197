"""Feedback: the last label counts, every label is kept, repeats are idempotent, joinable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.serving._feedback import (
    MAX_LABEL_BYTES,
    MAX_LABEL_DEPTH,
    RequestIds,
    feedback,
    feedback_history,
    record_feedback,
)
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.serving._predlog_reading import read_predictions
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


def test_a_later_label_corrects_the_first_and_both_are_kept(store: Store) -> None:
    """Issue 12 item 13: the first label is no longer final (a third party could lock in a
    wrong one); a correction counts, and the history keeps every value with its source."""
    assert record_feedback(store, "fraud", [("r1", 1)], source="labeller-a") == 1
    assert record_feedback(store, "fraud", [("r9", 0), ("r1", 0)], source="labeller-b") == 2
    assert record_feedback(store, "fraud", [("r1", 0)]) == 0  # the label in force: no-op
    assert [(f.request_id, f.label) for f in feedback(store, "fraud")] == [("r1", 0), ("r9", 0)]
    history = feedback_history(store, "fraud", "r1")
    assert [(c.label, c.source) for c in history] == [(1, "labeller-a"), (0, "labeller-b")]
    assert history[0].received_at <= history[1].received_at
    assert [c.request_id for c in feedback_history(store, "fraud")] == ["r1", "r9", "r1"]
    # Within one batch the last label counts; 1 and true are different labels.
    assert record_feedback(store, "fraud", [("r5", 0), ("r5", True)]) == 1
    assert feedback(store, "fraud")[-1].label is True
    assert record_feedback(store, "fraud", [("r5", 1)]) == 1


def test_labels_are_bounded_and_a_bad_one_stores_nothing(store: Store) -> None:
    """Issue 12 item 13: a label is at most MAX_LABEL_BYTES of JSON, MAX_LABEL_DEPTH deep;
    a batch with one bad label stores nothing."""
    record_feedback(store, "fraud", [("r1", 1)])
    huge = "x" * MAX_LABEL_BYTES
    with pytest.raises(InvalidParameter, match=f"at most {MAX_LABEL_BYTES} bytes"):
        record_feedback(store, "fraud", [("r2", 0), ("r1", huge)])
    deep: object = 1
    for _ in range(MAX_LABEL_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidParameter, match="deep"):
        record_feedback(store, "fraud", [("r2", 0), ("r1", deep)])
    very_deep: object = 1
    for _ in range(100_000):  # no RecursionError: the depth is measured without recursing
        very_deep = {"a": very_deep}
    with pytest.raises(InvalidParameter, match="deep"):
        record_feedback(store, "fraud", [("r1", very_deep)])
    with pytest.raises(InvalidParameter, match="JSON"):
        record_feedback(store, "fraud", [("r1", float("nan"))])
    assert [(f.request_id, f.label) for f in feedback(store, "fraud")] == [("r1", 1)]
    assert len(feedback_history(store, "fraud")) == 1


@given(endpoint=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_request_ids_name_the_endpoint_that_answered(endpoint: str, other: str) -> None:
    """Issue 12 item 13: an id proves which endpoint answered it; altered ids are refused."""
    ids = RequestIds(b"k" * 32)
    issued = ids.issue(endpoint)
    assert len(issued) <= 64
    assert ids.answered(endpoint, issued)
    assert ids.answered(other, issued) == (other == endpoint)
    assert not RequestIds(b"j" * 32).answered(endpoint, issued)
    flipped = issued[:-1] + ("0" if issued[-1] != "0" else "1")
    assert not ids.answered(endpoint, flipped)
    assert not ids.answered(endpoint, issued[:32])


def test_request_ids_share_one_secret_per_store(store: Store) -> None:
    first, second = RequestIds.of_store(store), RequestIds.of_store(store)
    assert second.answered("fraud", first.issue("fraud"))


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
    frame = read_predictions(store, artifacts, "fraud", with_feedback=True)
    assert frame["request_id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert frame["label"].tolist() == [None, 1, None, 0]
    assert frame["feedback_at"].isna().tolist() == [True, False, True, False]
    assert "label" not in read_predictions(store, artifacts, "fraud").columns
