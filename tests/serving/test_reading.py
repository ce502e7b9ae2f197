"""``loopml.serving.predictions(...)``: the public read API over the default stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from predlog_support import use_default_stores

import loopml.serving
from loopml.errors import DeploymentNotFound, InvalidParameter, ProjectNotFound
from loopml.serving import record_feedback
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.serving._reading import time_bound_ms

HOUR_MS = 3_600_000


@pytest.fixture
def logged(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Default stores holding 6 predictions of ``credit`` (one an hour up to now), 2 labelled.

    Yields the time of the newest prediction (ms since the epoch).
    """
    tracking = use_default_stores(monkeypatch, store_uri, tmp_path)
    now = int(time.time() * 1000)
    records = [
        PredictionRecord(
            request_id=f"r{i}",
            endpoint="credit",
            route="primary:credit@champion" if i % 2 else "canary:credit/2",
            model_version="credit/1" if i % 2 else "credit/2",
            inputs={"x": [float(i)]},
            output=[i % 2],
            latency_ms=1.0,
            ts=now - (5 - i) * HOUR_MS,
        )
        for i in range(6)
    ]
    folder = tmp_path / "wal"
    with PredictionLog(folder, tracking.store, tracking.artifacts, "test") as log:
        log.append_many(records, wait=True)
        log.flush()
    record_feedback(tracking.store, "credit", [("r1", [1]), ("r2", [1])])
    yield records[-1].ts


def test_predictions_are_read_by_endpoint_name_with_their_feedback(logged: int) -> None:
    frame = loopml.serving.predictions("credit")
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(6)]
    assert frame["label"].tolist() == [None, [1], [1], None, None, None]
    assert frame["feedback_at"].notna().tolist() == [False, True, True, False, False, False]
    assert frame["model_version"].tolist() == ["credit/2", "credit/1"] * 3


def test_time_window_route_and_limit_narrow_the_rows(logged: int) -> None:
    read = loopml.serving.predictions
    assert read("credit", since="150m")["request_id"].tolist() == ["r3", "r4", "r5"]
    assert read("credit", until=timedelta(hours=4.5))["request_id"].tolist() == ["r0"]
    newest = datetime.fromtimestamp(logged / 1000)
    assert read("credit", since=newest)["request_id"].tolist() == ["r5"]
    assert read("credit", since=newest.isoformat())["request_id"].tolist() == ["r5"]
    by_ref = read("credit", route="credit@champion")["request_id"].tolist()
    assert by_ref == read("credit", route="primary:credit@champion")["request_id"].tolist()
    assert by_ref == ["r1", "r3", "r5"]
    assert read("credit", limit=2)["request_id"].tolist() == ["r4", "r5"]
    assert read("credit", route="credit@champion", limit=1)["request_id"].tolist() == ["r5"]


def test_unknown_project_and_endpoint_are_errors_not_empty_frames(logged: int) -> None:
    with pytest.raises(ProjectNotFound, match="'nope'"):
        loopml.serving.predictions("credit", project="nope")
    with pytest.raises(DeploymentNotFound, match=r"'fraud'.*project 'p'"):
        loopml.serving.predictions("fraud")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": 5}, "until"),
        ({"route": ""}, "route"),
    ],
)
def test_bad_arguments_name_the_parameter(
    logged: int, arguments: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidParameter, match=f"'{named}'"):
        loopml.serving.predictions("credit", **arguments)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10_000_000), st.sampled_from("smhdw"))
def test_a_duration_is_that_long_before_now(amount: int, unit: str) -> None:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    before = time.time() * 1000
    found = time_bound_ms(f"{amount}{unit}", "since")
    after = time.time() * 1000
    assert before - seconds * 1000 - 1 <= found <= after - seconds * 1000 + 1


def test_predictions_not_flushed_yet_are_read_from_the_servers_log_folders(
    store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prediction is visible the moment it is answered, before its segment is written."""
    from loopml.serving._claim import default_log_base

    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    tracking = use_default_stores(monkeypatch, store_uri, tmp_path)
    now = int(time.time() * 1000)
    record = PredictionRecord(
        request_id="fresh",
        endpoint="credit",
        route="primary:credit@champion",
        model_version="credit/1",
        inputs={"x": [1.0]},
        output=[1],
        latency_ms=1.0,
        ts=now,
    )
    folder = default_log_base() / "worker-0"
    with PredictionLog(
        folder, tracking.store, tracking.artifacts, "test", flush_interval=3600
    ) as log:
        log.append_many([record], wait=True)
        frame = loopml.serving.predictions("credit")
        assert frame["request_id"].tolist() == ["fresh"]
        assert frame["model_version"].tolist() == ["credit/1"]
