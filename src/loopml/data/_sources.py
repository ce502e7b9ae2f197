"""Reading data: in-memory frames and files, as normalised Arrow record batches.

Every batch that leaves this module has the *canonical* Arrow types of
``docs/data-interfaces.md``, so that the same data read from pandas, polars,
pyarrow, CSV, Parquet or JSON-lines has the same schema (and so the same
content hash); :mod:`loopml.data._normalize` sets those types. Files are read
a bounded batch at a time: Parquet by row group (``ParquetFile.iter_batches``),
CSV and JSON-lines by block (``open_csv`` and ``open_json``), so a file never has
to fit in memory.

Example:
    >>> import pyarrow as pa
    >>> source = open_source(pa.table({"x": pa.array([1, 2], pa.int32())}))
    >>> str(source.schema.field("x").type), source.num_rows
    ('int64', 2)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pyarrow as pa

from loopml._urls import redact_text, redact_url, url_secrets
from loopml.data._normalize import conform_batch, normalize_schema, normalize_table, schema_text
from loopml.errors import DataSourceError, InvalidParameter

__all__ = [
    "FORMATS",
    "Source",
    "batch_rows",
    "open_source",
]

FORMATS = ("csv", "parquet", "jsonl")
_SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".xz", ".lz4")
# CSV and JSON readers infer column types from the first block, so it is larger
# than pyarrow's 1 MiB default: fewer "mixed type" surprises further down a file.
_TEXT_BLOCK_BYTES = 8 << 20
# A batch aims at this many bytes of Arrow memory, within the row bounds below.
_BATCH_BYTES = 32 << 20
_MIN_BATCH_ROWS = 1_024
_MAX_BATCH_ROWS = 131_072


def batch_rows(schema: pa.Schema) -> int:
    """Return a batch length for ``schema`` that keeps a batch near 32 MiB.

    Args:
        schema: the (normalised) schema of the batches.

    Returns:
        A row count between 1,024 and 131,072.
    """
    row_bytes = 0
    for field in schema:
        try:
            row_bytes += max(1, field.type.bit_width // 8)
        except ValueError:  # variable width: strings, lists, ...
            row_bytes += 32
    rows = _BATCH_BYTES // max(1, row_bytes)
    return max(_MIN_BATCH_ROWS, min(_MAX_BATCH_ROWS, rows))


# --- Source ----------------------------------------------------------------


class Source:
    """Data to register or validate: a description, a schema and its batches.

    Args:
        description: how messages name the data (a path, a URL without its
            credentials, ``DataFrame(…)``); it is what loopml stores and shows.
        schema: the normalised schema of every batch.
        num_rows: the row count when known without reading the data.
        read: returns a fresh iterator of (not yet normalised) batches.
        secrets: credentials of the URL read (see ``loopml._urls.url_secrets``),
            hidden from the messages of errors met while reading.
    """

    def __init__(
        self,
        description: str,
        schema: pa.Schema,
        num_rows: int | None,
        read: Callable[[], Iterator[pa.RecordBatch]],
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.description = description
        self.schema = schema
        self.num_rows = num_rows
        self._read = read
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"Source({self.description!r}, {len(self.schema)} columns, rows={self.num_rows})"

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the data as normalised record batches; each call reads afresh.

        Yields:
            Record batches with :attr:`schema`, of a bounded length.

        Raises:
            DataSourceError: the data turns out unreadable, truncated or of mixed
                types part-way through; the message names the source and, where
                known, the column.
        """
        names = self.schema.names
        with _hiding(self._secrets):
            try:
                for batch in self._read():
                    yield conform_batch(batch, self.schema, self.description)
            except DataSourceError:
                raise
            except (pa.ArrowException, OSError, EOFError, ValueError, KeyError) as exc:
                raise _read_error(self.description, exc, names) from exc


