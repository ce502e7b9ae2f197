"""Request bodies: the float fast path must agree with the general parser or step aside."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.serving._payloads import (
    FloatRows,
    PayloadError,
    PayloadLimits,
    first_value,
    json_depth,
    parse_csv,
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


# -- issue 12: bounds ----------------------------------------------------------------------

_key = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_records = st.lists(st.dictionaries(_key, st.integers(0, 9), max_size=4), min_size=1, max_size=8)


@given(records=_records, taken=st.sets(_key, min_size=1))
def test_unknown_keys_are_refused_naming_the_first_and_known_ones_parse_as_before(
    records: list[dict[str, int]], taken: set[str]
) -> None:
    """Issue 12 item 11: with the endpoint's column names, a record key outside them is a
    PayloadError naming it (raised before columns are built); otherwise the columns are
    exactly those parsed without names."""
    seen = list(dict.fromkeys(k for record in records for k in record))
    unknown = [k for k in seen if k not in taken]
    body = {"records": records}
    if not seen:
        return  # no columns at all: the signature check's business, not the parser's
    if unknown:
        with pytest.raises(PayloadError, match=f"unknown keys {unknown[0]!r}"):
            parse_predict_body(body, taken)
    else:
        assert parse_predict_body(body, taken) == parse_predict_body(body)


def test_rows_columns_and_cells_are_capped() -> None:
    """Issue 12 item 11: explicit caps on rows, columns and rows x columns cells."""
    limits = PayloadLimits(max_rows=10, max_columns=3, max_cells=12)
    with pytest.raises(PayloadError, match="at most 10 rows"):
        parse_predict_body({"records": [{"a": 1}] * 11}, None, limits)
    with pytest.raises(PayloadError, match="at most 3 columns"):
        parse_predict_body({"records": [{"a": 1, "b": 2}, {"c": 3, "d": 4}]}, None, limits)
    with pytest.raises(PayloadError, match="at most 12 cells"):  # mostly missing keys
        parse_predict_body({"records": [{"a": 1, "b": 2, "c": 3}] + [{}] * 4}, None, limits)
    with pytest.raises(PayloadError, match="at most 3 columns"):
        parse_predict_body(
            {"dataframe_split": {"columns": list("abcd"), "data": [[1] * 4]}}, None, limits
        )
    with pytest.raises(PayloadError, match="at most 3 columns"):
        parse_csv(b"a,b,c,d\n1,2,3,4\n", None, limits)
    with pytest.raises(PayloadError, match="at most 12 cells"):
        parse_csv(b"a,b,c\n" + b"1,2,3\n" * 5, None, limits)
    wide = b'{"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[1, 2, 3, 4]]}}'
    with pytest.raises(PayloadError, match="at most 3 columns"):
        parse_float_split(wide, None, limits)
    with pytest.raises(PayloadError, match="unknown keys 'd'"):
        parse_float_split(wide, {"a", "b", "c"})
    with pytest.raises(PayloadError, match="unknown keys 'x'"):
        parse_csv(b"a,x\n1,2\n", {"a"})
    with pytest.raises(ValueError, match="max_rows"):
        PayloadLimits(max_rows=0)


_json_values = st.recursive(
    st.one_of(
        st.integers(),
        st.text(alphabet='[]{}"\\ab,:', max_size=6),  # brackets, quotes, escapes in strings
        st.booleans(),
        st.none(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


@given(value=_json_values, limit=st.integers(1, 6))
def test_json_depth_on_the_bytes_agrees_with_the_decoded_value(value: object, limit: int) -> None:
    """Issue 12 item 14: a body deeper than the limit is a PayloadError (not a crash), and
    only then, whatever brackets, quotes or escapes its strings hold."""
    body = json.dumps(value).encode()
    if json_depth(value) > limit:
        with pytest.raises(PayloadError, match=f"nested at most {limit}"):
            parse_json(body, limit)
    else:
        assert parse_json(body, limit) == value


def test_very_deep_bodies_are_payload_errors() -> None:
    """Issue 12 item 14: simdjson's and orjson's depth errors never escape as a 500."""
    deep = b'{"dataframe_split": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    assert parse_float_split(deep) is None
    with pytest.raises(PayloadError, match="nested at most 32"):
        parse_json(deep)
