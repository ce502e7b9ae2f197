"""Typed columns of a prediction-log segment: one Arrow list column per input feature.

A segment row is one request; next to its ``inputs`` and ``output`` JSON text the
flusher writes (off the request path):

* ``rows`` (int32): how many rows the request held;
* ``in.<feature>`` (``list<T>``): the feature's value for each of those rows, null
  where the request did not send the feature;
* ``out.prediction`` (``list<T>``): the prediction for each row (nulls when the
  output does not hold one value per row);
* ``proba.<class>`` (``list<float64>``), only when some request logged class
  probabilities: each row's probability of that class, null for requests that logged
  none (see :mod:`loopml.serving._probabilities` for the class keys).

``T`` is one of :data:`VALUE_TYPES`. A feature is typed by the signature of the
versions answering in the segment when they agree on its type and every value fits
without change (``integer`` →
int64, ``float`` → float64, ``boolean`` → bool, ``string`` → string; ``datetime``
stays the text it was sent as); otherwise by what the values are: booleans, integers,
numbers (integers beyond 64 bits too), text, or — for a mix of those or nested values —
text holding each value's JSON (a string stays itself). Segments typed differently
read together by the same rule (:func:`common_type`, :func:`as_text`), so a column
reads the same whichever segments it comes from; old segments without these columns
are converted from their JSON by :func:`typed_columns` itself. The server's two
logged shapes are converted in bulk (Arrow's JSON reader over all of a segment's
texts, or one stacked float array), anything else request by request.

A segment's typed columns are checked before they are trusted (:func:`check_typed`):
allowed types only (``float64`` for probabilities), every list as long as its
request's ``rows``, a prediction list for every request, and at most
:data:`MAX_REQUEST_ROWS` rows per request.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from sqlalchemy import select

from loopml.errors import LoopmlError
from loopml.registry._signature import Signature
from loopml.serving._payloads import FloatRows
from loopml.serving._wal import MAX_FRAME
from loopml.store import Store, tables

INT32_MAX = 2**31 - 1
"""The largest version number the store holds."""

__all__ = [
    "INPUT_PREFIX",
    "INT32_MAX",
    "MAX_REQUEST_ROWS",
    "PREDICTION_COLUMN",
    "PROBA_PREFIX",
    "ROWS_COLUMN",
    "VALUE_TYPES",
    "SignatureTypes",
    "as_text",
    "cast_to",
    "check_typed",
    "common_type",
    "is_typed_column",
    "probability_columns",
    "request_rows",
    "stored_signature",
    "typed_columns",
    "typed_values",
]

INPUT_PREFIX = "in."
"""A segment's column ``in.<feature>`` holds that input feature."""
PREDICTION_COLUMN = "out.prediction"
"""The segment column of the predictions, one per row."""
ROWS_COLUMN = "rows"
"""The segment column of how many rows each request held."""
PROBA_PREFIX = "proba."
"""A segment's column ``proba.<class>`` holds each row's probability of that class."""


def is_typed_column(name: str) -> bool:
    """Whether ``name`` is one of a segment's typed columns (not a :data:`SEGMENT_SCHEMA` one)."""
    return (
        name in (ROWS_COLUMN, PREDICTION_COLUMN)
        or name.startswith(INPUT_PREFIX)
        or name.startswith(PROBA_PREFIX)
    )


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
        return _cast_values(pa.array(values, type=pa.float64(), from_pandas=True), wanted)
    try:
        array = pa.array(values)
    except OverflowError:  # an integer over 64 bits: a float, as Arrow's JSON reader has it
        if not all(v is None or type(v) in (int, float) for v in values):
            return _json_text(values)
        array = pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _json_text(values)
    if array.type not in VALUE_TYPES:  # nested lists, objects, anything else Arrow guessed
        return _json_text(array.to_pylist())
    if array.type == pa.float64() and any(v is True or v is False for v in values):
        return _json_text(values)  # Arrow reads booleans after a float as 1.0 and 0.0
    return _cast_values(array, wanted)


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
        kinds = set(map(type, inputs.values()))
        if kinds == {list}:
            lengths = set(map(len, inputs.values()))
            if len(lengths) == 1 and lengths != {0}:
                return lengths.pop(), inputs
        elif list not in kinds:
            return 1, {name: [value] for name, value in inputs.items()}
    return (len(output) if isinstance(output, list) and output else 1), {}


