"""open_source: every kind of source reads as the same normalised data; bad input is named."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from loopml.data._hashing import ContentHasher, content_hash
from loopml.data._normalize import normalize_type
from loopml.data._sources import Source, open_source
from loopml.errors import DataSourceError, InvalidParameter

EXPECTED_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("score", pa.float64()),
        ("name", pa.large_string()),
        ("flag", pa.bool_()),
    ]
)


def reference() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5], pa.int32()),
            "score": [0.5, None, 2.25, -1.0, 3.0],
            "name": ["a", "b", None, "dd", 'é,"q"'],
            "flag": [True, False, None, True, False],
        }
    )


def source_hash(source: Source) -> str:
    hasher = ContentHasher(source.schema)
    for batch in source.batches():
        hasher.update(batch)
    return hasher.hexdigest()


def read_all(source: Source) -> pa.Table:
    return pa.Table.from_batches(list(source.batches()), source.schema)


def write_jsonl(table: pa.Table, path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))


def _pandas(tmp: Path) -> object:
    return pd.DataFrame(
        {
            "id": np.array([1, 2, 3, 4, 5], dtype="int16"),
            "score": [0.5, np.nan, 2.25, -1.0, 3.0],
            "name": ["a", "b", None, "dd", 'é,"q"'],
            "flag": pd.array([True, False, None, True, False], dtype="boolean"),
        },
        index=[10, 11, 12, 13, 14],  # the index is never a column
    )


def _polars(tmp: Path) -> object:
    return pl.DataFrame(reference()).with_columns(pl.col("id").cast(pl.UInt8))


def _table(tmp: Path) -> object:
    return reference()


def _record_batch(tmp: Path) -> object:
    return reference().to_batches()[0]


def _csv(tmp: Path) -> object:
    path = tmp / "data.csv"
    pcsv.write_csv(reference(), path)
    return path


def _csv_gz(tmp: Path) -> object:
    path = tmp / "data.csv.gz"
    plain = tmp / "plain.csv"
    pcsv.write_csv(reference(), plain)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    return str(path)


def _parquet(tmp: Path) -> object:
    path = tmp / "data.parquet"
    pq.write_table(reference(), path, row_group_size=2)
    return path


def _parquet_folder(tmp: Path) -> object:
    folder = tmp / "folder"
    (folder / "part=b").mkdir(parents=True)
    table = reference()
    pq.write_table(table.slice(0, 3), folder / "a.parquet")
    # Later files may order their columns differently.
    pq.write_table(
        table.slice(3).select(["name", "id", "flag", "score"]), folder / "part=b" / "b.pq"
    )
    (folder / "_SUCCESS").write_text("")
    return folder


def _jsonl(tmp: Path) -> object:
    path = tmp / "data.jsonl"
    write_jsonl(reference(), path)
    return path


def _memory_parquet(tmp: Path) -> object:
    url = f"memory://loopml-test-{uuid.uuid4().hex}/data.parquet"
    with fsspec.open(url, "wb") as out:
        pq.write_table(reference(), out)
    return url


def _memory_csv_gz(tmp: Path) -> object:
    url = f"memory://loopml-test-{uuid.uuid4().hex}/data.csv.gz"
    plain = tmp / "plain.csv"
    pcsv.write_csv(reference(), plain)
    with fsspec.open(url, "wb") as out:
        out.write(gzip.compress(plain.read_bytes()))
    return url


SOURCES: dict[str, Callable[[Path], object]] = {
    "pandas": _pandas,
    "polars": _polars,
    "table": _table,
    "record_batch": _record_batch,
    "csv": _csv,
    "csv_gz": _csv_gz,
    "parquet": _parquet,
    "parquet_folder": _parquet_folder,
    "jsonl": _jsonl,
    "memory_parquet": _memory_parquet,
    "memory_csv_gz": _memory_csv_gz,
}


@pytest.fixture(autouse=True)
def _clean_memory_fs() -> Iterator[None]:
    yield
    fs = fsspec.filesystem("memory")
    for path in fs.ls("/", detail=False):
        if "loopml-test-" in path:
            fs.rm(path, recursive=True)


@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_reads_as_the_same_data_and_hash(kind: str, tmp_path: Path) -> None:
    source = open_source(SOURCES[kind](tmp_path))

    assert source.schema == EXPECTED_SCHEMA
    table = read_all(source)
    assert table.sort_by("id").equals(content_table())
    assert source_hash(source) == content_hash(reference())
    assert source_hash(source) == source_hash(source)  # batches() reads afresh


def content_table() -> pa.Table:
    return pa.Table.from_arrays(
        [reference().column(f.name).cast(f.type) for f in EXPECTED_SCHEMA],
        schema=EXPECTED_SCHEMA,
    )


@pytest.mark.parametrize(
    ("kind", "rows"),
    [("table", 5), ("pandas", 5), ("parquet", 5), ("parquet_folder", 5), ("csv", None)],
)
def test_num_rows_is_known_without_reading_where_it_can_be(
    kind: str, rows: int | None, tmp_path: Path
) -> None:
    assert open_source(SOURCES[kind](tmp_path)).num_rows == rows


def test_descriptions_name_the_source(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    assert open_source(path).description == str(path)
    assert open_source(reference()).description == "Table(5 rows × 4 columns)"  # noqa: RUF001
    assert open_source(_pandas(tmp_path)).description == "DataFrame(5 rows × 4 columns)"  # noqa: RUF001


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    write_jsonl(reference(), path)
    with pytest.raises(DataSourceError, match="format='jsonl'"):
        open_source(path)
    assert source_hash(open_source(path, format="jsonl")) == content_hash(reference())


def test_canonical_types() -> None:
    assert normalize_type(pa.uint16()) == pa.int64()
    assert normalize_type(pa.float32()) == pa.float64()
    assert normalize_type(pa.string_view()) == pa.large_string()
    assert normalize_type(pa.dictionary(pa.int8(), pa.string())) == pa.large_string()
    assert normalize_type(pa.dictionary(pa.int8(), pa.int16())) == pa.int64()
    assert normalize_type(pa.binary()) == pa.large_binary()
    assert normalize_type(pa.timestamp("s", "UTC")) == pa.timestamp("ns", "UTC")
    assert normalize_type(pa.date64()) == pa.date32()
    assert normalize_type(pa.decimal128(10, 2)) == pa.decimal128(10, 2)
    assert normalize_type(pa.list_(pa.int8())) == pa.large_list(pa.int64())
    assert normalize_type(pa.struct([("a", pa.string())])) == pa.struct([("a", pa.large_string())])
    assert normalize_type(pa.map_(pa.string(), pa.int32())) == pa.map_(
        pa.large_string(), pa.int64()
    )


def test_categoricals_read_as_their_values() -> None:
    frame = pd.DataFrame({"c": pd.Categorical(["x", "y", "x"]), "n": pd.Categorical([1, 2, 1])})
    source = open_source(frame)
    assert source.schema == pa.schema([("c", pa.large_string()), ("n", pa.int64())])
    assert content_hash(read_all(source)) == content_hash(
        pa.table({"c": ["x", "y", "x"], "n": [1, 2, 1]})
    )


def test_far_timestamps_in_memory_keep_their_unit() -> None:
    table = pa.table({"t": pa.array([0, 253402214400], pa.timestamp("s"))})  # 9999-12-31
    source = open_source(table)
    assert source.schema.field("t").type == pa.timestamp("s")
    assert read_all(source).num_rows == 2
    assert content_hash(table) == source_hash(source)


def test_header_only_csv_is_an_empty_dataset_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("a,b\n")
    source = open_source(path)
    assert source.schema.names == ["a", "b"]
    assert read_all(source).num_rows == 0


def test_a_frame_with_columns_and_no_rows_is_allowed() -> None:
    source = open_source(pd.DataFrame({"a": pd.Series([], dtype="int64")}))
    assert source.num_rows == 0
    assert source.schema == pa.schema([("a", pa.int64())])


# --- bad input ------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    with pytest.raises(DataSourceError, match=r"missing\.csv.*no such file"):
        open_source(path)


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"x": np.arange(10_000)}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataSourceError, match=r"cut\.parquet.*truncated or corrupt"):
        open_source(path)


def test_garbage_with_a_parquet_suffix(tmp_path: Path) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(DataSourceError, match=r"garbage\.parquet"):
        open_source(path)


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet", "empty.jsonl"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DataSourceError, match=rf"{name}.*empty"):
        open_source(path)


def test_empty_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(DataSourceError, match=r"empty\.csv\.gz.*empty"):
        open_source(path)


def test_blank_jsonl_has_no_columns(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataSourceError, match=r"blank\.jsonl.*no columns"):
        open_source(path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataSourceError, match=r"data\.xlsx.*unknown format '\.xlsx'"):
        open_source(path)


def test_unknown_format_parameter(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="'format' parameter"):
        open_source(_csv(tmp_path), format="excel")


def test_unsupported_source_object() -> None:
    with pytest.raises(InvalidParameter, match="Got list instead"):
        open_source([1, 2, 3])


def test_mixed_types_in_a_pandas_object_column() -> None:
    frame = pd.DataFrame({"ok": [1, 2, 3], "mixed": pd.Series([1, "two", 3.0], dtype=object)})
    with pytest.raises(DataSourceError, match=r"column 'mixed' has values of mixed"):
        open_source(frame)


def test_mixed_types_in_a_csv_column_past_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_bytes(b"n,label\n" + b"1,a\n" * 3_000_000 + b"oops,b\n")
    source = open_source(path)  # the first block says int64
    assert source.schema.field("n").type == pa.int64()
    with pytest.raises(DataSourceError, match=r"late\.csv: column 'n' has values of mixed types"):
        for _ in source.batches():
            pass


def test_mixed_types_in_a_jsonl_field(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": 1, "b": 1}\n{"a": 2, "b": "x"}\n')
    with pytest.raises(DataSourceError, match=r"mixed\.jsonl: column 'b' has values of mixed"):
        open_source(path)


def test_integers_beyond_int64(tmp_path: Path) -> None:
    table = pa.table({"big": pa.array([1, 2**63 + 5], pa.uint64())})
    with pytest.raises(DataSourceError, match=r"column 'big' has integers that do not fit"):
        open_source(table)


def test_repeated_column_names() -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(DataSourceError, match="column 'a' appears more than once"):
        open_source(table)


def test_folder_without_parquet_files(tmp_path: Path) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi")
    with pytest.raises(DataSourceError, match=r"nothing.*no Parquet files"):
        open_source(folder)


def test_folder_with_files_of_different_columns(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1]}), folder / "1.parquet")
    pq.write_table(pa.table({"a": ["x"]}), folder / "2.parquet")
    with pytest.raises(DataSourceError, match=r"2\.parquet.*differ"):
        open_source(folder)


def test_a_frame_without_columns() -> None:
    with pytest.raises(DataSourceError, match="no columns"):
        open_source(pd.DataFrame())
