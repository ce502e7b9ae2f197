"""Request bodies: the float fast path must agree with the general parser or step aside."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.serving._payloads import (
    FloatRows,
    first_value,
    parse_float_split,
    parse_json,
    parse_predict_body,
    row_count,
    to_columns,
)

_number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53),
)
_names = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6),
    min_size=1,
    max_size=5,
    unique=True,
)


@st.composite
def _split_bodies(draw: st.DrawFn) -> tuple[list[str], list[list[float | int]], bool]:
    names = draw(_names)
    rows = draw(st.lists(st.lists(_number, min_size=len(names), max_size=len(names)), min_size=1))
    return names, rows, draw(st.booleans())


@given(_split_bodies())
def test_numbers_parse_as_the_general_parser_reads_them(
    case: tuple[list[str], list[list[float | int]], bool],
) -> None:
    names, rows, with_index = case
    split: dict[str, object] = {"columns": names, "data": rows}
    if with_index:
        split["index"] = list(range(len(rows)))
    body = json.dumps({"dataframe_split": split}).encode()
    general = parse_predict_body(parse_json(body))

    fast = parse_float_split(body)

    if b"\\" in body:  # names with escapes are left to the general parser
        assert fast is None
        return
    assert isinstance(fast, FloatRows)
    assert list(fast.names) == names
    assert fast.values.dtype == np.float64
    assert fast.values.shape == (len(rows), len(names))
    as_floats = {name: [float(v) for v in column] for name, column in general.items()}
    assert to_columns(fast) == as_floats
    assert row_count(fast) == row_count(general) == len(rows)
    assert first_value(fast, names[0]) == float(rows[0][0])
    assert first_value(fast, "\x00absent") is None


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, True]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, None]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, "2"]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, [2.0]]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0], [2.0, 3.0]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0, 3.0], [4.0]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[[1.0, 2.0], []]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [1.0, 2.0]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": []}},
        {"dataframe_split": {"columns": [], "data": [[]]}},
        {"dataframe_split": {"columns": ["a", "a"], "data": [[1.0, 2.0]]}},
        {"dataframe_split": {"columns": ["a", 1], "data": [[1.0, 2.0]]}},
        {"dataframe_split": {"columns": ['a"b', "c"], "data": [[1.0, 2.0]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]], "index": ["x"]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]], "index": [[0, 1]]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]], "other": 1}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}, "records": []},
        {"records": [{"a": 1.0, "b": 2.0}]},
        {"columns": {"a": [1.0], "b": [2.0]}},
        [[1.0, 2.0]],
    ],
)
def test_anything_but_plain_numbers_is_left_to_the_general_parser(body: object) -> None:
    assert parse_float_split(json.dumps(body).encode()) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b'{"dataframe_split": {"columns": ["a"], "data": [[NaN]]}}',
        b'{"dataframe_split": {"columns": ["a"], "data": [[1e999]]}}',
        b'{"dataframe_split": {"columns": ["a"], "data": [[1.0]]}} trailing',
        b'{"dataframe_split": {"columns": ["a"], "data": [[1.0]]}, "dataframe_split": {}}',
        b'{"dataframe_split": {"columns": ["a"], "data": [[1.0]], "data": [[2.0]]}}',
        b'{"dataframe_split": {"columns": ["\\u0061"], "data": [[1.0]]}}',
        b'\xff\xfe{"dataframe_split": 1}',
    ],
)
def test_malformed_or_unusual_json_is_left_to_the_general_parser(raw: bytes) -> None:
    assert parse_float_split(raw) is None


def test_a_bracket_inside_a_column_name_is_not_mistaken_for_a_row() -> None:
    body = json.dumps({"dataframe_split": {"columns": ["x[0]", "y]"], "data": [[1, 2.5]]}})
    rows = parse_float_split(body.encode())
    assert rows is not None
    assert rows.names == ("x[0]", "y]")
    assert rows.values.tolist() == [[1.0, 2.5]]


def test_logged_columns_are_the_rows_by_column() -> None:
    body = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}'
    rows = parse_float_split(body)
    assert rows is not None
    logged = {name: column.tolist() for name, column in rows.columns_json().items()}
    assert logged == {"a": [1.0, 3.0], "b": [2.0, 4.0]}
