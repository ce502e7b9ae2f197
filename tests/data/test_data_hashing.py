"""The content hash: what it depends on (values, nulls, names, types, order) and what not."""

from __future__ import annotations

import itertools
import random
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loopml.data._hashing import ContentHasher, content_hash
from loopml.data._sources import open_source
from loopml.errors import InvalidParameter


def sample() -> pa.Table:
    return pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "x": [0.5, None, 2.25, float("nan"), 3.0, -1.0],
            "s": ["a", "bb", None, "", "dd", "é"],
            "b": [True, None, False, True, False, True],
            "l": [[1, 2], None, [], [3], [None, 4], [5, 6, 7]],
            "st": [
                {"p": 1, "q": "u"},
                None,
                {"p": None, "q": "v"},
                {"p": 3, "q": None},
                {"p": 4, "q": "w"},
                {"p": 5, "q": "x"},
            ],
            "m": pa.array(
                [[("k", 1)], None, [], [("a", 2), ("b", None)], [("c", 3)], [("d", 4)]],
                pa.map_(pa.string(), pa.int64()),
            ),
            "t": pa.array([0, 1, None, 3, 4, 5], pa.timestamp("us", "UTC")),
            "d": pa.array([1, 2, 3, None, 5, 6], pa.decimal128(10, 2)),
        }
    )


def hash_batches(table: pa.Table, sizes: list[int], keys: tuple[str, ...] = ()) -> str:
    hasher = ContentHasher(table.schema, keys)
    start = 0
    for size in sizes:
        for batch in table.slice(start, size).to_batches():
            hasher.update(batch)
        start += size
    assert start >= table.num_rows
    return hasher.hexdigest()


def with_value(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


def test_the_hash_is_a_sha256_hex_digest() -> None:
    digest = content_hash(sample())
    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_column_order_does_not_matter() -> None:
    table = sample()
    names = table.column_names
    assert content_hash(table) == content_hash(table.select(names[::-1]))


@pytest.mark.parametrize("sizes", [[1] * 6, [2, 4], [5, 1], [3, 3], [0, 6]])
def test_batch_boundaries_do_not_matter(sizes: list[int]) -> None:
    table = sample()
    assert hash_batches(table, sizes) == content_hash(table)


def test_sliced_arrays_hash_like_their_copies() -> None:
    # Arrow slices keep an offset into shared buffers; only the visible part counts.
    table = sample()
    sliced = table.slice(2, 3)
    copied = pa.Table.from_pylist(sliced.to_pylist(), schema=table.schema)
    assert content_hash(sliced) == content_hash(copied)


def test_pandas_pyarrow_and_polars_inputs_hash_alike() -> None:
    table = pa.table(
        {
            "i": pa.array([1, None, 3], pa.int64()),
            "f": [1.5, None, -2.0],
            "s": ["x", "y", None],
            "b": [True, False, None],
            "t": pa.array([0, 10**9, None], pa.timestamp("us")),
        }
    )
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "f": [1.5, np.nan, -2.0],
            "s": ["x", "y", None],
            "b": pd.array([True, False, None], dtype="boolean"),
            "t": pd.to_datetime([0, 10**12, None], unit="ns"),
        }
    )
    polars_frame = pl.DataFrame(table)
    hashes = set()
    for data in (table, frame, polars_frame):
        source = open_source(data)
        hashes.add(content_hash(pa.Table.from_batches(list(source.batches()), source.schema)))
    assert len(hashes) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"row_group_size": 1, "compression": "snappy"},
        {"row_group_size": 4, "compression": "gzip", "use_dictionary": False},
        {"row_group_size": 1000, "compression": "none", "data_page_version": "2.0"},
        {"row_group_size": 2, "compression": "zstd", "use_byte_stream_split": ["x"]},
    ],
)
def test_parquet_encoding_does_not_matter(tmp_path: Path, options: dict[str, object]) -> None:
    table = sample()
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, **options)  # type: ignore[arg-type]
    source = open_source(path)
    hasher = ContentHasher(source.schema)
    for batch in source.batches():
        hasher.update(batch)
    assert hasher.hexdigest() == content_hash(table)


