"""A Parquet file read one column at a time, for the sketches.

A sketch summarises each column on its own, so it need not hold a row group's
columns together. Reading a 100,000-row, 25-column file through
``ParquetFile.iter_batches`` in batches of 64 Ki rows raised the process's peak by
about 110 MiB (Arrow's pool held 75 MiB of decoded and buffered columns, its reader
threads the rest); one column at a time, without the reader's threads, by about
20 MiB (bench/README.md, monitoring results).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeGuard

import pyarrow as pa

if TYPE_CHECKING:
    import pyarrow.parquet as pq

__all__ = ["BATCH_ROWS", "column_chunks", "is_parquet_file"]

#: Rows per batch of one column (the batch size of ``iter_batches``' default).
BATCH_ROWS = 65_536


def is_parquet_file(data: object) -> TypeGuard[pq.ParquetFile]:
    """Whether ``data`` is a ``pyarrow.parquet.ParquetFile``."""
    # Without pyarrow.parquet imported, nothing can be one: no need to import it here.
    parquet = sys.modules.get("pyarrow.parquet")
    return parquet is not None and isinstance(data, parquet.ParquetFile)


def column_chunks(file: pq.ParquetFile, name: str) -> Iterator[pa.Array]:
    """The values of column ``name``, batch by batch, in row order."""
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=[name], use_threads=False):
        yield batch.column(0)
