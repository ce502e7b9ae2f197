"""``read_prediction_rows`` / ``prediction_rows``: the prediction log, one typed row per row."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from predlog_support import log_records, stored_segments, use_default_stores

import loopml.serving
from loopml.artifacts import ArtifactStore
from loopml.errors import DeploymentNotFound, InvalidParameter, ProjectNotFound, UnknownColumnError
from loopml.serving import PredictionRows, read_prediction_rows, record_feedback
from loopml.serving._payloads import FloatRows
from loopml.serving._predlog import SEGMENT_SCHEMA, PredictionLog, PredictionRecord
from loopml.store import Store, now_ms, open_store, tables

T0 = 1_700_000_000_000
# The columns before the features, in order (spelled out: the test checks the code's own).
BASE = ["request_id", "row", "ts", "route", "model_version"]


def _record(
    rid: str,
    inputs: Any,
    output: Any,
    *,
    endpoint: str = "e",
    ts: int = T0,
    route: str = "primary:m@champion",
    version: str = "m/1",
) -> PredictionRecord:
    return PredictionRecord(rid, endpoint, route, version, inputs, output, 1.0, ts=ts)


def _store_table(store: Store, artifacts: ArtifactStore, tmp_path: Path, table: pa.Table) -> str:
    """Put ``table`` in the log as it is, bypassing the flusher's checks (a hostile segment)."""
    path = tmp_path / f"segment-{time.monotonic_ns()}.parquet"
    pq.write_table(table, path)
    digest = artifacts.put_file(path)
    ts = table.column("ts")
    with store.write() as connection:
        connection.execute(
            tables.PREDICTION_SEGMENT.insert(),
            [
                {
                    "endpoint": table.column("endpoint")[0].as_py(),
                    "digest": digest,
                    "rows": table.num_rows,
                    "first_at": min(ts.to_pylist()),
                    "last_at": max(ts.to_pylist()),
                    "source": "test",
                    "created_at": now_ms(),
                }
            ],
        )
    return digest


def _typed_segment(tmp_path: Path, records: list[PredictionRecord]) -> pa.Table:
    """The segment the flusher would write for ``records`` (logged in a throw-away store)."""
    side = open_store(f"sqlite:///{tmp_path / f'side-{time.monotonic_ns()}.db'}")
    side_artifacts = ArtifactStore.from_uri(str(tmp_path / "side-artifacts"))
    log_records(side, side_artifacts, tmp_path / f"side-wal-{time.monotonic_ns()}", records)
    (segment,) = stored_segments(side, side_artifacts)
    side.close()
    return segment


_MIXED = [
    _record("r1", {"age": [31, 40, 52], "city": ["a", None, "b"]}, [0, 1, 0], ts=T0),
    _record(
        "r2", FloatRows(("age", "score"), np.array([[1.5, 0.2], [2.5, 0.4]])), [1, 1], ts=T0 + 1
    ),
    _record("r3", {"amount": 12.5}, 0.5, ts=T0 + 2),
]