@contextlib.contextmanager
def _hiding(secrets: tuple[str, ...]) -> Iterator[None]:
    """Re-raise a DataSourceError with ``secrets`` hidden from its message.

    The reader's own exception (the cause) may quote the real URL or a path made
    from it, so it is not chained when something was hidden.
    """
    try:
        yield
    except DataSourceError as exc:
        message = str(exc)
        hidden = redact_text(message, secrets)
        if hidden == message:
            raise
        raise DataSourceError(hidden) from None


_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_JSON_COLUMN = re.compile(r"Column\(/([^)]*)\)")


def _read_error(where: str, exc: BaseException, names: list[str]) -> DataSourceError:
    """Turn a reader's exception into a DataSourceError naming the column when it can."""
    message = str(exc)
    column: str | None = None
    if found := _CSV_COLUMN.search(message):
        index = int(found.group(1))
        column = names[index] if index < len(names) else None
    elif found := _JSON_COLUMN.search(message):
        column = found.group(1).split("/")[0]
    if column is not None and ("conversion error" in message or "changed from" in message):
        return DataSourceError(
            f"{where}: column {column!r} has values of mixed types (its type was inferred "
            f"from the first rows; a later value does not fit): {message}"
        )
    if "unexpected field" in message:
        return DataSourceError(
            f"{where}: a field appears after the first rows that they do not have "
            f"(the columns are inferred from the first rows): {message}"
        )
    prefix = f"{where}: column {column!r}: " if column else f"{where}: "
    return DataSourceError(f"{prefix}cannot read the data ({type(exc).__name__}: {message})")


def _check_columns(schema: pa.Schema, where: str) -> None:
    if len(schema) == 0:
        raise DataSourceError(f"{where}: the data has no columns")
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            raise DataSourceError(f"{where}: column {name!r} appears more than once")
        seen.add(name)


# --- in-memory sources -----------------------------------------------------


def _table_source(table: pa.Table, description: str) -> Source:
    _check_columns(table.schema, description)
    table = normalize_table(table, description)
    rows = batch_rows(table.schema)
    return Source(description, table.schema, table.num_rows, lambda: iter(table.to_batches(rows)))


def _shape(rows: int, columns: int) -> str:
    return f"({rows} rows × {columns} columns)"  # noqa: RUF001 - the sign is meant


def _from_pandas(frame: Any) -> Source:
    description = "DataFrame" + _shape(len(frame), len(frame.columns))
    names = [str(c) for c in frame.columns]
    _check_columns(pa.schema([pa.field(n, pa.null()) for n in names]), description)
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise _frame_column_error(description, exc, _pandas_column_failing(frame)) from exc
    return _table_source(table, description)


def _pandas_column_failing(frame: Any) -> str | None:
    for position, name in enumerate(frame.columns):
        try:
            pa.Table.from_pandas(frame.iloc[:, [position]], preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError):
            return str(name)
    return None


def _from_polars(frame: Any) -> Source:
    description = "DataFrame" + _shape(frame.height, frame.width)
    try:
        table = frame.to_arrow()
    except Exception as exc:  # polars raises its own error classes; any failure is ours to name
        failing = None
        for name in frame.columns:
            try:
                frame.select(name).to_arrow()
            except Exception:  # probing which column fails
                failing = name
                break
        raise _frame_column_error(description, exc, failing) from exc
    return _table_source(table, description)


def _frame_column_error(where: str, exc: BaseException, column: str | None) -> DataSourceError:
    if column is None:
        return DataSourceError(f"{where}: cannot convert the frame to Arrow: {exc}")
    return DataSourceError(
        f"{where}: column {column!r} has values of mixed or unsupported types "
        f"and cannot be stored: {exc}"
    )


# --- files -----------------------------------------------------------------


def _format_of(path: str, format: str | None, where: str) -> str:
    if format is not None:
        return format
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for compressed in _COMPRESSED:
        if name.endswith(compressed):
            name = name[: -len(compressed)]
            break
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    hint = " (JSON-lines? pass format='jsonl')" if suffix == ".json" else ""
    raise DataSourceError(
        f"{where}: unknown format {suffix or '(no suffix)'!r}{hint}; expected .csv, "
        f".csv.gz, .parquet, .pq, a folder of Parquet files, .jsonl or .ndjson"
    )


