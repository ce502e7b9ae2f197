"""The content hash of a dataset: the identity of the data, not of a file.

Each column feeds SHA-256 streams with canonical bytes, vectorised over Arrow
buffers (never a Python loop per row):

- *nulls*: the positions of the null rows, as little-endian ``uint64``;
- fixed-width values (numbers, temporal types, decimals): the raw bytes of the
  non-null values; every NaN is fed as the one canonical quiet NaN, while
  ``-0.0`` and ``0.0`` keep their own bits and so hash *differently*;
- booleans: one byte per non-null value;
- strings and binaries: two streams, the lengths (``int64``) and the bytes;
- lists and maps: the lengths, then the flattened values as a child column;
  structs: one child column per field.

Feeding only the non-null values and the positions of the nulls makes every
stream the concatenation of its batches' streams, so batch and row-group
boundaries cannot change the hash; a null and a NaN feed different streams, so
they hash differently. The dataset's digest combines the row count and, in
sorted column-name order, each column's name, canonical type and digest, so
the column order does not matter either.

Timestamps feed whole seconds and nanoseconds, so their unit does not matter
(in-memory timestamps beyond the nanosecond range keep their own unit).

With key columns the rows are sorted first (by the keys in name order; only if
keys repeat, also by the other columns in name order, nested ones by their
repr), which makes the hash independent of row order. That holds every batch
until :meth:`ContentHasher.hexdigest`: the memory cost is the whole table's
Arrow size, plus one sorted column at a time.

Example:
    >>> import pyarrow as pa
    >>> a = pa.table({"x": [1, 2], "y": ["a", None]})
    >>> content_hash(a) == content_hash(a.select(["y", "x"]))
    True
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._normalize import conform_batch, normalize_schema, normalize_table
from loopml.errors import InvalidParameter

__all__ = ["HASH_VERSION", "ContentHasher", "content_hash"]

HASH_VERSION = "loopml-content-v1"
_U64 = struct.Struct("<Q")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _sized(text: str) -> bytes:
    data = text.encode()
    return _U64.pack(len(data)) + data


def _type_token(t: pa.DataType) -> str:
    """A canonical spelling of a type: no list child names, no nullability, no metadata."""
    if isinstance(t, pa.ExtensionType):
        return f"extension<{t.extension_name}:{_type_token(t.storage_type)}>"
    if pa.types.is_map(t):
        return f"map<{_type_token(t.key_type)},{_type_token(t.item_type)}>"
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return f"list<{_type_token(t.value_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"list<{_type_token(t.value_type)}>[{t.list_size}]"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name!r}:{_type_token(f.type)}" for f in t) + ">"
    if pa.types.is_timestamp(t):
        return f"timestamp[tz={t.tz}]"  # the unit is not part of the value
    return str(t)


def _fixed_width(t: pa.DataType) -> int | None:
    if pa.types.is_boolean(t):
        return None
    try:
        bits: int = t.bit_width
    except ValueError:
        return None
    return bits // 8 if bits % 8 == 0 and bits else None


# --- column digests --------------------------------------------------------


class _Digest:
    """The digest of one column: null positions here, values in subclasses."""

    def __init__(self) -> None:
        self._rows = 0
        self._nulls = hashlib.sha256()

    def update(self, array: pa.Array) -> None:
        rows = len(array)
        if array.null_count:
            positions = pc.indices_nonzero(array.is_null()).to_numpy()
            self._nulls.update((positions + np.uint64(self._rows)).astype("<u8").data)
            array = array.drop_null()
        self._values(array)
        self._rows += rows

    def _values(self, array: pa.Array) -> None:
        raise NotImplementedError

    def _parts(self) -> list[bytes]:
        return []

    def digest(self) -> bytes:
        h = hashlib.sha256(self._nulls.digest())
        for part in self._parts():
            h.update(part)
        return h.digest()


class _NullDigest(_Digest):
    def _values(self, array: pa.Array) -> None:
        pass


class _FixedDigest(_Digest):
    """Numbers, temporal types, decimals, fixed-size binaries: raw value bytes."""

    def __init__(self, width: int, floating: bool) -> None:
        super().__init__()
        self._width = width
        self._floating = floating
        self._hash = hashlib.sha256()

    def _values(self, array: pa.Array) -> None:
        if not len(array):
            return
        buffer = array.buffers()[1]
        start = array.offset * self._width
        data: Any = memoryview(buffer)[start : start + len(array) * self._width]
        if self._floating:
            values = np.frombuffer(data, dtype=f"<f{self._width}")
            nan = np.isnan(values)
            if nan.any():
                values = values.copy()
                values[nan] = np.nan  # one canonical NaN, whatever the payload
                data = values.data
        self._hash.update(data)

    def _parts(self) -> list[bytes]:
        return [self._hash.digest()]


class _TimestampDigest(_Digest):
    """Timestamps as whole seconds and nanoseconds, so the unit does not matter."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._per_second = _PER_SECOND[unit]
        self._seconds = hashlib.sha256()
        self._nanos = hashlib.sha256()

    def _values(self, array: pa.Array) -> None:
        if not len(array):
            return
        values = np.frombuffer(
            array.buffers()[1], dtype="<i8", count=len(array), offset=array.offset * 8
        )
        seconds = values // self._per_second
        nanos = (values - seconds * self._per_second) * (1_000_000_000 // self._per_second)
        self._seconds.update(seconds.astype("<i8").data)
        self._nanos.update(nanos.astype("<i8").data)

    def _parts(self) -> list[bytes]:
        return [self._seconds.digest(), self._nanos.digest()]


class _BoolDigest(_Digest):
    def __init__(self) -> None:
        super().__init__()
        self._hash = hashlib.sha256()

    def _values(self, array: pa.Array) -> None:
        self._hash.update(array.to_numpy(zero_copy_only=False).view(np.uint8).data)

    def _parts(self) -> list[bytes]:
        return [self._hash.digest()]


def _offsets(array: pa.Array, wide: bool) -> Any:
    dtype = "<i8" if wide else "<i4"
    return np.frombuffer(
        array.buffers()[1],
        dtype=dtype,
        count=len(array) + 1,
        offset=array.offset * (8 if wide else 4),
    )


class _BinaryDigest(_Digest):
    """Strings and binaries: a stream of lengths and a stream of bytes."""

    def __init__(self, wide: bool) -> None:
        super().__init__()
        self._wide = wide
        self._lengths = hashlib.sha256()
        self._bytes = hashlib.sha256()

    def _values(self, array: pa.Array) -> None:
        if not len(array):
            return
        offsets = _offsets(array, self._wide)
        self._lengths.update(np.diff(offsets).astype("<i8").data)
        data = array.buffers()[2]
        if data is not None:
            self._bytes.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])

    def _parts(self) -> list[bytes]:
        return [self._lengths.digest(), self._bytes.digest()]


