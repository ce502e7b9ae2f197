"""Typed columns of a prediction-log segment: one Arrow list column per input feature.

A segment row is one request; next to its ``inputs`` and ``output`` JSON text the
flusher writes (off the request path):

* ``rows`` (int32): how many rows the request held;
* ``in.<feature>`` (``list<T>``): the feature's value for each of those rows, null
  where the request did not send the feature;
* ``out.prediction`` (``list<T>``): the prediction for each row (nulls when the
  output does not hold one value per row).

``T`` is one of :data:`VALUE_TYPES`. A feature is typed by the answering model's
signature when it is known and every value fits without change (``integer`` →
int64, ``float`` → float64, ``boolean`` → bool, ``string`` → string; ``datetime``
stays the text it was sent as); otherwise by what the values are: booleans, integers,
numbers, text, or — for a mix of those, nested values or integers beyond 64 bits —
text holding each value's JSON (a string stays itself). Segments typed differently
read together by the same rule (:func:`common_type`, :func:`as_text`), so a column
reads the same whichever segments it comes from; old segments without these columns
are converted from their JSON by :func:`typed_columns` itself.

A segment's typed columns are checked before they are trusted (:func:`check_typed`):
allowed types only, every list as long as its request's ``rows``, a prediction list
for every request, and at most :data:`MAX_REQUEST_ROWS` rows per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loopml.serving._payloads import FloatRows
from loopml.serving._wal import MAX_FRAME

__all__ = [
    "INPUT_PREFIX",
    "MAX_REQUEST_ROWS",
    "PREDICTION_COLUMN",
    "ROWS_COLUMN",
    "VALUE_TYPES",
    "SignatureTypes",
    "as_text",
    "cast_to",
    "check_typed",
    "common_type",
    "request_rows",
    "typed_columns",
    "typed_values",
]

INPUT_PREFIX = "in."
"""A segment's column ``in.<feature>`` holds that input feature."""
PREDICTION_COLUMN = "out.prediction"
"""The segment column of the predictions, one per row."""
ROWS_COLUMN = "rows"
"""The segment column of how many rows each request held."""

VALUE_TYPES: tuple[pa.DataType, ...] = (
    pa.null(),
    pa.bool_(),
    pa.int64(),
    pa.float64(),
    pa.string(),
)
"""The element types a typed column may have (null: no value was ever sent)."""

_BY_SIGNATURE = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
}
_INT32_MAX = 2**31 - 1

MAX_REQUEST_ROWS = MAX_FRAME // 2
"""The most rows a logged request can hold: a WAL frame spends at least 2 bytes a row."""

SignatureTypes = Callable[[str], dict[str, str] | None]
"""A model version reference (``credit/7``) → its signature's ``{input name: type}``, or None."""


def typed_values(values: Sequence[Any] | np.ndarray, wanted: pa.DataType | None = None) -> pa.Array:
    """``values`` as one Arrow array of a :data:`VALUE_TYPES` type (see the module docstring).

    Args:
        values: Python values as JSON decodes them (or a float64 array).
        wanted: the type the signature gives, used when every value fits it unchanged.
    """
    if isinstance(values, np.ndarray):
        # NaN as null, as the JSON text of the same values has it.
        array: pa.Array = pa.array(values, type=pa.float64(), from_pandas=True)
    else:
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return _json_text(values)
    if array.type not in VALUE_TYPES:  # nested lists, objects, anything else Arrow guessed
        return _json_text(array.to_pylist())
    if wanted is None or array.type == wanted:
        return array
    if array.type == pa.null() or (array.type, wanted) == (pa.int64(), pa.float64()):
        return array.cast(wanted)
    if (array.type, wanted) == (pa.float64(), pa.int64()):
        try:
            return pc.cast(array, wanted, safe=True)  # whole floats only
        except (pa.ArrowInvalid, OverflowError):
            return array
    return array


