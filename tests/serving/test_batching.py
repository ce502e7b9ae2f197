"""How a batch's DataFrame is built: the fast 2-D path must equal pandas' own."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from loopml.serving._batching import _frame, _merge

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
