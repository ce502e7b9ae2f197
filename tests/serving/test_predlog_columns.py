"""Typed columns in prediction-log segments: types, signatures, old WALs, hostile staged files."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from predlog_support import log_records, stored_segments

from loopml.artifacts import ArtifactStore
from loopml.registry import ColumnSpec, Signature
from loopml.serving import _predlog
from loopml.serving._payloads import FloatRows
from loopml.serving._predlog import QUARANTINE, SEGMENT_SCHEMA, PredictionLog, PredictionRecord
from loopml.serving._predlog_columns import (
    MAX_REQUEST_ROWS,
    check_typed,
    common_type,
    typed_columns,
    typed_values,
)
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._wal import MAGIC, encode_frame, wal_name
from loopml.store import Store

# Logs records (with signatures noted: model version -> signature) and returns the segment.
Logged = Callable[..., pa.Table]


@pytest.fixture
def logged(store: Store, artifacts: ArtifactStore, tmp_path: Path) -> Logged:
    """Log records in one flush and return the one segment written."""

    def log(
        records: list[PredictionRecord], signatures: dict[str, Signature | None] | None = None
    ) -> pa.Table:
        log_records(store, artifacts, tmp_path / "wal", records, signatures)
        (segment,) = stored_segments(store, artifacts)
        return segment

    return log


def _record(rid: str, inputs: Any, output: Any, version: str = "m/1") -> PredictionRecord:
    return PredictionRecord(rid, "e", "primary:m@champion", version, inputs, output, 1.0, ts=1000)


def test_each_feature_is_a_typed_list_column_next_to_the_json(
    store: Store, artifacts: ArtifactStore, logged: Logged
) -> None:
    segment = logged(
        [
            _record("a", {"age": [31, 40], "city": ["x", None], "ok": [True, False]}, [0, 1]),
            _record("b", FloatRows(("age", "w"), np.array([[1.5, 2.0]])), [1]),
            _record("c", {"amount": 12.5}, 0.9),  # one row, given as single values
        ],
    )
    assert segment.schema.names[: len(SEGMENT_SCHEMA)] == SEGMENT_SCHEMA.names
    assert segment.column("rows").to_pylist() == [2, 1, 1]
    assert segment.schema.field("in.age").type == pa.list_(pa.float64())  # ints and floats
    assert segment.column("in.age").to_pylist() == [[31.0, 40.0], [1.5], None]
    assert segment.column("in.city").to_pylist() == [["x", None], None, None]
    assert segment.schema.field("in.ok").type == pa.list_(pa.bool_())
    assert segment.column("in.amount").to_pylist() == [None, None, [12.5]]
    assert segment.column("in.w").to_pylist() == [None, [2.0], None]
    assert segment.schema.field("out.prediction").type == pa.list_(pa.float64())
    assert segment.column("out.prediction").to_pylist() == [[0, 1], [1], [0.9]]
    assert check_typed(segment.schema, segment.select(["rows", *_typed(segment)])) is None
    # The JSON is as before: readers of the old columns see no change.
    frame = read_predictions(store, artifacts, "e")
    assert orjson.loads(frame["inputs"][0]) == {
        "age": [31, 40],
        "city": ["x", None],
        "ok": [True, False],
    }


def _typed(table: pa.Table) -> list[str]:
    return [n for n in table.column_names if n.startswith("in.") or n == "out.prediction"]


def test_the_signature_types_a_feature_when_every_value_fits_it(logged: Logged) -> None:
    signature = Signature(
        inputs=(
            ColumnSpec("n", "integer"),
            ColumnSpec("f", "float"),
            ColumnSpec("bad", "integer"),
            ColumnSpec("when", "datetime"),
        )
    )
    segment = logged(
        [
            _record(
                "a",
                {
                    "n": [1.0, 2.0],
                    "f": [1, 2],
                    "bad": [2.5, 1.0],
                    "when": ["2024-01-01", "2024-01-02"],
                },
                [0, 1],
            )
        ],
        {"m/1": signature},
    )
    assert segment.schema.field("in.n").type == pa.list_(pa.int64())  # whole floats, as said
    assert segment.schema.field("in.f").type == pa.list_(pa.float64())
    assert segment.schema.field("in.bad").type == pa.list_(pa.float64())  # 2.5 does not fit
    assert segment.column("in.bad").to_pylist() == [[2.5, 1.0]]
    assert segment.schema.field("in.when").type == pa.list_(pa.string())


def test_without_a_signature_the_types_are_inferred(logged: Logged) -> None:
    """No version noted and none in the store: inferred, mixes kept as JSON text."""
    segment = logged(
        [
            _record(
                "a",
                {"mix": [1, "a"], "nested": [[1, 2], [3]], "none": [None, None], "big": [2**63, 1]},
                [{"p": 1}, 2],
            ),
        ],
    )
    assert segment.column("in.mix").to_pylist() == [["1", "a"]]
    assert segment.column("in.nested").to_pylist() == [["[1,2]", "[3]"]]
    assert segment.schema.field("in.none").type == pa.list_(pa.null())
    assert segment.column("in.big").to_pylist() == [[float(2**63), 1.0]]  # as Arrow reads it
    assert segment.column("out.prediction").to_pylist() == [['{"p":1}', "2"]]


def test_an_output_that_is_not_one_value_per_row_gives_null_predictions(logged: Logged) -> None:
    segment = logged([_record("a", {"x": [1, 2, 3]}, [1, 2])])
    assert segment.column("rows").to_pylist() == [3]
    assert segment.column("out.prediction").to_pylist() == [[None, None, None]]


def test_a_wal_written_by_an_earlier_version_recovers_with_typed_columns(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    """Earlier versions framed ``inputs``/``output`` as values, not JSON text."""
    folder = tmp_path / "wal"
    folder.mkdir()
    with (folder / wal_name(3)).open("wb") as handle:
        handle.write(MAGIC)
        for i in range(3):
            handle.write(encode_frame(asdict(_record(f"r{i}", {"x": [i, i + 1]}, [i, 0]))))
    with PredictionLog(folder, store, artifacts, "h") as log:
        assert log.recover() == 3
    (segment,) = stored_segments(store, artifacts)
    assert segment.column("in.x").to_pylist() == [[0, 1], [1, 2], [2, 3]]
    assert not (folder / QUARANTINE).exists()


def test_a_record_whose_json_text_is_not_json_is_set_aside(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    folder.mkdir()
    good = _predlog._frame_fields(_record("good", {"x": [1]}, [1]))
    bad = {**good, "request_id": "bad", "inputs_json": '{"x": [1'}
    with (folder / wal_name(4)).open("wb") as handle:
        handle.write(MAGIC + encode_frame(good) + encode_frame(bad))
    with PredictionLog(folder, store, artifacts, "h") as log:
        assert log.recover() == 1
    assert [p.name for p in (folder / QUARANTINE).iterdir()] == [wal_name(4)]
    assert read_predictions(store, artifacts, "e")["request_id"].tolist() == ["good"]


def _stage(folder: Path, records: list[PredictionRecord]) -> Path:
    """Stage ``records`` as a crashed flusher would have left them; the staged segment."""
    folder.mkdir()
    wal = folder / wal_name(1)
    with wal.open("wb") as handle:
        handle.write(MAGIC)
        for record in records:
            handle.write(encode_frame(_predlog._frame_fields(record)))
    _predlog._stage(wal, wal.with_suffix(".segments"))
    wal.unlink()
    (staged,) = wal.with_suffix(".segments").glob("*.parquet")
    return staged


def _rewrite(path: Path, change: Any) -> None:
    table = pq.read_table(path)
    pq.write_table(change(table), path)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda t: t.set_column(
                t.schema.get_field_index("in.x"), "in.x", pa.array([[1.0, 2.0, 3.0]])
            ),
            id="a list longer than its rows",
        ),
        pytest.param(
            lambda t: t.set_column(t.schema.get_field_index("in.x"), "in.x", pa.array([{"a": 1}])),
            id="a struct",
        ),
        pytest.param(
            lambda t: t.set_column(
                t.schema.get_field_index("rows"), "rows", pa.array([0], pa.int32())
            ),
            id="no rows",
        ),
        pytest.param(
            lambda t: t.set_column(
                t.schema.get_field_index("rows"),
                "rows",
                pa.array([MAX_REQUEST_ROWS + 1], pa.int32()),
            ),
            id="more rows than a frame holds",
        ),
        pytest.param(
            lambda t: t.set_column(
                t.schema.get_field_index("out.prediction"),
                "out.prediction",
                pa.array([None], pa.list_(pa.int64())),
            ),
            id="a null prediction list",
        ),
        pytest.param(lambda t: t.append_column("extra", pa.array([1])), id="a foreign column"),
        pytest.param(lambda t: t.drop_columns(["out.prediction"]), id="no prediction column"),
    ],
)
def test_a_staged_segment_with_bad_typed_columns_is_set_aside(
    store: Store, artifacts: ArtifactStore, tmp_path: Path, change: Any
) -> None:
    folder = tmp_path / "wal"
    staged = _stage(folder, [_record("a", {"x": [1.0, 2.0]}, [0, 1])])
    _rewrite(staged, change)
    with PredictionLog(folder, store, artifacts, "h") as log:
        assert log.recover() == 0
    assert len(list((folder / QUARANTINE).iterdir())) == 1
    assert stored_segments(store, artifacts) == []


def test_a_segment_staged_by_an_earlier_version_is_stored_as_it_is(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    staged = _stage(folder, [_record("a", {"x": [1.0]}, [0])])
    _rewrite(staged, lambda t: t.select(SEGMENT_SCHEMA.names))
    with PredictionLog(folder, store, artifacts, "h") as log:
        assert log.recover() == 1
    (segment,) = stored_segments(store, artifacts)
    assert segment.schema.equals(SEGMENT_SCHEMA)


_SCALARS = {
    "bool": (st.booleans(), pa.bool_()),
    "int": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    "float": (st.floats(allow_nan=False, allow_infinity=False), pa.float64()),
    "text": (st.text(max_size=8), pa.string()),
}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(_SCALARS)),
    data=st.data(),
)
def test_values_of_one_kind_keep_their_type_and_values(kind: str, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.none() | _SCALARS[kind][0], min_size=1, max_size=20))
    array = typed_values(values)
    if all(v is None for v in values):
        assert array.type == pa.null()
    else:
        assert array.type == _SCALARS[kind][1]
    assert array.to_pylist() == values


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.none() | st.integers(-5, 5) | st.floats(-5, 5) | st.text(max_size=3),
            min_size=1,
            max_size=4,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_typed_columns_hold_each_request_s_values(requests: list[list[Any]]) -> None:
    """Every request's values come back from the typed column (numbers as numbers, or as
    their JSON text when the segment mixes them with text)."""
    typed, damaged = typed_columns(
        [orjson.dumps({"x": values}).decode() for values in requests],
        [orjson.dumps([0] * len(values)).decode() for values in requests],
        ["m/1"] * len(requests),
    )
    assert damaged == 0
    assert typed["rows"].to_pylist() == [len(v) for v in requests]
    column = typed["in.x"]
    texts = column.type.value_type == pa.string()
    for values, got in zip(requests, column.to_pylist(), strict=True):
        for value, read in zip(values, got, strict=True):
            if value is None:
                assert read is None
            elif texts and not isinstance(value, str):
                assert orjson.loads(read) == value
            else:
                assert read == value or (isinstance(value, float) and math.isclose(read, value))


def test_common_type_joins_numbers_as_floats_and_anything_else_as_text() -> None:
    assert common_type([pa.null(), pa.int64()]) == pa.int64()
    assert common_type([pa.int64(), pa.float64()]) == pa.float64()
    assert common_type([pa.bool_(), pa.int64()]) == pa.string()
    assert common_type([]) == pa.null()


_VALUES = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | st.text(max_size=2)


@st.composite
def _requests(draw: st.DrawFn) -> list[Any]:
    """Requests as the server logs them: objects of equal-length lists, some with floats only."""
    kinds = {
        name: draw(st.sampled_from(["int", "float", "mixed", "text", "bool"])) for name in "abc"
    }
    pick = {
        "int": st.none() | st.integers(-3, 3),
        "float": st.floats(-3, 3) | st.integers(-3, 3),
        "mixed": _VALUES,
        "text": st.text(max_size=2),
        "bool": st.booleans(),
    }
    requests: list[Any] = []
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 3))
        names = draw(st.sets(st.sampled_from("abc"), min_size=1))
        requests.append(
            {
                name: draw(st.lists(pick[kinds[name]], min_size=n, max_size=n))
                for name in sorted(names)
            }
        )
    return requests


@settings(max_examples=100, deadline=None)
@given(_requests(), st.data())
def test_the_bulk_conversion_gives_what_the_request_by_request_one_gives(
    requests: list[Any], data: st.DataObject
) -> None:
    from loopml.serving._predlog_columns import (
        _each_request,
        _json_lines,
        _json_predictions,
        _list_column,
        _predictions,
        _retyped,
    )

    outputs = [
        data.draw(st.lists(_VALUES, min_size=n, max_size=n) | _VALUES)
        for n in (len(next(iter(r.values()))) for r in requests)
    ]
    texts = [orjson.dumps(r).decode() for r in requests]
    output_texts = [orjson.dumps(o).decode() for o in outputs]
    rows, present = _each_request(requests, outputs)
    general = {name: _list_column(present[name], rows, None) for name in present}
    fast = _json_lines(texts)
    if fast is not None:  # else a mix Arrow will not read: the request-by-request path only
        assert fast[0].tolist() == rows.tolist()
        assert sorted(fast[1]) == sorted(general)
        for name, column in fast[1].items():
            bulk = _retyped(column, None)
            assert bulk.type == general[name].type, name
            assert bulk.to_pylist() == general[name].to_pylist(), name
    predicted = _json_predictions(output_texts, rows)
    if predicted is not None:
        one_by_one = _list_column(dict(enumerate(_predictions(outputs, rows))), rows, None)
        assert predicted.type == one_by_one.type
        assert predicted.to_pylist() == one_by_one.to_pylist()


def test_float_rows_convert_in_bulk_like_one_by_one() -> None:
    from loopml.serving._predlog_columns import _each_request, _float_rows, _list_column

    requests = [FloatRows(("a", "b"), np.arange(2.0 * n).reshape(n, 2)) for n in (1, 3, 2)]
    fast = _float_rows(requests)
    assert fast is not None
    rows, present = _each_request(requests, [None] * 3)
    for name in ("a", "b"):
        assert fast[1][name].to_pylist() == _list_column(present[name], rows, None).to_pylist()
    assert _float_rows([*requests, FloatRows(("b", "a"), np.zeros((1, 2)))]) is None


def test_what_the_server_logs_is_converted_in_bulk() -> None:
    from loopml.serving._predlog_columns import _json_lines, _json_predictions

    texts = ['{"a":[1,2],"b":["x","y"]}', '{"a":[0.5]}']
    fast = _json_lines(texts)
    assert fast is not None
    assert fast[0].tolist() == [2, 1]
    assert fast[1]["a"].to_pylist() == [[1.0, 2.0], [0.5]]
    assert _json_predictions(["[0,1]", "[1]"], fast[0]) is not None
    # What Arrow's reader would get wrong, or read otherwise, goes request by request.
    assert _json_lines(['{"a":[null,0]}']) is None
    assert _json_lines(['{"a":[9223372036854775808]}']) is not None  # a float either way
    assert _json_lines(['{"a":["2024-01-01"]}']) is None  # Arrow would read a date-time
    assert _json_lines(['{"a":[1.5]}', '{"a":[true]}']) is None
