"""Snapshots: a dataset version's data as one Parquet file, written and read in row groups.

The writer buffers batches up to one row group (256Ki rows or 64 MiB of Arrow
memory, whichever comes first) and writes it zstd-compressed with column
statistics, so memory stays near one row group whatever the size of the data.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import pyarrow as pa
    >>> table = pa.table({"x": [1, 2, 3]})
    >>> path = Path(tempfile.mkdtemp()) / "data.parquet"
    >>> writer = SnapshotWriter(path, table.schema)
    >>> writer.write(table.to_batches()[0])
    >>> writer.close().row_count
    3
    >>> read_snapshot(path).equals(table)
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data._normalize import conform_batch
from loopml.errors import DataSourceError

__all__ = [
    "ROW_GROUP_BYTES",
    "ROW_GROUP_ROWS",
    "SnapshotInfo",
    "SnapshotWriter",
    "read_snapshot",
    "read_snapshot_batches",
]

ROW_GROUP_ROWS = 262_144
ROW_GROUP_BYTES = 64 << 20
# zstd at its fastest level: on 1M rows x 25 columns it writes as fast as snappy
# with dictionaries and is ~15% smaller.
_COMPRESSION = "zstd"
_COMPRESSION_LEVEL = 1


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    # Dictionary pages pay off for repeated strings; for floats they only cost
    # time (a 1M-row float column is written 3x slower and no smaller).
    return [
        f.name
        for f in schema
        if pa.types.is_large_string(f.type)
        or pa.types.is_string(f.type)
        or pa.types.is_large_binary(f.type)
        or pa.types.is_binary(f.type)
    ]


@dataclass(frozen=True)
class SnapshotInfo:
    """What :meth:`SnapshotWriter.close` wrote.

    Attributes:
        path: the Parquet file.
        row_count: rows written.
        size_bytes: the file's size.
    """

    path: Path
    row_count: int
    size_bytes: int


class SnapshotWriter:
    """Write batches to a local Parquet file, one bounded row group at a time.

    Use it as a context manager, or call :meth:`close` (or :meth:`abort` on
    failure, which removes the file).

    Args:
        path: the file to create (its folder must exist).
        schema: the schema of every batch (normally a normalised one).
        row_group_rows: most rows in a row group.
        row_group_bytes: most Arrow bytes buffered for a row group.

    Raises:
        DataSourceError: the file cannot be created.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self._max_rows = row_group_rows
        self._max_bytes = row_group_bytes
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._rows = 0
        self._info: SnapshotInfo | None = None
        try:
            self._writer = pq.ParquetWriter(
                str(self.path),
                schema,
                compression=_COMPRESSION,
                compression_level=_COMPRESSION_LEVEL,
                use_dictionary=_dictionary_columns(schema),
                write_statistics=True,
            )
        except (pa.ArrowException, OSError) as exc:
            raise DataSourceError(f"{self.path}: cannot create the snapshot: {exc}") from exc

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._info is None:
            self.close()

    def write(self, batch: pa.RecordBatch) -> None:
        """Add rows; a row group is written whenever enough are buffered.

        Args:
            batch: rows with the writer's columns (cast to its types if needed).

        Raises:
            DataSourceError: the columns differ from the writer's, or the write fails.
        """
        if self._info is not None:
            raise DataSourceError(f"{self.path}: the snapshot is already closed")
        batch = conform_batch(batch, self.schema, str(self.path))
        while batch.num_rows:
            room = self._max_rows - self._pending_rows
            head = batch.slice(0, room) if batch.num_rows > room else batch
            batch = batch.slice(head.num_rows)
            self._pending.append(head)
            self._pending_rows += head.num_rows
            self._pending_bytes += head.nbytes
            if self._pending_rows >= self._max_rows or self._pending_bytes >= self._max_bytes:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, self.schema)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        try:
            self._writer.write_table(table, row_group_size=self._max_rows)
        except (pa.ArrowException, OSError) as exc:
            self.abort()
            raise DataSourceError(f"{self.path}: cannot write the snapshot: {exc}") from exc
        self._rows += table.num_rows

    def close(self) -> SnapshotInfo:
        """Write what is buffered and finish the file.

        Returns:
            The path, row count and size of the file.

        Raises:
            DataSourceError: the last write fails.
        """
        if self._info is None:
            self._flush()
            try:
                self._writer.close()
            except (pa.ArrowException, OSError) as exc:
                self.abort()
                raise DataSourceError(f"{self.path}: cannot write the snapshot: {exc}") from exc
            self._info = SnapshotInfo(self.path, self._rows, self.path.stat().st_size)
        return self._info

    def abort(self) -> None:
        """Stop writing and remove the file (nothing is kept of a failed write)."""
        self._pending = []
        with contextlib.suppress(pa.ArrowException, OSError):
            self._writer.close()
        self.path.unlink(missing_ok=True)


def _parquet_file(path_or_file: str | Path | IO[bytes]) -> Any:
    where = str(path_or_file) if isinstance(path_or_file, str | Path) else "snapshot"
    try:
        return pq.ParquetFile(path_or_file)
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"{where}: not a readable Parquet snapshot: {exc}") from exc


def read_snapshot_batches(
    path_or_file: str | Path | IO[bytes], columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Yield a snapshot's rows, one row group at a time.

    Args:
        path_or_file: the Parquet file, or a binary file object open on it.
        columns: only these columns (in this order); all when ``None``.

    Yields:
        Record batches; memory holds about one row group.

    Raises:
        DataSourceError: the file is not a readable Parquet file, or a column is unknown.
    """
    parquet = _parquet_file(path_or_file)
    names = list(columns) if columns is not None else None
    unknown = [c for c in names or () if c not in parquet.schema_arrow.names]
    if unknown:
        raise DataSourceError(f"the snapshot has no column {unknown[0]!r}")
    try:
        for index in range(parquet.num_row_groups):
            yield from parquet.read_row_group(index, columns=names).to_batches()
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"cannot read the snapshot: {exc}") from exc


def read_snapshot(path_or_file: str | Path | IO[bytes]) -> pa.Table:
    """Read a whole snapshot into memory.

    Args:
        path_or_file: the Parquet file, or a binary file object open on it.

    Returns:
        The table, with the schema it was written with.

    Raises:
        DataSourceError: the file is not a readable Parquet file.
    """
    parquet = _parquet_file(path_or_file)
    try:
        return parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"cannot read the snapshot: {exc}") from exc