def typed_columns(
    inputs: Sequence[str | FloatRows | None],
    outputs: Sequence[str | None],
    versions: Sequence[str],
    signature_types: SignatureTypes | None = None,
) -> tuple[dict[str, pa.Array], int]:
    """The typed columns of a segment's requests (see the module docstring).

    A feature is typed by the signature when every version answering in the segment
    gives it the same type (and every value fits it).

    Args:
        inputs: each request's inputs as JSON text, or :class:`FloatRows`.
        outputs: each request's output as JSON text.
        versions: each request's model version reference.
        signature_types: the input types of a model version, when known.

    Returns:
        ``rows``, ``in.<feature>`` for each feature any request sent (sorted by
        name) and ``out.prediction``, each one entry per request; and how many
        texts were not JSON (taken as null).
    """
    said: list[dict[str, str]] = []
    if signature_types is not None:
        said = [signature_types(v) or {} for v in dict.fromkeys(versions)]

    def wanted(name: str) -> pa.DataType | None:
        types = {types.get(name) for types in said}
        return _BY_SIGNATURE.get(types.pop() or "") if len(types) == 1 else None

    # What the server logs is converted in bulk, by Arrow, without a Python object per
    # value (which would also cost the serving threads garbage-collection pauses);
    # anything else request by request. Both give the same columns (a property test
    # holds them to it).
    damaged = 0
    fast = _float_rows(inputs) or _json_lines(inputs)
    features: dict[str, pa.Array] = {}
    if fast is not None:
        rows, lists = fast
        for name in sorted(lists):
            features[name] = _retyped(lists[name], wanted(name))
    else:
        decoded = []
        for text in inputs:
            value, bad = _decoded(text)
            decoded.append(value)
            damaged += bad
        rows, present = _each_request(decoded, outputs)
        for name in sorted(present):
            features[name] = _list_column(present[name], rows, wanted(name))
    typed: dict[str, pa.Array] = {ROWS_COLUMN: pa.array(rows, type=pa.int32())}
    typed.update((INPUT_PREFIX + name, column) for name, column in features.items())
    predicted = _json_predictions(outputs, rows)
    if predicted is None:
        values = []
        for text in outputs:
            value, bad = _decoded(text)
            values.append(value)
            damaged += bad
        predicted = _list_column(dict(enumerate(_predictions(values, rows))), rows, None)
    typed[PREDICTION_COLUMN] = predicted
    return typed, damaged


def _decoded(text: Any) -> tuple[Any, int]:
    """The value of JSON text (FloatRows as they are), and 1 when it is not JSON (None then)."""
    if isinstance(text, FloatRows):
        return text, 0
    try:
        return orjson.loads(text), 0
    except (orjson.JSONDecodeError, TypeError):
        return None, 1


def _each_request(
    inputs: Sequence[Any], outputs: Sequence[Any]
) -> tuple[np.ndarray, dict[str, dict[int, Any]]]:
    """Rows per request, and feature → {request index: its values}.

    ``outputs`` are JSON text (or decoded values): only whether one is a list, and
    how long, is looked at, when the inputs do not say how many rows there are.
    """
    rows = np.empty(len(inputs), dtype=np.int64)
    present: dict[str, dict[int, Any]] = {}
    for index, (request, output) in enumerate(zip(inputs, outputs, strict=True)):
        if isinstance(output, str):
            output, _ = _decoded(output)
        rows[index], columns = request_rows(request, output)
        for name, values in columns.items():
            present.setdefault(name, {})[index] = values
    return rows, present


def _predictions(outputs: Sequence[Any], rows: np.ndarray) -> list[list[Any]]:
    """Each request's predictions, one per row (nulls when the output does not pair up)."""
    found: list[list[Any]] = []
    for output, n in zip(outputs, rows.tolist(), strict=True):
        if isinstance(output, list) and len(output) == n:
            found.append(output)
        elif not isinstance(output, list) and n == 1:
            found.append([output])
        else:
            found.append([None] * n)
    return found


