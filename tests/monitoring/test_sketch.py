"""Sketches: one pass equals the merge of any partition; bounded; safe serialisation."""

from __future__ import annotations

import base64
import itertools
import math
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.data._profile import profile_table
from loopml.errors import InvalidParameter
from loopml.monitoring import (
    ColumnSketch,
    SketchLayout,
    TableSketch,
    infer_layout,
    layout_from_profile,
    sketch,
)
from loopml.monitoring._parquet_columns import BATCH_ROWS
from loopml.monitoring._sketch import Z_EDGES, SketchKind

_floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-50, max_value=50),
)
_words = st.one_of(st.none(), st.sampled_from([f"w{i}" for i in range(12)]), st.text(max_size=3))


def _state(col: ColumnSketch) -> tuple[object, ...]:
    return (
        col.rows,
        col.missing,
        col.neg_inf,
        col.pos_inf,
        col.min,
        col.max,
        col.counts.tolist(),
        col.hashes.tolist(),
        col.names.tolist(),
        col.other,
        col.capped,
        col.moments.n,
    )


def _split(table: pa.Table, cuts: list[int]) -> list[pa.Table]:
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


@given(
    xs=st.lists(_floats, min_size=1, max_size=60),
    words=st.data(),
    cuts=st.lists(st.integers(0, 100), max_size=5),
    limit=st.sampled_from([1, 3, 10_000]),
)
def test_merging_partition_sketches_equals_one_pass(
    xs: list[float | None], words: st.DataObject, cuts: list[int], limit: int
) -> None:
    ws = words.draw(st.lists(_words, min_size=len(xs), max_size=len(xs)))
    table = pa.table({"x": pa.array(xs, pa.float64()), "w": pa.array(ws, pa.string())})
    layout = {"x": SketchLayout.numeric(0.5, 3.0), "w": SketchLayout("categorical")}
    whole = sketch(table, layout, limit=limit)
    parts = [sketch(p, layout, limit=limit) for p in _split(table, cuts)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert merged.rows == whole.rows
    for name in ("x", "w"):
        assert _state(merged.columns[name]) == _state(whole.columns[name])
    m, w = merged.columns["x"].moments, whole.columns["x"].moments
    assert m.mean == pytest.approx(w.mean, rel=1e-9, abs=1e-9)
    # Batch by batch inside one sketch is the same as one batch.
    streamed = TableSketch(layout, limit)
    for p in _split(table, cuts):
        streamed.update(p)
    assert _state(streamed.columns["w"]) == _state(whole.columns["w"])


def test_capped_categories_keep_the_smallest_hashes_and_count_the_rest() -> None:
    values = [f"v{i}" for i in range(100) for _ in range(i % 3 + 1)]
    col = sketch(pa.table({"c": values}), limit=10).columns["c"]
    assert col.capped and col.hashes.size == 10
    assert col.other + int(col.counts.sum()) == len(values)
    exact = sketch(pa.table({"c": values})).columns["c"]
    assert not exact.capped and exact.distinct == 100
    kept = dict(zip(exact.hashes.tolist(), exact.counts.tolist(), strict=True))
    assert col.hashes.tolist() == sorted(kept)[:10]
    assert col.counts.tolist() == [kept[h] for h in col.hashes.tolist()]
    assert 30 <= col.distinct <= 300  # a KMV estimate of 100 from 10 hashes


def test_numeric_bins_follow_the_edges() -> None:
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(0, 3, 5000), rng.normal(0, 1e6, 200), [-1e13, 1e13]])
    col = sketch(pa.table({"x": z}), {"x": SketchLayout("numeric", 0.0, 1.0)}).columns["x"]
    expected = np.bincount(np.searchsorted(Z_EDGES, z, side="right"), minlength=Z_EDGES.size + 1)
    # floor(z * 50) and the rounded edges may disagree for values on an edge: none here.
    assert col.counts.tolist() == expected.tolist()
    assert col.counts[0] == 1 and col.counts[-1] == 1  # under- and overflow


