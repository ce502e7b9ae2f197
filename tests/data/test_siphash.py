"""The NumPy SipHash equals pandas' hash_array, which named every stored category."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pandas.util import hash_array

from loopml.data._siphash import siphash_strings
from loopml.data._sketches import hash_objects


def _pandas(values: list[str] | list[bytes]) -> np.ndarray:
    objects = np.empty(len(values), dtype=object)
    objects[:] = values
    return hash_array(objects, categorize=False)


@given(st.lists(st.text(), max_size=40))
def test_strings_hash_as_pandas_hashes_them(values: list[str]) -> None:
    np.testing.assert_array_equal(siphash_strings(pa.array(values, pa.string())), _pandas(values))


@given(st.lists(st.binary(max_size=70), max_size=40))
def test_bytes_hash_as_pandas_hashes_them(values: list[bytes]) -> None:
    np.testing.assert_array_equal(siphash_strings(pa.array(values, pa.binary())), _pandas(values))


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.string_view()])
def test_every_string_type_and_slices_and_word_boundaries(kind: pa.DataType) -> None:
    # Lengths around the 8-byte words and the length byte (mod 256), and multi-byte UTF-8.
    values = ["", "a", "é", "漢字😀", *("x" * n for n in (7, 8, 9, 15, 16, 255, 256, 257, 1000))]
    arr = pa.array(values * 3, kind)
    np.testing.assert_array_equal(siphash_strings(arr), _pandas(values * 3))
    np.testing.assert_array_equal(siphash_strings(arr.slice(5, 20)), _pandas((values * 3)[5:25]))
    assert siphash_strings(arr.slice(0, 0)).dtype == np.uint64


def test_hash_objects_of_any_values_hashes_their_text() -> None:
    values = pa.array([1.5, 2.0, 30.25])
    np.testing.assert_array_equal(
        hash_objects(values, generic=True), _pandas(["1.5", "2.0", "30.25"])
    )
    assert hash_objects(pa.array([], pa.string())).size == 0