class _File:
    """A file on a filesystem fsspec knows; local files are read natively by pyarrow."""

    def __init__(self, fs: Any, path: str, where: str) -> None:
        self.fs = fs
        self.path = path
        self.where = where
        self.local = "file" in _protocols(fs)

    def open(self, compression: bool) -> Any:
        """Open for reading: random access, or a decompressed stream when ``compression``."""
        if self.local:
            if compression:
                return pa.input_stream(self.path, compression="detect")
            return pa.OSFile(self.path, "rb")
        return self.fs.open(self.path, "rb", compression="infer" if compression else None)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _from_path(source: str, format: str | None) -> Source:
    # The real URL opens the data; what is stored and shown has no credentials.
    where = redact_url(source)
    secrets = url_secrets(source)
    with _hiding(secrets):
        return _open_path(source, format, where, secrets)


def _open_path(source: str, format: str | None, where: str, secrets: tuple[str, ...]) -> Source:
    try:
        fs, path = fsspec.core.url_to_fs(source)
    except (ValueError, ImportError) as exc:
        raise DataSourceError(f"{where}: cannot open this URL: {exc}") from exc
    try:
        if not fs.exists(path):
            raise DataSourceError(f"{where}: no such file or folder")
        if fs.isdir(path):
            if format not in (None, "parquet"):
                raise DataSourceError(f"{where}: a folder is read as Parquet, not {format}")
            return _parquet_folder(fs, path, where, secrets)
        chosen = _format_of(path, format, where)
        if fs.size(path) == 0:
            raise DataSourceError(f"{where}: the file is empty (0 bytes)")
        file = _File(fs, path, where)
        if chosen == "parquet":
            return _parquet_source([file], where, secrets)
        return _text_source(file, chosen, secrets)
    except DataSourceError:
        raise
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise _read_error(where, exc, []) from exc


def _parquet_folder(fs: Any, path: str, where: str, secrets: tuple[str, ...]) -> Source:
    found = sorted(
        p
        for p in fs.find(path)
        if p.lower().endswith((".parquet", ".pq", ".parq"))
        and not any(part.startswith(("_", ".")) for part in p[len(path) :].split("/"))
    )
    if not found:
        raise DataSourceError(f"{where}: the folder holds no Parquet files")
    files = [_File(fs, p, redact_text(p, secrets)) for p in found]
    return _parquet_source(files, where, secrets)


def _parquet_source(files: list[_File], where: str, secrets: tuple[str, ...]) -> Source:
    import pyarrow.parquet as pq

    schema: pa.Schema | None = None
    num_rows = 0
    for file in files:
        try:
            with file.open(compression=False) as handle:
                metadata = pq.ParquetFile(handle).metadata
                file_schema = normalize_schema(metadata.schema.to_arrow_schema())
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise DataSourceError(
                f"{file.where}: not a readable Parquet file (truncated or corrupt?): {exc}"
            ) from exc
        num_rows += metadata.num_rows
        if schema is None:
            _check_columns(file_schema, file.where)
            schema = file_schema
        elif not _same_columns(schema, file_schema):
            raise DataSourceError(
                f"{file.where}: its columns {schema_text(file_schema)} differ from those of "
                f"{files[0].where} {schema_text(schema)}"
            )
    assert schema is not None  # files is never empty
    rows = batch_rows(schema)

    def read() -> Iterator[pa.RecordBatch]:
        for file in files:
            try:
                with file.open(compression=False) as handle:
                    parquet = pq.ParquetFile(handle)
                    # One row group per call: iterating the whole file at once
                    # reads ahead and holds about twice as much memory.
                    for group in range(parquet.num_row_groups):
                        yield from parquet.iter_batches(batch_size=rows, row_groups=[group])
            except (pa.ArrowException, OSError, EOFError) as exc:
                raise _read_error(file.where, exc, schema.names) from exc

    return Source(where, schema, num_rows, read, secrets)


