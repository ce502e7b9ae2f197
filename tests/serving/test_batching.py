"""How a batch's DataFrame is built: the fast 2-D paths must equal pandas' own."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from loopml.serving._batching import _frame, _merge
from loopml.serving._payloads import FloatRows, to_columns

_NAMES = ["a", "b", "c"]
_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**40), 2**40),
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)


@given(
    st.integers(1, 5).flatmap(
        lambda n: st.lists(st.lists(_value, min_size=n, max_size=n), min_size=3, max_size=3)
    )
)
def test_the_fast_frame_equals_the_dict_frame(columns_values: list[list[object]]) -> None:
    columns = dict(zip(_NAMES, columns_values, strict=True))
    fast = _frame(columns, _NAMES)
    pd.testing.assert_frame_equal(fast, pd.DataFrame(columns))


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=4))
def test_columns_in_another_order_come_back_in_signature_order(values: list[float]) -> None:
    columns = {"b": values, "a": values[::-1]}
    fast = _frame(columns, ["a", "b"])
    assert list(fast.columns) == ["a", "b"]
    assert fast["a"].tolist() == values[::-1]
    assert fast["b"].tolist() == values


def test_merge_pads_columns_a_request_lacks() -> None:
    merged = _merge([{"a": [1, 2]}, {"a": [3], "b": ["x"]}])
    assert merged == {"a": [1, 2, 3], "b": [None, None, "x"]}


_float_rows = st.integers(1, 6).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(allow_infinity=False), min_size=3, max_size=3), min_size=n, max_size=n
    )
)


@given(_float_rows)
def test_float_rows_make_the_frame_their_columns_make(rows: list[list[float]]) -> None:
    payload = FloatRows(tuple(_NAMES), np.array(rows, dtype=np.float64))
    from_columns = _frame(to_columns(payload), _NAMES)
    pd.testing.assert_frame_equal(_frame(payload, _NAMES), from_columns)


def test_merged_float_rows_stay_one_array_when_their_columns_agree() -> None:
    first = FloatRows(("a", "b"), np.array([[1.0, 2.0]]))
    second = FloatRows(("a", "b"), np.array([[3.0, 4.0], [5.0, 6.0]]))
    merged = _merge([first, second])
    assert isinstance(merged, FloatRows)
    assert merged.values.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def test_float_rows_merge_with_columns_as_columns() -> None:
    rows = FloatRows(("b", "a"), np.array([[1.0, 2.0]]))
    merged = _merge([rows, {"a": [3.0], "c": ["x"]}])
    assert merged == {"b": [1.0, None], "a": [2.0, 3.0], "c": [None, "x"]}
