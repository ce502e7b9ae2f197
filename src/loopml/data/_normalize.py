"""Canonical Arrow types: the one schema every batch is stored with.

The same data read from pandas, polars, pyarrow, CSV, Parquet or JSON-lines is
normalised to the same types (see ``docs/data-interfaces.md``), so it has the same
schema and the same content hash.

Example:
    >>> import pyarrow as pa
    >>> normalize_schema(pa.schema([("x", pa.int32()), ("s", pa.string())]))
    x: int64
    s: large_string
"""

from __future__ import annotations

import pyarrow as pa

from loopml.errors import DataSourceError

__all__ = [
    "conform_batch",
    "normalize_batch",
    "normalize_schema",
    "normalize_table",
    "normalize_type",
    "schema_text",
]

_NS_RANGE = "1677-09-21 to 2262-04-11"


def normalize_type(arrow_type: pa.DataType) -> pa.DataType:
    """Return the canonical Arrow type that ``arrow_type`` is stored as.

    Args:
        arrow_type: any Arrow type.

    Returns:
        ``int64`` for every integer, ``float64`` for every float,
        ``large_string``/``large_binary`` for strings/binaries, the value type
        for dictionaries, ``timestamp("ns", tz)``, ``date32``, ``large_list``
        for every variable-size list, nested types with normalised children;
        anything else unchanged.
    """
    t = arrow_type
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_dictionary(t):
        return normalize_type(t.value_type)
    if pa.types.is_timestamp(t):
        return pa.timestamp("ns", t.tz)
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_map(t):
        return pa.map_(normalize_type(t.key_type), normalize_type(t.item_type))
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return pa.large_list(normalize_type(t.value_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(normalize_type(t.value_type), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normalize_type(f.type)) for f in t])
    return t


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Return ``schema`` with canonical types, all nullable, without metadata.

    Args:
        schema: any Arrow schema.

    Returns:
        The normalised schema, columns in the same order.
    """
    return pa.schema([pa.field(f.name, normalize_type(f.type)) for f in schema])


def _convert(array: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array.type == target:
        return array
    if pa.types.is_list_view(array.type) or pa.types.is_large_list_view(array.type):
        # Casting list views to lists is not reliable in every pyarrow; they are rare.
        return pa.array(array.to_pylist(), type=target)
    try:
        return array.cast(target)
    except pa.ArrowNotImplementedError:
        # Nested types whose children need a cast pyarrow cannot do in one step.
        return pa.array(array.to_pylist(), type=target)


def _normalize_column(
    array: pa.Array | pa.ChunkedArray, target: pa.DataType, name: str, where: str
) -> pa.Array | pa.ChunkedArray:
    try:
        if isinstance(array, pa.ChunkedArray):
            return pa.chunked_array([_convert(c, target) for c in array.chunks], target)
        return _convert(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if pa.types.is_timestamp(target):
            reason = f"has timestamps outside the range of timestamp[ns] ({_NS_RANGE})"
        elif target == pa.int64():
            reason = "has integers that do not fit in int64"
        else:
            reason = f"cannot be converted from {array.type} to {target}"
        raise DataSourceError(f"{where}: column {name!r} {reason}: {exc}") from exc


def normalize_batch(batch: pa.RecordBatch, where: str = "data") -> pa.RecordBatch:
    """Return ``batch`` with the canonical types of :func:`normalize_type`.

    Args:
        batch: any record batch.
        where: the source's description, for error messages.

    Returns:
        The normalised batch (the same object when nothing changes).

    Raises:
        DataSourceError: a column's values do not fit its canonical type
            (integers beyond int64, timestamps outside the nanosecond range).
    """
    schema = normalize_schema(batch.schema)
    if schema.equals(batch.schema, check_metadata=True):
        return batch
    columns = [
        _normalize_column(batch.column(i), f.type, f.name, where) for i, f in enumerate(schema)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def normalize_table(table: pa.Table, where: str = "data") -> pa.Table:
    """Return ``table`` with canonical types; in-memory data keeps odd timestamps.

    Unlike :func:`normalize_batch`, a timestamp column with values outside the
    nanosecond range keeps its own unit instead of failing.

    Args:
        table: any Arrow table.
        where: the source's description, for error messages.

    Returns:
        The normalised table.

    Raises:
        DataSourceError: integers beyond int64, or a column that cannot be converted.
    """
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        target = normalize_type(field.type)
        try:
            column = _normalize_column(column, target, field.name, where)
        except DataSourceError:
            if not pa.types.is_timestamp(field.type):
                raise
            target = field.type  # not representable in nanoseconds: kept as is
        fields.append(pa.field(field.name, target))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema, where: str = "data") -> pa.RecordBatch:
    """Return ``batch`` with exactly the columns (by name, in order) and types of ``schema``.

    Args:
        batch: a record batch with the same column names, in any order.
        schema: the target, normally a normalised schema.
        where: the source's description, for error messages.

    Returns:
        The batch, its columns cast where their types differ.

    Raises:
        DataSourceError: the column names differ, or a column cannot be cast
            (integers beyond int64, timestamps outside the nanosecond range, ...).
    """
    if batch.schema.names != schema.names:
        if sorted(batch.schema.names) != sorted(schema.names):
            raise DataSourceError(
                f"{where}: the columns change part-way through the data: "
                f"{schema_text(schema)} became {schema_text(batch.schema)}"
            )
        batch = batch.select(schema.names)
    if batch.schema.equals(schema):
        return batch
    columns = [
        _normalize_column(batch.column(i), f.type, f.name, where) for i, f in enumerate(schema)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def schema_text(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in schema) + ")"