class _ListDigest(_Digest):
    """Variable-size lists and maps: the lengths, then the values as a child column."""

    def __init__(self, t: pa.DataType) -> None:
        super().__init__()
        self._wide = pa.types.is_large_list(t)
        self._map = pa.types.is_map(t)
        if self._map:
            entries = pa.struct([pa.field("key", t.key_type), pa.field("value", t.item_type)])
            self._child = _digest_for(entries)
        else:
            self._child = _digest_for(t.value_type)
        self._lengths = hashlib.sha256()

    def _values(self, array: pa.Array) -> None:
        if not len(array):
            return
        offsets = _offsets(array, self._wide)
        self._lengths.update(np.diff(offsets).astype("<i8").data)
        if self._map:
            child: pa.Array = pa.StructArray.from_arrays(
                [array.keys, array.items], names=["key", "value"]
            )
        else:
            child = array.values
        self._child.update(child.slice(int(offsets[0]), int(offsets[-1] - offsets[0])))

    def _parts(self) -> list[bytes]:
        return [self._lengths.digest(), self._child.digest()]


class _FixedListDigest(_Digest):
    def __init__(self, t: pa.DataType) -> None:
        super().__init__()
        self._child = _digest_for(t.value_type)

    def _values(self, array: pa.Array) -> None:
        if len(array):
            self._child.update(array.flatten())

    def _parts(self) -> list[bytes]:
        return [self._child.digest()]