def test_one_row_per_predicted_row_with_typed_features(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    log_records(store, artifacts, tmp_path / "wal", _MIXED)
    read = read_prediction_rows(store, artifacts, "e", with_feedback=False)
    table = read.table
    assert table.column_names == [*BASE, "age", "amount", "city", "score", "prediction"]
    assert table.column("request_id").to_pylist() == ["r1"] * 3 + ["r2"] * 2 + ["r3"]
    assert table.column("row").to_pylist() == [0, 1, 2, 0, 1, 0]
    assert table.schema.field("age").type == pa.float64()
    assert table.column("age").to_pylist() == [31.0, 40.0, 52.0, 1.5, 2.5, None]
    assert table.column("city").to_pylist() == ["a", None, "b", None, None, None]
    assert table.column("score").to_pylist() == [None, None, None, 0.2, 0.4, None]
    assert table.column("prediction").to_pylist() == [0, 1, 0, 1, 1, 0.5]
    assert len(read.segments) == 1 and read.unflushed == 0 and read.damaged == 0


def test_old_segments_read_like_typed_ones(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    """The same requests, once in a typed segment and once in one of SEGMENT_SCHEMA only."""
    typed = _typed_segment(tmp_path, [r for r in _MIXED])
    old = _typed_segment(
        tmp_path,
        [_record(r.request_id + "-old", r.inputs, r.output, ts=r.ts + 10) for r in _MIXED],
    ).select(SEGMENT_SCHEMA.names)
    _store_table(store, artifacts, tmp_path, typed)
    _store_table(store, artifacts, tmp_path, old)
    table = read_prediction_rows(store, artifacts, "e", with_feedback=False).table
    new_half, old_half = table.slice(0, 6), table.slice(6)
    assert old_half.column("request_id").to_pylist() == [
        f"{r}-old" for r in new_half.column("request_id").to_pylist()
    ]
    for name in ["row", "age", "amount", "city", "score", "prediction"]:
        assert old_half.column(name).to_pylist() == new_half.column(name).to_pylist(), name


def test_feedback_pairs_with_rows_as_the_route_comparison_does(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    log_records(
        store,
        artifacts,
        tmp_path / "wal",
        [
            *_MIXED,
            _record("r3:shadow:m/2", {"amount": 12.5}, 0.7, ts=T0 + 2, route="shadow:m/2"),
            _record("r4", {"age": [1]}, [0], ts=T0 + 3),
        ],
    )
    record_feedback(store, "e", [("r1", [1, 1, 0]), ("r2", 1), ("r3", 0.25)])
    table = read_prediction_rows(store, artifacts, "e").table
    labels = dict(
        zip(
            zip(
                table.column("request_id").to_pylist(), table.column("row").to_pylist(), strict=True
            ),
            table.column("label").to_pylist(),
            strict=True,
        )
    )
    assert [labels[("r1", i)] for i in range(3)] == [1, 1, 0]
    assert [labels[("r2", i)] for i in range(2)] == [None, None]  # a scalar for 2 rows: unpaired
    assert labels[("r3", 0)] == 0.25
    assert labels[("r3:shadow:m/2", 0)] == 0.25  # a shadow takes the label of what it copied
    assert labels[("r4", 0)] is None
    arrived = dict(
        zip(
            table.column("request_id").to_pylist(),
            table.column("feedback_at").to_pylist(),
            strict=True,
        )
    )
    assert arrived["r2"] is not None and arrived["r4"] is None
    assert table.schema.field("label").type == pa.float64()


def test_segments_with_different_features_and_types_read_together(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    log_records(
        store, artifacts, tmp_path / "wal-1", [_record("a", {"x": [1, 2]}, ["no", "yes"], ts=T0)]
    )
    log_records(
        store,
        artifacts,
        tmp_path / "wal-2",
        [_record("b", {"x": [0.5], "y": ["u"], "z": [True]}, ["yes"], ts=T0 + 1)],
    )
    log_records(store, artifacts, tmp_path / "wal-3", [_record("c", {"z": [7]}, ["no"], ts=T0 + 2)])
    table = read_prediction_rows(store, artifacts, "e", with_feedback=False).table
    assert table.schema.field("x").type == pa.float64()
    assert table.column("x").to_pylist() == [1.0, 2.0, 0.5, None]
    assert table.column("y").to_pylist() == [None, None, "u", None]
    assert table.schema.field("z").type == pa.string()  # booleans and integers: JSON text
    assert table.column("z").to_pylist() == [None, None, "true", "7"]
    assert table.column("prediction").to_pylist() == ["no", "yes", "yes", "no"]


def test_unflushed_records_are_included_once(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    log_records(store, artifacts, tmp_path / "flushed", [_record("a", {"x": [1]}, [0], ts=T0)])
    with PredictionLog(folder, store, artifacts, "h", flush_interval=600) as log:
        log.append_many(
            [_record("a", {"x": [1]}, [0], ts=T0), _record("b", {"x": [2, 3]}, [1, 1], ts=T0 + 1)]
        )
        read = read_prediction_rows(store, artifacts, "e", wal_folders=[folder])
        assert read.table.column("request_id").to_pylist() == ["a", "b", "b"]
        assert read.table.column("x").to_pylist() == [1, 2, 3]
        assert read.unflushed == 1  # "a" is in the store already


def test_the_window_route_and_version_filter_requests(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    log_records(
        store,
        artifacts,
        tmp_path / "wal",
        [
            _record(f"r{i}", {"x": [i]}, [i], ts=T0 + i, route=route, version=version)
            for i, (route, version) in enumerate(
                [
                    ("primary:m@champion", "m/1"),
                    ("canary:m/2", "m/2"),
                    ("primary:m@champion", "m/1"),
                ]
            )
        ]
        + [_record("other", {"x": [9]}, [9], endpoint="f")],
    )

    def ids(**kwargs: Any) -> list[str]:
        table = read_prediction_rows(store, artifacts, "e", with_feedback=False, **kwargs).table
        return [str(r) for r in table.column("request_id").to_pylist()]

    assert ids() == ["r0", "r1", "r2"]
    assert ids(since=T0 + 1) == ["r1", "r2"]
    assert ids(until=T0 + 1) == ["r0"]
    assert ids(route="m@champion") == ["r0", "r2"]
    assert ids(route="canary:m/2") == ["r1"]
    assert ids(model_version="m/2") == ["r1"]
    assert ids(since="1h") == []  # long ago


def test_columns_project_the_features(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    log_records(store, artifacts, tmp_path / "wal", _MIXED)
    table = read_prediction_rows(
        store, artifacts, "e", columns=["score"], with_feedback=False
    ).table
    assert table.column_names == [*BASE, "score", "prediction"]
    with pytest.raises(UnknownColumnError, match="'nope'") as unknown:
        read_prediction_rows(store, artifacts, "e", columns=["score", "nope"])
    assert unknown.value.columns == ("nope",)
    assert unknown.value.known == ("age", "amount", "city", "score")
    # No rows in the window: nothing to say a column is unknown by; an empty table.
    empty = read_prediction_rows(store, artifacts, "e", columns=["nope"], since=T0 + 10).table
    assert empty.num_rows == 0 and "nope" in empty.column_names


def test_a_feature_named_like_a_column_keeps_its_prefix(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    log_records(store, artifacts, tmp_path / "wal", [_record("a", {"label": [3], "row": [4]}, [1])])
    table = read_prediction_rows(store, artifacts, "e").table
    assert table.column("in.label").to_pylist() == [3]
    assert table.column("in.row").to_pylist() == [4]
    assert table.column("label").to_pylist() == [None]


def _set(name: str, value: pa.Array) -> Callable[[pa.Table], pa.Table]:
    return lambda t: t.set_column(t.schema.get_field_index(name), name, value)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            _set("in.age", pa.array([[1.0], [2.0], None])), id="lists of the wrong length"
        ),
        pytest.param(_set("in.age", pa.array([["x"], None, None])), id="a list of the wrong type"),
        pytest.param(_set("in.age", pa.array([1, 2, 3])), id="not a list"),
        pytest.param(_set("rows", pa.array([3, 2, 9], pa.int32())), id="wrong row counts"),
        pytest.param(_set("rows", pa.array([3, 2, 2**31 - 1], pa.int32())), id="huge row count"),
        pytest.param(lambda t: t.drop_columns(["out.prediction"]), id="no prediction column"),
    ],
)
def test_untrusted_typed_columns_are_read_from_the_json(
    store: Store,
    artifacts: ArtifactStore,
    tmp_path: Path,
    change: Callable[[pa.Table], pa.Table],
    caplog: pytest.LogCaptureFixture,
) -> None:
    segment = _typed_segment(tmp_path, _MIXED)
    _store_table(store, artifacts, tmp_path, change(segment))
    with caplog.at_level(logging.WARNING):
        table = read_prediction_rows(store, artifacts, "e", with_feedback=False).table
    assert "not trusted" in caplog.text
    assert table.column("age").to_pylist() == [31.0, 40.0, 52.0, 1.5, 2.5, None]
    assert table.column("prediction").to_pylist() == [0, 1, 0, 1, 1, 0.5]


def test_damaged_segments_never_stop_the_reader(
    store: Store, artifacts: ArtifactStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = _typed_segment(tmp_path, _MIXED).select(SEGMENT_SCHEMA.names)
    inputs = old.column("inputs").to_pylist()
    inputs[0] = '{"age": [31'  # not JSON
    damaged = old.set_column(old.schema.get_field_index("inputs"), "inputs", pa.array(inputs))
    _store_table(store, artifacts, tmp_path, damaged)
    _store_table(store, artifacts, tmp_path, old.drop_columns(["output"]).slice(0, 1))
    with caplog.at_level(logging.WARNING):
        read = read_prediction_rows(store, artifacts, "e", with_feedback=False)
    assert "lacks the log's column 'output'" in caplog.text
    assert read.damaged == 1
    # r1's three rows come from its output; its inputs are lost.
    assert read.table.column("request_id").to_pylist() == ["r1"] * 3 + ["r2"] * 2 + ["r3"]
    assert read.table.column("age").to_pylist()[:3] == [None, None, None]
    assert len(read.segments) == 2


def test_bad_arguments_are_refused(store: Store, artifacts: ArtifactStore, tmp_path: Path) -> None:
    log_records(store, artifacts, tmp_path / "wal", _MIXED)
    with pytest.raises(DeploymentNotFound, match="'nowhere'"):
        read_prediction_rows(store, artifacts, "nowhere")
    with pytest.raises(InvalidParameter, match=r"'since' parameter .* before 'until'"):
        read_prediction_rows(store, artifacts, "e", since=T0 + 5, until=T0)
    with pytest.raises(InvalidParameter, match="'since' parameter"):
        read_prediction_rows(store, artifacts, "e", since="yesterday-ish")
    with pytest.raises(InvalidParameter, match="'columns' parameter"):
        read_prediction_rows(store, artifacts, "e", columns="age")
    with pytest.raises(InvalidParameter, match="'route' parameter"):
        read_prediction_rows(store, artifacts, "e", route="")
    with pytest.raises(ProjectNotFound):
        read_prediction_rows(store, artifacts, "nowhere", project="no-such-project")


def test_prediction_rows_reads_the_default_stores(
    store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = use_default_stores(monkeypatch, store_uri, tmp_path)
    log_records(tracking.store, tracking.artifacts, tmp_path / "wal", _MIXED)
    table = loopml.serving.prediction_rows("e", columns=["age"])
    assert isinstance(table, pa.Table)
    assert table.column("age").to_pylist() == [31.0, 40.0, 52.0, 1.5, 2.5, None]
    assert table.column("label").to_pylist() == [None] * 6
    with pytest.raises(DeploymentNotFound, match="project 'p'"):
        loopml.serving.prediction_rows("nowhere")
    assert isinstance(read_prediction_rows(tracking.store, tracking.artifacts, "e"), PredictionRows)