def test_narrow_and_dictionary_types_hash_as_their_canonical_type() -> None:
    plain = pa.table({"n": pa.array([1, 2, 1], pa.int64()), "s": ["a", "b", "a"]})
    narrow = pa.table(
        {
            "n": pa.array([1, 2, 1], pa.uint8()),
            "s": pa.array(["a", "b", "a"]).dictionary_encode(),
        }
    )
    assert content_hash(plain) == content_hash(narrow)


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [
        ("id", 0, 100),
        ("x", 0, 0.25),
        ("s", 1, "bc"),
        ("b", 0, False),
        ("l", 0, [2, 1]),
        ("d", 0, 7),
    ],
)
def test_a_changed_value_changes_the_hash(column: str, row: int, value: object) -> None:
    table = sample()
    assert content_hash(with_value(table, column, row, value)) != content_hash(table)


@pytest.mark.parametrize("column", ["id", "x", "s", "b", "l", "st", "m", "t", "d"])
def test_a_new_null_changes_the_hash(column: str) -> None:
    table = sample()
    assert content_hash(with_value(table, column, 0, None)) != content_hash(table)


def test_nan_and_null_hash_differently() -> None:
    nan = pa.table({"x": [1.0, float("nan")]})
    null = pa.table({"x": [1.0, None]})
    assert content_hash(nan) != content_hash(null)


def test_every_nan_payload_hashes_alike() -> None:
    quiet = np.array([1.0, np.nan])
    payload = quiet.copy()
    payload.view(np.uint64)[1] = struct.unpack("<Q", struct.pack("<d", float("nan")))[0] | 0xBEEF
    assert np.isnan(payload[1])
    assert content_hash(pa.table({"x": quiet})) == content_hash(pa.table({"x": payload}))


def test_negative_zero_hashes_differently_from_zero() -> None:
    # Documented: floats are hashed by their bits, except NaN.
    assert content_hash(pa.table({"x": [0.0]})) != content_hash(pa.table({"x": [-0.0]}))


def test_string_boundaries_matter() -> None:
    assert content_hash(pa.table({"s": ["ab", "c"]})) != content_hash(pa.table({"s": ["a", "bc"]}))


def test_list_boundaries_matter() -> None:
    left = pa.table({"l": [[1, 2], [3]]})
    right = pa.table({"l": [[1], [2, 3]]})
    assert content_hash(left) != content_hash(right)


def test_names_and_types_matter() -> None:
    table = pa.table({"a": [1, 2]})
    assert content_hash(table) != content_hash(pa.table({"b": [1, 2]}))
    assert content_hash(table) != content_hash(pa.table({"a": [1.0, 2.0]}))
    assert content_hash(table) != content_hash(pa.table({"a": [1, 2], "c": [None, None]}))


def test_empty_tables_hash_by_their_schema() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert content_hash(empty) == content_hash(empty)
    assert content_hash(empty) != content_hash(pa.table({"a": pa.array([], pa.float64())}))
    assert content_hash(empty) != content_hash(pa.table({"a": [0]}))


def test_row_order_matters_without_a_key() -> None:
    table = sample()
    assert content_hash(table) != content_hash(table.take([1, 0, 2, 3, 4, 5]))


def shuffled(table: pa.Table, seed: int) -> pa.Table:
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return table.take(pa.array(order, pa.int64()))


@pytest.mark.parametrize("seed", range(5))
def test_row_order_does_not_matter_with_a_key(seed: int) -> None:
    table = sample()
    expected = content_hash(table, key_columns=["id"])
    again = shuffled(table, seed)
    assert content_hash(again, key_columns=["id"]) == expected
    assert hash_batches(again, [2, 2, 2], keys=("id",)) == expected