class _StructDigest(_Digest):
    def __init__(self, t: pa.DataType) -> None:
        super().__init__()
        self._children = [_digest_for(f.type) for f in t]

    def _values(self, array: pa.Array) -> None:
        for child, values in zip(self._children, array.flatten(), strict=True):
            child.update(values)

    def _parts(self) -> list[bytes]:
        return [child.digest() for child in self._children]


class _ExtensionDigest(_Digest):
    def __init__(self, t: pa.ExtensionType) -> None:
        super().__init__()
        self._storage = _digest_for(t.storage_type)

    def _values(self, array: pa.Array) -> None:
        self._storage.update(array.storage)

    def _parts(self) -> list[bytes]:
        return [self._storage.digest()]


class _ReprDigest(_Digest):
    """Types with no canonical buffers (unions, ...): each value's repr, one at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._text = _BinaryDigest(wide=True)

    def _values(self, array: pa.Array) -> None:
        self._text.update(pa.array([repr(v) for v in array.to_pylist()], pa.large_string()))

    def _parts(self) -> list[bytes]:
        return [self._text.digest()]


def _digest_for(t: pa.DataType) -> _Digest:
    if isinstance(t, pa.ExtensionType):
        return _ExtensionDigest(t)
    if pa.types.is_null(t):
        return _NullDigest()
    if pa.types.is_boolean(t):
        return _BoolDigest()
    if pa.types.is_timestamp(t):
        return _TimestampDigest(t.unit)
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return _BinaryDigest(wide=True)
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return _BinaryDigest(wide=False)
    if pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return _ListDigest(t)
    if pa.types.is_fixed_size_list(t):
        return _FixedListDigest(t)
    if pa.types.is_struct(t):
        return _StructDigest(t)
    width = _fixed_width(t)
    if width is not None:
        return _FixedDigest(width, pa.types.is_floating(t))
    return _ReprDigest()


# --- the dataset digest ----------------------------------------------------


def _hash_schema(schema: pa.Schema) -> pa.Schema:
    # Top-level timestamps are taken in their own unit (their digest does not
    # depend on it): normalize_table keeps the unit of in-memory timestamps that
    # nanoseconds cannot hold (year 9999 sentinels).
    normal = normalize_schema(schema)
    return pa.schema(
        [
            pa.field(f.name, f.type) if pa.types.is_timestamp(f.type) else normal.field(i)
            for i, f in enumerate(schema)
        ]
    )


class ContentHasher:
    """Compute a dataset's content hash from its batches, one batch at a time.

    Args:
        schema: the schema of the batches (normalised here if it is not).
        key_columns: columns that identify a row; when given, the hash does not
            depend on the row order (at the cost of holding every batch).

    Raises:
        InvalidParameter: a key column is not in the schema, or a column name repeats.

    Example:
        >>> import pyarrow as pa
        >>> table = pa.table({"id": [2, 1], "v": [0.5, 1.5]})
        >>> hasher = ContentHasher(table.schema)
        >>> for batch in table.to_batches(max_chunksize=1):
        ...     hasher.update(batch)
        >>> hasher.hexdigest() == content_hash(table)
        True
    """

    def __init__(self, schema: pa.Schema, key_columns: Sequence[str] = ()) -> None:
        self._schema = _hash_schema(schema)
        names = self._schema.names
        if len(set(names)) != len(names):
            raise InvalidParameter(
                f"The 'schema' parameter of ContentHasher must have distinct column names. "
                f"Got {names} instead."
            )
        unknown = [k for k in key_columns if k not in names]
        if isinstance(key_columns, str) or unknown:
            raise InvalidParameter(
                f"The 'key_columns' parameter of ContentHasher must be a sequence of column "
                f"names among {names}. Got {key_columns!r} instead."
            )
        self._keys = sorted(set(key_columns))
        unsortable = [k for k in self._keys if not _sortable(self._schema.field(k).type)]
        if unsortable:
            raise InvalidParameter(
                f"The 'key_columns' parameter of ContentHasher must name columns of sortable "
                f"(not nested) types. Got {unsortable[0]!r} of type "
                f"{self._schema.field(unsortable[0]).type} instead."
            )
        self._rows = 0
        self._digests = {f.name: _digest_for(f.type) for f in self._schema}
        self._held: list[pa.RecordBatch] = []

    def update(self, batch: pa.RecordBatch) -> None:
        """Feed the next rows.

        Args:
            batch: rows with the hasher's columns, in any column order.

        Raises:
            InvalidParameter: the batch's columns are not the hasher's.
        """
        if sorted(batch.schema.names) != sorted(self._schema.names):
            raise InvalidParameter(
                f"The 'batch' parameter of ContentHasher.update must have the columns "
                f"{self._schema.names}. Got {batch.schema.names} instead."
            )
        batch = conform_batch(batch, self._schema, "batch")
        self._rows += batch.num_rows
        if self._keys:
            self._held.append(batch)
            return
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            self._digests[name].update(column)

    def hexdigest(self) -> str:
        """Return the SHA-256 hex digest of the rows fed so far.

        Returns:
            64 hexadecimal characters.
        """
        digests = self._digests
        if self._keys:
            digests = {f.name: _digest_for(f.type) for f in self._schema}
            table = pa.Table.from_batches(self._held, self._schema)
            order = _row_order(table, self._keys)
            for name in table.column_names:  # one sorted column in memory at a time
                for chunk in table.column(name).take(order).chunks:
                    digests[name].update(chunk)
        h = hashlib.sha256(_sized(HASH_VERSION))
        h.update(_U64.pack(self._rows))
        h.update(_sized("keys:" + ",".join(self._keys)))
        for name in sorted(digests):
            h.update(_sized(name))
            h.update(_sized(_type_token(self._schema.field(name).type)))
            h.update(digests[name].digest())
        return h.hexdigest()


def _sortable(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_null(t) or isinstance(t, pa.ExtensionType))


def _row_order(table: pa.Table, keys: list[str]) -> pa.Array:
    """The canonical row order: by the keys; only when keys repeat, also by the rest."""
    indices = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])
    if table.num_rows < 2 or not _keys_repeat(table.select(keys).take(indices), keys):
        return indices
    others = sorted(n for n in table.column_names if n not in keys)
    columns = {n: table.column(n) for n in keys}
    for name in others:
        column = table.column(name)
        # Nested values cannot be sorted by Arrow: their reprs can (a Python
        # loop per row, paid only for rows with repeated keys and nested columns).
        columns[name] = column if _sortable(column.type) else _repr_column(column)
    order = [*keys, *others]
    return pc.sort_indices(pa.table(columns), sort_keys=[(n, "ascending") for n in order])


def _repr_column(column: pa.ChunkedArray) -> pa.Array:
    return pa.array([repr(v) for v in column.to_pylist()], pa.large_string())


def _keys_repeat(table: pa.Table, keys: list[str]) -> bool:
    """Whether two neighbouring rows of a key-sorted table have equal keys."""
    same: Any = None
    for key in keys:
        column = table.column(key)
        head, tail = column.slice(0, len(column) - 1), column.slice(1)
        equal = pc.fill_null(pc.equal(head, tail), False)
        equal = pc.or_(equal, pc.and_(head.is_null(), tail.is_null()))
        if pa.types.is_floating(column.type):
            both_nan = pc.fill_null(pc.and_(pc.is_nan(head), pc.is_nan(tail)), False)
            equal = pc.or_(equal, both_nan)
        same = equal if same is None else pc.and_(same, equal)
    return bool(pc.any(same).as_py())


def content_hash(table: pa.Table, key_columns: Sequence[str] = ()) -> str:
    """Return the content hash of a table (normalised first).

    Args:
        table: the data.
        key_columns: columns that identify a row; given, row order does not matter.

    Returns:
        The SHA-256 hex digest; see the module docstring for what it covers.

    Raises:
        InvalidParameter: a key column is not in the table.
    """
    table = normalize_table(table)
    hasher = ContentHasher(table.schema, key_columns)
    for batch in table.to_batches():
        hasher.update(batch)
    return hasher.hexdigest()
