"""Profiles: exact answers on small tables, sketches on large ones, batch invariance."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.data import _sketches
from loopml.data._profile import (
    QUANTILE_KEYS,
    ColumnProfile,
    Profile,
    build_profile,
    profile_table,
)
from loopml.data._sketches import DistinctSketch, hash_uint64, quantiles
from loopml.errors import DataSourceError

LEVELS = [float(k) for k in QUANTILE_KEYS]


def _batches(table: pa.Table, sizes: list[int]) -> list[pa.RecordBatch]:
    """Split ``table`` into batches of the given sizes (the rest in a last batch)."""
    out, start = [], 0
    for size in sizes:
        out.extend(table.slice(start, size).to_batches())
        start += size
    out.extend(table.slice(start).to_batches())
    return [b for b in out if b.num_rows] or table.slice(0, 0).to_batches()


# --- exact answers on small tables ---------------------------------------------


def test_numeric_column_matches_numpy() -> None:
    values = [3.5, -1.0, 2.25, None, 8.0, 2.25, 0.0, 7.5]
    p = profile_table(pa.table({"x": values}))
    finite = np.array([v for v in values if v is not None])
    c = p.columns["x"]
    assert p.row_count == 8
    assert (c.kind, c.arrow_type, c.count, c.missing, c.distinct) == ("numeric", "double", 7, 1, 6)
    assert c.distinct_exact
    assert (c.min, c.max) == (-1.0, 8.0)
    assert c.mean == pytest.approx(finite.mean())
    assert c.std == pytest.approx(finite.std())
    assert c.quantiles is not None
    assert list(c.quantiles) == list(QUANTILE_KEYS)
    assert list(c.quantiles.values()) == pytest.approx(np.quantile(finite, LEVELS).tolist())
    assert c.histogram is not None
    assert len(c.histogram.edges) == 21 and len(c.histogram.counts) == 20
    assert (c.histogram.edges[0], c.histogram.edges[-1]) == (-1.0, 8.0)
    assert sum(c.histogram.counts) == c.count
    assert c.histogram.counts[0] == 1 and c.histogram.counts[-1] == 1  # min and max
    assert c.top_k is None and c.categories is None


def test_integer_column_statistics_are_floats() -> None:
    c = profile_table(pa.table({"n": pa.array([1, 2, 2, 3, None], pa.int64())})).columns["n"]
    assert (c.count, c.missing, c.distinct, c.min, c.max, c.mean) == (4, 1, 3, 1.0, 3.0, 2.0)
    assert all(type(v) is float for v in (c.min, c.max, c.mean, c.std))
    assert c.quantiles == {
        k: float(v) for k, v in zip(QUANTILE_KEYS, np.quantile([1, 2, 2, 3], LEVELS), strict=True)
    }


def test_nan_is_missing_and_inf_only_in_min_max() -> None:
    c = profile_table(pa.table({"x": [1.0, math.nan, math.inf, 3.0, -math.inf]})).columns["x"]
    assert (c.count, c.missing, c.distinct) == (4, 1, 4)
    assert (c.min, c.max) == (-math.inf, math.inf)
    assert c.mean == 2.0 and c.std == 1.0
    assert c.histogram is not None and sum(c.histogram.counts) == 2
    assert c.quantiles is not None and c.quantiles["0.5"] == 2.0


def test_negative_zero_is_zero() -> None:
    assert profile_table(pa.table({"x": [0.0, -0.0]})).columns["x"].distinct == 1


def test_constant_column_has_a_histogram() -> None:
    c = profile_table(pa.table({"x": [5.0] * 10})).columns["x"]
    assert c.std == 0.0 and c.histogram is not None
    assert c.histogram.edges[0] < 5.0 < c.histogram.edges[-1]
    assert sum(c.histogram.counts) == 10


def test_categorical_top_k_order_and_categories() -> None:
    values = ["b", "a", "c", "a", None, "b", "a", "d", "c"]
    c = profile_table(pa.table({"s": values})).columns["s"]
    assert (c.kind, c.count, c.missing, c.distinct, c.min, c.max) == (
        "categorical",
        8,
        1,
        4,
        "a",
        "d",
    )
    # Most frequent first, ties broken by ascending value.
    assert c.top_k == (("a", 3), ("b", 2), ("c", 2), ("d", 1))
    assert c.categories == ("a", "b", "c", "d")
    assert c.mean is None and c.quantiles is None and c.histogram is None


def test_categorical_versus_text() -> None:
    n = 1000
    table = pa.table(
        {
            "few": [f"k{i % 5}" for i in range(n)],
            "unique": [f"id-{i}" for i in range(n)],
            "sixty": [f"v{i % 60}" for i in range(n)],  # more than 50 values
            "small": ["x", "y", "z"] + [None] * (n - 3),  # < 100 values: categorical
        }
    )
    p = profile_table(table)
    assert p.columns["few"].kind == "categorical"
    assert p.columns["unique"].kind == "text" and p.columns["unique"].categories is None
    assert p.columns["sixty"].kind == "text"
    assert p.columns["small"].kind == "categorical"
    top = p.columns["unique"].top_k
    assert top is not None and len(top) == 20 and top[0] == ("id-0", 1)


def test_boolean_column() -> None:
    c = profile_table(pa.table({"b": [True, False, True, None, True]})).columns["b"]
    assert (c.kind, c.count, c.missing, c.distinct, c.mean) == ("boolean", 4, 1, 2, 0.75)
    assert c.top_k == (("True", 3), ("False", 1))
    assert c.min is None and c.categories is None


def test_datetime_with_time_zone() -> None:
    paris = timezone(timedelta(hours=1))
    stamps = [datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), None, datetime(2023, 6, 1, tzinfo=UTC)]
    arr = pa.array(stamps, pa.timestamp("ns", "UTC")).cast(pa.timestamp("ns", "+01:00"))
    dates = pa.array([19000, None, 18000], pa.date32())
    p = profile_table(pa.table({"t": arr, "d": dates}))
    t = p.columns["t"]
    assert (t.kind, t.arrow_type, t.count, t.missing, t.distinct) == (
        "datetime",
        "timestamp[ns, tz=+01:00]",
        2,
        1,
        2,
    )
    assert isinstance(t.min, str) and isinstance(t.max, str)
    assert datetime.fromisoformat(t.min) == datetime(2023, 6, 1, 1, tzinfo=paris)
    assert datetime.fromisoformat(t.max) == stamps[0]
    assert t.max.endswith("+01:00")
    assert (p.columns["d"].min, p.columns["d"].max) == ("2019-04-14", "2022-01-08")


def test_all_null_columns() -> None:
    n = 4
    table = pa.table(
        {
            "f": pa.nulls(n, pa.float64()),
            "s": pa.nulls(n, pa.large_string()),
            "b": pa.nulls(n, pa.bool_()),
            "t": pa.nulls(n, pa.timestamp("ns", "UTC")),
            "z": pa.nulls(n),
        }
    )
    p = profile_table(table)
    for c in p.columns.values():
        assert (c.count, c.missing, c.distinct, c.distinct_exact) == (0, n, 0, True)
        assert c.min is None and c.max is None and c.mean is None and c.histogram is None
    assert p.columns["z"].kind == "other"
    assert Profile.from_json(p.to_json()) == p


def test_empty_table() -> None:
    schema = pa.schema([("x", pa.float64()), ("s", pa.large_string()), ("b", pa.bool_())])
    p = profile_table(schema.empty_table())
    assert p.row_count == 0 and list(p.columns) == ["x", "s", "b"]
    assert all(c.count == 0 and c.missing == 0 for c in p.columns.values())
    assert build_profile(lambda: iter(()), schema) == p
    assert Profile.from_json(p.to_json()) == p


def test_other_types_get_counts_and_distinct() -> None:
    table = pa.table({"l": pa.array([[1], [2], None, [1]]), "bin": [b"a", b"b", b"a", None]})
    p = profile_table(table)
    assert (p.columns["l"].kind, p.columns["l"].distinct, p.columns["l"].missing) == ("other", 2, 1)
    assert (p.columns["bin"].kind, p.columns["bin"].distinct) == ("other", 2)


def test_unnormalised_types_are_profiled_like_normalised_ones() -> None:
    raw = pa.table(
        {
            "i": pa.array([1, 2, None], pa.int16()),
            "f": pa.array([1.5, None, 2.5], pa.float32()),
            "s": pa.array(["a", "b", "a"]).dictionary_encode(),
        }
    )
    p = profile_table(raw)
    assert (p.columns["i"].kind, p.columns["i"].mean) == ("numeric", 1.5)
    assert (p.columns["f"].kind, p.columns["f"].mean) == ("numeric", 2.0)
    assert p.columns["s"].top_k == (("a", 2), ("b", 1))


# --- sketches and large columns --------------------------------------------------


def test_distinct_is_estimated_above_the_limit() -> None:
    n = 300_000
    rng = np.random.default_rng(7)
    ints = rng.permutation(n).astype(np.int64)
    table = pa.table({"i": ints, "s": pa.array([f"user-{v}" for v in ints], pa.large_string())})
    p = profile_table(table)
    for name in ("i", "s"):
        c = p.columns[name]
        assert not c.distinct_exact
        assert c.distinct == pytest.approx(n, rel=0.05)
    assert p.columns["s"].kind == "text"


def test_distinct_is_exact_up_to_the_limit() -> None:
    limit = _sketches.DISTINCT_EXACT_LIMIT
    c = profile_table(pa.table({"i": np.arange(limit, dtype=np.int64)})).columns["i"]
    assert (c.distinct, c.distinct_exact) == (limit, True)
    c = profile_table(pa.table({"i": np.arange(limit + 1, dtype=np.int64)})).columns["i"]
    assert not c.distinct_exact


def test_distinct_sketch_ignores_grouping_and_order() -> None:
    hashes = hash_uint64(np.arange(50_000, dtype=np.uint64) % np.uint64(20_000))
    whole = DistinctSketch(limit=1000)
    whole.update(hashes)
    parts = DistinctSketch(limit=1000)
    for chunk in np.array_split(hashes[::-1], 7):
        parts.update(chunk)
    assert (whole.count, whole.exact) == (parts.count, parts.exact) == (whole.count, False)
    assert whole.count == pytest.approx(20_000, rel=0.15)


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).normal(size=200_000),
        np.random.default_rng(2).lognormal(0, 4, size=100_000),
        np.random.default_rng(3).integers(0, 7, size=100_000),
        np.r_[np.zeros(50_000), 1e300],
        np.array([4.0]),
    ],
)
def test_quantiles_equal_numpy(values: np.ndarray[Any, Any]) -> None:
    levels = [0.0, *LEVELS, 1.0]
    assert quantiles(values, levels) == np.quantile(values, levels).tolist()


def test_quantiles_from_a_sample_above_the_exact_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sketches, "_QUANTILE_EXACT_LIMIT", 5_000)
    monkeypatch.setattr(_sketches, "_QUANTILE_SAMPLE_SIZE", 4_000)
    values = np.random.default_rng(5).uniform(0, 100, size=40_000)
    table = pa.table({"x": values})
    c = profile_table(table).columns["x"]
    assert c.quantiles is not None and c.histogram is not None
    assert sum(c.histogram.counts) == 40_000  # the histogram stays exact
    for key, q in c.quantiles.items():
        assert q == pytest.approx(100 * float(key), abs=3.0)
    # The sample depends on row positions only, not on batch boundaries.
    split = build_profile(lambda: _batches(table, [123, 9_000, 77]), table.schema)
    assert split.columns["x"].quantiles == c.quantiles


def test_profile_json_is_small() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    cols: dict[str, Any] = {f"f{i}": rng.normal(size=n) for i in range(20)}
    cols |= {f"c{i}": rng.choice(["a", "b", "c", "d"], size=n) for i in range(5)}
    text = profile_table(pa.table(cols)).to_json()
    assert len(text) < 30_000


# --- batches, passes, serialisation ------------------------------------------------


def test_two_passes_only_when_a_numeric_column_needs_them() -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]})
    calls = []

    def batches() -> list[pa.RecordBatch]:
        calls.append(1)
        return list(table.to_batches(max_chunksize=1))

    assert build_profile(batches, table.schema) == profile_table(table)
    assert len(calls) == 2
    calls.clear()
    strings = table.select(["s"])

    def string_batches() -> list[pa.RecordBatch]:
        calls.append(1)
        return list(strings.to_batches())

    build_profile(string_batches, strings.schema)
    assert len(calls) == 1


def test_batches_must_match_the_schema_and_the_passes() -> None:
    table = pa.table({"x": [1.0, 2.0]})
    with pytest.raises(DataSourceError, match="schema"):
        build_profile(lambda: table.to_batches(), pa.schema([("y", pa.float64())]))
    runs = iter([table.to_batches(), table.slice(1).to_batches()])
    with pytest.raises(DataSourceError, match="changed"):
        build_profile(lambda: next(runs), table.schema)


def test_json_round_trip_is_exact() -> None:
    table = pa.table(
        {
            "x": [0.1, math.inf, None, -2.5e-300],
            "i": [1, 2, 3, None],
            "s": ["inf", "b", None, "b"],  # a string "inf" stays a string
            "b": [True, None, False, False],
            "t": pa.array([1, 2, None, 4], pa.timestamp("ns", "Europe/Paris")),
        }
    )
    p = profile_table(table)
    text = p.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    again = Profile.from_json(text)
    assert again == p
    assert Profile.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert again.columns["x"].max == math.inf and again.columns["s"].min == "b"
    assert list(again.columns) == list(p.columns)


def test_from_dict_rejects_another_format() -> None:
    d = profile_table(pa.table({"x": [1]})).to_dict() | {"format": 99}
    with pytest.raises(ValueError, match="format"):
        Profile.from_dict(d)


_APPROXIMATE_FLOATS = ("mean", "std")


def _assert_same_profile(a: Profile, b: Profile) -> None:
    assert a.row_count == b.row_count and list(a.columns) == list(b.columns)
    for name, ca in a.columns.items():
        da, db = _fields(ca), _fields(b.columns[name])
        for key in _APPROXIMATE_FLOATS:
            x, y = da.pop(key), db.pop(key)
            assert (x is None) == (y is None)
            if x is not None:
                assert x == pytest.approx(y, rel=1e-9, abs=1e-9)
        assert da == db


def _fields(c: ColumnProfile) -> dict[str, Any]:
    return dict(c.__dict__)


_floats = st.one_of(
    st.none(),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _floats,
            st.one_of(st.none(), st.integers(-(2**40), 2**40)),
            st.one_of(st.none(), st.sampled_from(["a", "b", "c", "é", ""])),
            st.one_of(st.none(), st.booleans()),
            st.one_of(st.none(), st.integers(0, 10**18)),
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=6),
)
def test_any_batch_split_gives_the_same_profile(
    rows: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[]] * 5
    table = pa.table(
        {
            "f": pa.array(columns[0], pa.float64()),
            "i": pa.array(columns[1], pa.int64()),
            "s": pa.array(columns[2], pa.large_string()),
            "b": pa.array(columns[3], pa.bool_()),
            "t": pa.array(columns[4], pa.timestamp("ns", "UTC")),
        }
    )
    whole = profile_table(table)
    split = build_profile(lambda: _batches(table, cuts), table.schema)
    _assert_same_profile(whole, split)
    assert Profile.from_json(split.to_json()) == split


@pytest.mark.parametrize(
    "values",
    [
        [0.0, 2.225073858507203e-309],  # a subnormal span: _BINS / span overflows
        [0.0, 5e-324],  # the smallest span there is
        [-1.7e308, 1.7e308],  # a span beyond float64
    ],
)
def test_histograms_of_extreme_spans_count_every_value(values: list[float]) -> None:
    profile = profile_table(pa.table({"x": pa.array([None, *values], pa.float64())}))
    column = profile.columns["x"]
    assert column.histogram is not None and column.quantiles is not None
    edges, counts = column.histogram.edges, column.histogram.counts
    assert sum(counts) == len(values)
    assert counts[0] >= 1 and counts[-1] >= 1
    assert all(math.isfinite(e) for e in edges)
    assert all(min(values) <= q <= max(values) for q in column.quantiles.values())
