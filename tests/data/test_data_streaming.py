"""Snapshots are written and read a row group at a time; big files stream in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loopml.data._hashing import content_hash
from loopml.data._normalize import normalize_batch
from loopml.data._snapshot import SnapshotWriter, read_snapshot, read_snapshot_batches
from loopml.data._sources import open_source
from loopml.errors import DataSourceError


def numbers(rows: int) -> pa.Table:
    return pa.table(
        {
            "i": pa.array(np.arange(rows)),
            "s": pc.cast(pa.array(np.arange(rows) % 7), pa.large_string()),
        }
    )


def test_snapshot_round_trip_in_bounded_row_groups(tmp_path: Path) -> None:
    table = numbers(2_500)
    path = tmp_path / "snap.parquet"
    with SnapshotWriter(path, table.schema, row_group_rows=1_000) as writer:
        for batch in table.to_batches(max_chunksize=300):
            writer.write(batch)
    info = writer.close()

    assert (info.path, info.row_count, info.size_bytes) == (path, 2_500, path.stat().st_size)
    metadata = pq.ParquetFile(path).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        1_000,
        1_000,
        500,
    ]
    column = metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"
    assert column.statistics.has_min_max
    assert read_snapshot(path).equals(table)
    assert [b.num_rows for b in read_snapshot_batches(path)] == [1_000, 1_000, 500]
    assert content_hash(read_snapshot(path)) == content_hash(table)


def test_read_snapshot_batches_picks_columns_and_reads_file_objects(tmp_path: Path) -> None:
    table = numbers(10)
    path = tmp_path / "snap.parquet"
    with SnapshotWriter(path, table.schema) as writer:
        writer.write(table.to_batches()[0])
    with path.open("rb") as handle:
        batches = list(read_snapshot_batches(handle, columns=["s"]))
    assert pa.Table.from_batches(batches).equals(table.select(["s"]))
    with pytest.raises(DataSourceError, match="no column 'nope'"):
        list(read_snapshot_batches(path, columns=["nope"]))


def test_a_snapshot_of_no_rows_keeps_its_schema(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.large_string())])
    path = tmp_path / "empty.parquet"
    info = SnapshotWriter(path, schema).close()
    assert info.row_count == 0
    assert read_snapshot(path).schema == schema


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "snap.parquet"
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(DataSourceError, match="columns change"), SnapshotWriter(path, schema) as w:
        w.write(pa.record_batch({"b": [1]}))
    assert not path.exists()


def test_batches_are_cast_to_the_snapshot_schema(tmp_path: Path) -> None:
    path = tmp_path / "snap.parquet"
    with SnapshotWriter(path, pa.schema([("a", pa.int64())])) as writer:
        writer.write(pa.record_batch({"a": pa.array([1, 2], pa.int8())}))
    assert read_snapshot(path).schema == pa.schema([("a", pa.int64())])


def test_garbage_is_not_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"nope" * 100)
    with pytest.raises(DataSourceError, match=r"bad\.parquet"):
        read_snapshot(path)


def test_parquet_sources_read_in_bounded_batches(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(numbers(300_000), path, row_group_size=200_000)
    sizes = [b.num_rows for b in open_source(path).batches()]
    assert sum(sizes) == 300_000
    assert max(sizes) <= 131_072


# --- memory ----------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    def peak():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    from loopml.data._hashing import ContentHasher
    from loopml.data._snapshot import SnapshotWriter
    from loopml.data._sources import open_source

    def register(source_path, snapshot_path):
        source = open_source(source_path)
        hasher = ContentHasher(source.schema)
        with SnapshotWriter(Path(snapshot_path), source.schema) as writer:
            for batch in source.batches():
                hasher.update(batch)
                writer.write(batch)
        return writer.close().row_count

    # A first small run loads the code every step needs (shared-library pages
    # count in RSS), so the baseline is what a run costs before any big data.
    small_path, big_path, out = sys.argv[1:]
    register(small_path, out)
    baseline = peak()
    rows = register(big_path, out)
    print(json.dumps({"baseline": baseline, "peak": peak(), "rows": rows}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_big_parquet_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    rows, group = 8_000_000, 250_000
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(7)
    arrow_bytes = 0
    schema = None
    writer = None
    for start in range(0, rows, group):
        ids = np.arange(start, start + group)
        batch = pa.record_batch(
            {
                "id": pa.array(ids),
                "x": pa.array(rng.normal(size=group)),
                "k": pa.array(rng.integers(0, 1_000, group), pa.int32()),
                "s": pc.cast(pa.array(ids % 100_003), pa.string()),
            }
        )
        arrow_bytes += normalize_batch(batch).nbytes  # the materialised, normalised size
        if writer is None:
            schema = batch.schema
            writer = pq.ParquetWriter(path, schema, compression="snappy")
        writer.write_batch(batch, row_group_size=group)
    assert writer is not None
    writer.close()
    small = tmp_path / "small.parquet"
    pq.write_table(pq.ParquetFile(path).read_row_group(0).slice(0, 5_000), small)

    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(small), str(path), str(tmp_path / "snap.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["rows"] == rows
    grown = result["peak"] - result["baseline"]
    print(f"grew {grown / 1e6:.0f} MB for {arrow_bytes / 1e6:.0f} MB of Arrow data")
    assert grown < 0.5 * arrow_bytes, (grown, arrow_bytes)