def test_missing_infinities_and_kinds() -> None:
    table = pa.table(
        {
            "x": pa.array([1.0, None, math.nan, math.inf, -math.inf, 2.0]),
            "b": pa.array([True, False, None, True, True, True]),
            "d": pa.array(["a", "b", "a", None, "a", "c"]).dictionary_encode(),
            "i": pa.array([1, 2, 2, 3, 3, 3]),
            "t": pa.array([1, 2, 3, 4, 5, 6], pa.timestamp("s")),
        }
    )
    s = sketch(table, kinds={"i": "categorical"})
    assert set(s.columns) == {"x", "b", "d", "i"}  # timestamps are not sketched
    x = s.columns["x"]
    assert (x.missing, x.pos_inf, x.neg_inf, int(x.counts.sum())) == (2, 1, 1, 2)
    assert dict(zip(s.columns["b"].names, s.columns["b"].counts, strict=True)) == {
        "true": 4,
        "false": 1,
    }
    assert s.columns["d"].missing == 1 and s.columns["d"].distinct == 3
    assert s.columns["i"].kind == "categorical" and s.columns["i"].distinct == 3
    with pytest.raises(InvalidParameter, match="only numeric and categorical"):
        sketch(table, columns=["t"])
    with pytest.raises(InvalidParameter, match="'kinds'"):
        sketch(table, kinds={"b": "numeric"})


def test_layout_falls_back_for_constant_or_empty_columns() -> None:
    layout = infer_layout(pa.table({"k": [5.0] * 10, "e": pa.array([None] * 10, pa.float64())}))
    assert layout["k"] == SketchLayout("numeric", 5.0, 5.0 / 1000)
    assert layout["e"] == SketchLayout("numeric", 0.0, 1.0 / 1000)
    # Any other value than the constant lands outside the constant's bin.
    s = sketch(pa.table({"k": [5.0, 5.001, 5.0]}), layout, columns=["k"])
    assert np.count_nonzero(s.columns["k"].counts) == 2
    with pytest.raises(InvalidParameter, match="scale"):
        SketchLayout("numeric", 0.0, 0.0)


def test_sources_dataframe_callable_and_profile_agree() -> None:
    df = pd.DataFrame({"x": np.arange(1000.0), "c": list("abcd") * 250})
    table = pa.Table.from_pandas(df, preserve_index=False)
    one = sketch(table)
    two = sketch(df)
    three = sketch(lambda: table.to_batches(max_chunksize=77))
    for other in (two, three):
        assert other.layout == one.layout
        for name in ("x", "c"):
            assert _state(other.columns[name]) == _state(one.columns[name])
    from_profile = layout_from_profile(profile_table(table))
    assert from_profile["c"] == SketchLayout("categorical")
    assert from_profile["x"].center == pytest.approx(one.layout["x"].center)
    assert from_profile["x"].scale == pytest.approx(one.layout["x"].scale)
    with pytest.raises(InvalidParameter, match="'columns'"):
        layout_from_profile(profile_table(table), columns=["nope"])


def test_round_trip_through_bytes() -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.normal(size=500), "c": rng.choice(["p", "q", "r"], 500)})
    s = sketch(table, limit=2)
    back = TableSketch.from_bytes(s.to_bytes())
    assert back.rows == s.rows and back.layout == s.layout and back.limit == 2
    for name in s.columns:
        assert _state(back.columns[name]) == _state(s.columns[name])
    assert back.to_bytes() == s.to_bytes()