@pytest.mark.parametrize("seed", range(5))
def test_repeated_keys_still_give_one_order(seed: int) -> None:
    table = pa.table(
        {
            "k": [1, 1, 2, 2, None, None],
            "v": [3.0, float("nan"), None, 1.0, 2.0, 2.0],
            "s": ["a", "b", "c", "d", None, "e"],
            "l": [[1], [2], [3], [4], [5], [5, 6]],
        }
    )
    assert content_hash(shuffled(table, seed), ["k"]) == content_hash(table, ["k"])


def test_the_order_keys_are_listed_in_does_not_matter() -> None:
    table = pa.table({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [1, 2, 3]})
    assert content_hash(table, ["a", "b"]) == content_hash(shuffled(table, 1), ["b", "a"])


def test_declaring_a_key_is_part_of_the_identity() -> None:
    table = pa.table({"id": [1, 2, 3]})
    assert content_hash(table, ["id"]) != content_hash(table)


def test_an_unknown_key_column_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="'key_columns' parameter"):
        ContentHasher(pa.schema([("a", pa.int64())]), ["b"])


def test_a_nested_key_column_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="sortable"):
        ContentHasher(pa.schema([("l", pa.list_(pa.int64()))]), ["l"])


def test_a_batch_with_other_columns_is_refused() -> None:
    hasher = ContentHasher(pa.schema([("a", pa.int64())]))
    with pytest.raises(InvalidParameter, match="'batch' parameter"):
        hasher.update(pa.record_batch({"b": [1]}))


def test_timestamp_units_of_the_same_instants_hash_alike() -> None:
    seconds = pa.table({"t": pa.array([0, 60, None], pa.timestamp("s"))})
    nanos = pa.table({"t": pa.array([0, 60 * 10**9, None], pa.timestamp("ns"))})
    assert content_hash(seconds) == content_hash(nanos)


# --- properties ------------------------------------------------------------

_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_ints = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))
_text = st.one_of(st.none(), st.text(max_size=8))
_lists = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=4))
_columns = {
    "f": (_floats, pa.float64()),
    "i": (_ints, pa.int64()),
    "s": (_text, pa.large_string()),
    "b": (st.one_of(st.none(), st.booleans()), pa.bool_()),
    "l": (_lists, pa.large_list(pa.int64())),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(min_value=0, max_value=30))
    chosen = draw(st.lists(st.sampled_from(sorted(_columns)), min_size=1, max_size=5, unique=True))
    return pa.table(
        {
            name: pa.array(
                draw(st.lists(_columns[name][0], min_size=rows, max_size=rows)), _columns[name][1]
            )
            for name in chosen
        }
    )


@settings(max_examples=150, deadline=None)
@given(table=tables(), data=st.data())
def test_permuted_and_rechunked_tables_hash_alike(table: pa.Table, data: st.DataObject) -> None:
    expected = content_hash(table)
    permutation = data.draw(st.permutations(table.column_names))
    assert content_hash(table.select(permutation)) == expected

    cuts = sorted(data.draw(st.lists(st.integers(0, table.num_rows), max_size=4)))
    bounds = [0, *cuts, table.num_rows]
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    assert hash_batches(table.select(permutation), sizes) == expected

    # Chunked columns whose chunks start at an offset into shared buffers.
    chunked = pa.concat_tables([table.slice(a, b - a) for a, b in itertools.pairwise(bounds)])
    assert content_hash(chunked) == expected


@settings(max_examples=80, deadline=None)
@given(table=tables(), seed=st.integers(0, 1000))
def test_keyed_hash_ignores_row_order(table: pa.Table, seed: int) -> None:
    # Keys must be sortable; nested columns (l) still break ties between repeated keys.
    keys = [n for n in table.column_names if n != "l"][:1]
    assume(keys)
    key = keys[0]
    assert content_hash(shuffled(table, seed), [key]) == content_hash(table, [key])