def _float_rows(inputs: Sequence[Any]) -> tuple[np.ndarray, dict[str, pa.Array]] | None:
    """Columns of requests that are all :class:`FloatRows` of the same names, else None."""
    if not inputs or not all(isinstance(r, FloatRows) for r in inputs):
        return None
    names = inputs[0].names
    if any(r.names != names for r in inputs):
        return None
    values = np.concatenate([r.values for r in inputs]) if len(inputs) > 1 else inputs[0].values
    rows = np.array([r.values.shape[0] for r in inputs], dtype=np.int64)
    offsets = _offsets(rows)
    return rows, {
        name: _lists(offsets, pa.array(values[:, j], type=pa.float64(), from_pandas=True), None)
        for j, name in enumerate(names)
    }


# pyarrow 26's JSON reader builds invalid lists from a null followed by numbers
# ([null, 0] gives offsets past its values): text with a null goes the slow way.
_NULL = b"null"
_MAX_BULK_BYTES = 2**30  # Arrow's JSON block size is an int32


def _read_lines(texts: Sequence[Any], wrap: bool = False) -> pa.Table | None:
    """JSON texts (objects; ``wrap`` makes ``{"o": text}`` of each) read as one Arrow
    table, or None when they are not all objects of types both paths read alike."""
    if not texts or not all(type(t) is str for t in texts):
        return None
    lines = [f'{{"o":{t}}}' for t in texts] if wrap else texts
    data = "\n".join(lines).encode()
    if (
        len(data) > _MAX_BULK_BYTES
        or data.count(b"\n") != len(texts) - 1  # a text of several lines
        or _NULL in data
    ):
        return None
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
        )
    except pa.ArrowInvalid:  # not JSON objects, or a column of several kinds
        return None
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return table if table.num_rows == len(texts) else None


def _json_lines(inputs: Sequence[Any]) -> tuple[np.ndarray, dict[str, pa.Array]] | None:
    """Columns of inputs that are all JSON objects of equal-length lists of values, else None."""
    table = _read_lines(inputs)
    if table is None or not table.num_columns:
        return None
    lists: dict[str, pa.Array] = {}
    rows = np.zeros(table.num_rows, dtype=np.int64)
    lengths: list[tuple[np.ndarray, np.ndarray]] = []
    for name in table.column_names:
        kind = table.schema.field(name).type
        if not pa.types.is_list(kind) or kind.value_type not in VALUE_TYPES:
            return None  # single values, nested values, date-times Arrow parsed
        column = table.column(name).combine_chunks()
        valid = np.asarray(column.is_valid())
        length = np.asarray(pc.list_value_length(column).fill_null(0))
        lengths.append((valid, length))
        rows = np.maximum(rows, length)
        lists[name] = column
    if np.any(rows < 1) or any(np.any(v & (n != rows)) for v, n in lengths):
        return None  # ragged or empty columns: the request-by-request path decides
    return rows, lists


def _json_predictions(outputs: Sequence[Any], rows: np.ndarray) -> pa.Array | None:
    """The prediction column when every output is one value per row, read in bulk."""
    table = _read_lines(outputs, wrap=True)
    if table is None or table.column_names != ["o"]:
        return None
    column = table.column("o").combine_chunks()
    kind = column.type
    if column.null_count:
        return None
    if kind in VALUE_TYPES:  # single values: requests of one row each
        return _lists(_offsets(rows), column, None) if np.all(rows == 1) else None
    if not pa.types.is_list(kind) or kind.value_type not in VALUE_TYPES:
        return None
    if np.any(np.asarray(pc.list_value_length(column)) != rows):
        return None
    return column


def _retyped(column: pa.Array, wanted: pa.DataType | None) -> pa.Array:
    """A list column with its values typed as :func:`typed_values` types them."""
    values = column.flatten()
    typed = _cast_values(values, wanted)
    if typed is values:
        return column
    return _lists(_offsets_of(column), typed, column.is_null())


def _cast_values(values: pa.Array, wanted: pa.DataType | None) -> pa.Array:
    """``values`` as ``wanted`` when the cast changes no value, else as they are."""
    if wanted is None or values.type == wanted:
        return values
    if values.type == pa.null() or (values.type, wanted) == (pa.int64(), pa.float64()):
        return values.cast(wanted)
    if (values.type, wanted) == (pa.float64(), pa.int64()):
        try:
            return pc.cast(values, wanted, safe=True)
        except (pa.ArrowInvalid, OverflowError):
            return values
    return values


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _offsets_of(column: pa.Array) -> np.ndarray:
    lengths = np.asarray(pc.list_value_length(column).fill_null(0), dtype=np.int64)
    return _offsets(lengths)