def _json_text(values: Sequence[Any]) -> pa.Array:
    return pa.array(
        [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
        type=pa.string(),
    )


def common_type(types: Sequence[pa.DataType]) -> pa.DataType:
    """The type a column of these element types is read as: one type, float for
    integers and floats, text for any other mix (null types join anything)."""
    found = {t for t in types if t != pa.null()}
    if not found:
        return pa.null()
    if len(found) == 1:
        return found.pop()
    if found == {pa.int64(), pa.float64()}:
        return pa.float64()
    return pa.string()


def as_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``array`` as text the way a mixed column is written: each value's JSON, strings as is."""
    return _json_text(array.to_pylist())


def cast_to(array: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """``array`` (of a :data:`VALUE_TYPES` type) as ``target`` (from :func:`common_type`)."""
    if array.type == target:
        return array
    if target == pa.string():
        return as_text(array)
    return array.cast(target)


def request_rows(inputs: Any, output: Any) -> tuple[int, dict[str, Any]]:
    """How many rows a request held, and its columns (empty when the inputs are not columns).

    Inputs are columns when they are an object of equal-length lists (what the server
    logs) or of single values (one row). Otherwise the output tells: a list holds
    one prediction per row, anything else is one row.
    """
    if isinstance(inputs, FloatRows):
        return int(inputs.values.shape[0]), dict(zip(inputs.names, inputs.values.T, strict=True))
    if isinstance(inputs, dict) and inputs:
        values = list(inputs.values())
        if all(isinstance(v, list) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) == 1 and lengths != {0}:
                return lengths.pop(), inputs
        elif not any(isinstance(v, list) for v in values):
            return 1, {name: [value] for name, value in inputs.items()}
    return (len(output) if isinstance(output, list) and output else 1), {}


def typed_columns(
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    versions: Sequence[str],
    signature_types: SignatureTypes | None = None,
) -> dict[str, pa.Array]:
    """The typed columns of a segment's requests (see the module docstring).

    Args:
        inputs: each request's inputs, decoded from JSON, or :class:`FloatRows`.
        outputs: each request's output, decoded from JSON.
        versions: each request's model version reference.
        signature_types: the input types of a model version, when known.

    Returns:
        ``rows``, ``in.<feature>`` for each feature any request sent (sorted by
        name) and ``out.prediction``, each one entry per request.
    """
    count = len(inputs)
    rows = np.empty(count, dtype=np.int64)
    features: dict[str, dict[int, Any]] = {}
    predictions: dict[int, Any] = {}
    wanted: dict[str, set[str]] = {}
    known: dict[str, dict[str, str] | None] = {}
    for index, (request, output, version) in enumerate(zip(inputs, outputs, versions, strict=True)):
        n, columns = request_rows(request, output)
        rows[index] = n
        for name, values in columns.items():
            features.setdefault(name, {})[index] = values
        if isinstance(output, list) and len(output) == n:
            predictions[index] = output
        elif not isinstance(output, list) and n == 1:
            predictions[index] = [output]
        else:
            predictions[index] = [None] * n
        if signature_types is not None and columns:
            if version not in known:
                known[version] = signature_types(version)
            types = known[version] or {}
            for name in columns:
                wanted.setdefault(name, set()).add(types.get(name, ""))
    typed: dict[str, pa.Array] = {ROWS_COLUMN: pa.array(rows, type=pa.int32())}
    for name in sorted(features):
        said = wanted.get(name, set())
        target = _BY_SIGNATURE.get(said.pop()) if len(said) == 1 else None
        typed[INPUT_PREFIX + name] = _list_column(features[name], rows, target)
    typed[PREDICTION_COLUMN] = _list_column(predictions, rows, None)
    return typed


def _list_column(present: dict[int, Any], rows: np.ndarray, wanted: pa.DataType | None) -> pa.Array:
    """One list per request: ``present[i]`` for request ``i``, null for the others."""
    count = len(rows)
    valid = np.zeros(count, dtype=bool)
    valid[list(present)] = True
    lengths = np.where(valid, rows, 0)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    chunks = [present[i] for i in sorted(present)]
    if chunks and all(isinstance(c, np.ndarray) for c in chunks):
        values = typed_values(np.concatenate(chunks), wanted)
    else:
        flat = [v for c in chunks for v in (c.tolist() if isinstance(c, np.ndarray) else c)]
        values = typed_values(flat, wanted)
    mask = pa.array(~valid)
    if offsets[-1] > _INT32_MAX:
        return pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=mask)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values, mask=mask)


def check_typed(schema: pa.Schema, table: pa.Table | None = None) -> str | None:
    """What is wrong with a segment's typed columns, or None when they can be trusted.

    Args:
        schema: the segment's schema (its typed columns are checked for type).
        table: ``rows``, ``out.prediction`` and any ``in.*`` columns read from it,
            checked for lengths.
    """
    names = [n for n in schema.names if n.startswith(INPUT_PREFIX) or n == PREDICTION_COLUMN]
    if ROWS_COLUMN not in schema.names or schema.field(ROWS_COLUMN).type != pa.int32():
        return f"'{ROWS_COLUMN}' is not an int32 column"
    if PREDICTION_COLUMN not in names:
        return f"'{PREDICTION_COLUMN}' is missing"
    for name in names:
        kind = schema.field(name).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or (
            kind.value_type not in VALUE_TYPES
        ):
            return f"{name!r} is of type {kind}, not a list of {', '.join(map(str, VALUE_TYPES))}"
    if table is None:
        return None
    counts = table.column(ROWS_COLUMN)
    if counts.null_count or (
        len(counts)
        and not 1 <= pc.min(counts).as_py() <= pc.max(counts).as_py() <= MAX_REQUEST_ROWS
    ):
        return f"'{ROWS_COLUMN}' has a null or a count outside 1 to {MAX_REQUEST_ROWS}"
    if table.column(PREDICTION_COLUMN).null_count:
        return f"'{PREDICTION_COLUMN}' has a null list"
    expected = counts.to_numpy().astype(np.int64)
    for name in table.column_names:
        if name == ROWS_COLUMN:
            continue
        column = table.column(name)
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        if np.any(valid & (lengths != expected)):
            return f"{name!r} has a list whose length is not its request's '{ROWS_COLUMN}'"
    return None