def _mutate(data: bytes, column: int, key: str, value: object) -> bytes:
    doc = orjson.loads(data)
    doc["columns"][column][1][key] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("column", "key", "value", "why"),
    [
        (0, "counts", "!!", "not base64"),
        (0, "counts", base64.b64encode(b"\x01" * 8).decode(), "numeric sketch has"),
        (0, "rows", -1, "rows must be"),
        (0, "missing", 3, "rows must equal"),
        (0, "layout", {"kind": "numeric", "center": 0, "scale": -1}, "scale"),
        (0, "moments", [1, 2], "moments"),
        (1, "names", [1, 2], "names"),
        (1, "hashes", base64.b64encode(np.arange(3, dtype=np.uint64).tobytes()).decode(), "align"),
        (1, "hashes", base64.b64encode(np.zeros(2, np.uint64).tobytes()).decode(), "sorted"),
        (1, "capped", "yes", "capped"),
        (1, "other", 5, "rows must equal"),
    ],
)
def test_malformed_bytes_are_refused(column: int, key: str, value: object, why: str) -> None:
    data = sketch(pa.table({"x": [1.0, 2.0], "c": ["a", "b"]})).to_bytes()
    with pytest.raises(InvalidParameter, match=why):
        TableSketch.from_bytes(_mutate(data, column, key, value))


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[]", b'{"format": "pickle"}', b'{"format": "loopml.table_sketch"}']
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidParameter, match="not valid"):
        TableSketch.from_bytes(data)


def test_state_is_bounded_for_25_columns() -> None:
    rows = 12_000
    rng = np.random.default_rng(1)
    # Worst case for categories: more than the limit, each name longer than kept.
    names = pa.array([f"{i:06d}" + "x" * 300 for i in range(rows)])
    columns = {f"n{i}": rng.normal(size=rows) * 10.0**i for i in range(20)}
    columns |= {f"c{i}": names for i in range(5)}
    s = sketch(pa.table(columns))
    assert all(s.columns[f"c{i}"].capped for i in range(5))
    size = len(s.to_bytes())
    assert size <= 50 * 1024 * 1024
    # The numeric part does not grow with the rows: ~1,346 counters a column.
    assert len(sketch(pa.table({"x": rng.normal(size=10)})).to_bytes()) < 20_000


def test_a_column_limit_must_match_the_table() -> None:
    doc = orjson.loads(sketch(pa.table({"c": ["a", "b"]})).to_bytes())
    doc["columns"][0][1]["limit"] = 5
    with pytest.raises(InvalidParameter, match="table's limit"):
        TableSketch.from_bytes(orjson.dumps(doc))


def test_decimals_are_sketched_as_floats() -> None:
    from decimal import Decimal

    dec = pa.array([Decimal("1.50"), None, Decimal("-2.25")], pa.decimal128(5, 2))
    s = sketch(pa.table({"d": dec, "f": pa.array([1.5, None, -2.25])}))
    assert s.layout["d"] == s.layout["f"]
    assert s.columns["d"].counts.tolist() == s.columns["f"].counts.tolist()


def test_a_parquet_file_is_sketched_by_column_as_batch_by_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(3.0, 2.0, 70_000)
    x[::97], x[::131], x[5] = np.nan, np.inf, -np.inf
    table = pa.table(
        {
            "x": pa.array(x, mask=np.arange(x.size) % 89 == 0),
            "n": rng.integers(0, 9, x.size),
            "c": pa.array(rng.choice(["a", "b", None, "ç"], x.size)),
            "d": pa.array(rng.choice(["u", "v"], x.size)).dictionary_encode(),
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=30_000)
    by_batch = sketch(lambda: pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS))
    by_column = sketch(pq.ParquetFile(path))
    assert by_column.to_bytes() == by_batch.to_bytes()
    assert by_column.rows == 70_000
    kinds: dict[str, SketchKind] = {"n": "categorical"}
    assert infer_layout(pq.ParquetFile(path), kinds=kinds) == infer_layout(table, kinds=kinds)
    some = sketch(pq.ParquetFile(path), by_batch.layout, columns=["c", "x"])
    assert list(some.columns) == ["c", "x"]
    assert some.to_bytes() == sketch(table, by_batch.layout, columns=["c", "x"]).to_bytes()


def test_a_parquet_file_must_hold_the_layout_columns_and_types(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": ["a", "b"]}), path)
    with pytest.raises(InvalidParameter, match="must be in the file"):
        sketch(pq.ParquetFile(path), {"y": SketchLayout("categorical")})
    with pytest.raises(InvalidParameter, match="Column 'x': A numeric sketch"):
        sketch(pq.ParquetFile(path), {"x": SketchLayout("numeric")})