def _same_columns(left: pa.Schema, right: pa.Schema) -> bool:
    return sorted(zip(left.names, map(str, left.types), strict=True)) == sorted(
        zip(right.names, map(str, right.types), strict=True)
    )


@contextlib.contextmanager
def _text_reader(file: _File, format: str) -> Iterator[Any]:
    """Yield a streaming CSV or JSON-lines reader of ``file``; close both after."""
    with file.open(compression=True) as handle:
        if format == "csv":
            import pyarrow.csv as pcsv

            reader = pcsv.open_csv(
                handle,
                read_options=pcsv.ReadOptions(block_size=_TEXT_BLOCK_BYTES),
                convert_options=pcsv.ConvertOptions(
                    strings_can_be_null=True, quoted_strings_can_be_null=False
                ),
            )
        else:
            import pyarrow.json as pjson

            reader = pjson.open_json(
                handle, read_options=pjson.ReadOptions(block_size=_TEXT_BLOCK_BYTES)
            )
        with reader:
            yield reader


def _text_source(file: _File, format: str, secrets: tuple[str, ...]) -> Source:
    try:
        with _text_reader(file, format) as first:
            raw_schema = first.schema
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc) or "Empty JSON" in str(exc):
            raise DataSourceError(
                f"{file.where}: the file is empty: no rows and no columns"
            ) from exc
        raise
    schema = normalize_schema(raw_schema)
    if len(schema) == 0:
        raise DataSourceError(f"{file.where}: the file has no rows and no columns")
    _check_columns(schema, file.where)

    def read() -> Iterator[pa.RecordBatch]:
        with _text_reader(file, format) as reader:
            yield from reader

    return Source(file.where, schema, None, read, secrets)


# --- entry point -----------------------------------------------------------


def open_source(source: object, format: str | None = None) -> Source:
    """Open data to register: a frame, an Arrow table, or a file, folder or URL.

    Only metadata (and, for CSV and JSON-lines, the first block) is read here;
    :meth:`Source.batches` streams the data.

    Args:
        source: a pandas or polars ``DataFrame``, a ``pyarrow.Table`` or
            ``RecordBatch``, or a path or fsspec URL of a ``.csv`` (``.csv.gz``),
            ``.parquet``/``.pq`` file, a folder of Parquet files, or a
            ``.jsonl``/``.ndjson`` file.
        format: ``"csv"``, ``"parquet"`` or ``"jsonl"`` to override the suffix
            (``format="jsonl"`` reads a ``.json`` file as JSON-lines).

    Returns:
        The :class:`Source`, with its normalised schema.

    Raises:
        InvalidParameter: ``source`` is not one of the accepted kinds, or
            ``format`` is not a known format.
        DataSourceError: the file or folder is missing, unreadable, truncated,
            empty, of an unknown format, without Parquet files, or a column has
            values of mixed types; the message names the file and the column.

    Example:
        >>> import pandas as pd
        >>> source = open_source(pd.DataFrame({"a": [1, 2], "b": ["x", None]}))
        >>> [str(t) for t in source.schema.types]
        ['int64', 'large_string']
    """
    if format is not None and format not in FORMATS:
        raise InvalidParameter(
            f"The 'format' parameter of open_source must be one of {', '.join(FORMATS)} "
            f"or None. Got {format!r} instead."
        )
    if isinstance(source, pa.Table):
        return _table_source(source, "Table" + _shape(source.num_rows, source.num_columns))
    if isinstance(source, pa.RecordBatch):
        table = pa.Table.from_batches([source])
        return _table_source(table, "RecordBatch" + _shape(source.num_rows, source.num_columns))
    if isinstance(source, str | os.PathLike):
        return _from_path(os.fspath(source), format)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(source, pandas.DataFrame):
        return _from_pandas(source)
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(source, polars.DataFrame):
        return _from_polars(source)
    raise InvalidParameter(
        "The 'source' parameter of open_source must be a pandas or polars DataFrame, a "
        "pyarrow Table or RecordBatch, or a path or URL of a CSV, Parquet or JSON-lines "
        f"file. Got {type(source).__name__} instead."
    )