def _lists(offsets: np.ndarray, values: pa.Array, mask: pa.Array | None) -> pa.Array:
    """A list array of ``values`` cut at ``offsets`` (int64 offsets only when needed)."""
    if offsets[-1] > _INT32_MAX:
        return pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=mask)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values, mask=mask)


def _list_column(present: dict[int, Any], rows: np.ndarray, wanted: pa.DataType | None) -> pa.Array:
    """One list per request: ``present[i]`` for request ``i``, null for the others."""
    valid = np.zeros(len(rows), dtype=bool)
    valid[list(present)] = True
    chunks = [present[i] for i in sorted(present)]
    if chunks and all(isinstance(c, np.ndarray) for c in chunks):
        values = typed_values(np.concatenate(chunks), wanted)
    else:
        flat = list(
            itertools.chain.from_iterable(
                c.tolist() if isinstance(c, np.ndarray) else c for c in chunks
            )
        )
        values = typed_values(flat, wanted)
    return _lists(_offsets(np.where(valid, rows, 0)), values, pa.array(~valid))


def check_typed(schema: pa.Schema, table: pa.Table | None = None) -> str | None:
    """What is wrong with a segment's typed columns, or None when they can be trusted.

    Args:
        schema: the segment's schema (its typed columns are checked for type).
        table: ``rows``, ``out.prediction`` and any ``in.*`` columns read from it,
            checked for lengths.
    """
    names = [n for n in schema.names if is_typed_column(n) and n != ROWS_COLUMN]
    if ROWS_COLUMN not in schema.names or schema.field(ROWS_COLUMN).type != pa.int32():
        return f"'{ROWS_COLUMN}' is not an int32 column"
    if PREDICTION_COLUMN not in names:
        return f"'{PREDICTION_COLUMN}' is missing"
    for name in names:
        kind = schema.field(name).type
        allowed = _PROBABILITY_TYPES if name.startswith(PROBA_PREFIX) else VALUE_TYPES
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or (
            kind.value_type not in allowed
        ):
            return f"{name!r} is of type {kind}, not a list of {', '.join(map(str, allowed))}"
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


_PROBABILITY_TYPES = (pa.null(), pa.float64())


def probability_columns(
    probabilities: Sequence[FloatRows | None], rows: np.ndarray
) -> dict[str, pa.Array]:
    """``proba.<class>`` columns of a segment's requests (none when no request logged any).

    A request's probabilities that are not one row per predicted row (a damaged record)
    are left out, as for a request that logged none.

    Args:
        probabilities: each request's class probabilities (columns named by class key).
        rows: how many rows each request held.
    """
    keys = list(dict.fromkeys(k for p in probabilities if p is not None for k in p.names))
    columns: dict[str, pa.Array] = {}
    for key in keys:
        present: dict[int, Any] = {}
        for index, (found, count) in enumerate(zip(probabilities, rows.tolist(), strict=True)):
            if found is not None and key in found.names and found.values.shape[0] == count:
                present[index] = found.values[:, found.names.index(key)]
        columns[PROBA_PREFIX + key] = _list_column(present, rows, pa.float64())
    return columns


def stored_signature(store: Store, model_version: str) -> dict[str, str] | None:
    """The input types of model version ``name/N`` as stored, when one version has that name.

    Model names are per project: when several projects have a ``name/N``, or the
    stored signature is not readable, the segment's types are inferred instead.
    """
    name, _, number = model_version.rpartition("/")
    if not name or not number.isdigit() or int(number) > INT32_MAX:
        return None
    model, version = tables.MODEL, tables.MODEL_VERSION
    query = (
        select(version.c.signature)
        .join(model, model.c.id == version.c.model_id)
        .where(model.c.name == name, version.c.version == int(number))
        .limit(2)
    )
    with store.read() as connection:
        found = connection.execute(query).scalars().all()
    if len(found) != 1 or not isinstance(found[0], dict):
        return None
    try:
        signature = Signature.from_dict(found[0])
    except LoopmlError:
        return None
    return {c.name: c.type for c in signature.inputs}
