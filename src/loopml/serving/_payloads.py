"""Request bodies of the inference server, turned into one canonical form: columns.

A request's rows become :data:`Columns`, a dict of column name → list of values
(of equal length), which is what a DataFrame is built from fastest and what the
prediction log stores. Three JSON shapes are accepted on
``/v1/endpoints/{name}/predict``:

* ``{"records": [{"age": 31, "income": 2.5}, ...]}``
* ``{"columns": {"age": [31, 40], "income": [2.5, 3.0]}}``
* ``{"dataframe_split": {"columns": ["age", "income"], "data": [[31, 2.5], [40, 3.0]]}}``

and CSV with a header row (``Content-Type: text/csv``), its column types inferred.

A ``dataframe_split`` of numbers only, for an endpoint whose models take only float
columns, is decoded without building a Python object per value:
:func:`parse_float_split` reads it with simdjson straight into one 2-D float64
array, :class:`FloatRows` (a 10,000-row, 20-column body: ~6 ms instead of ~30 ms). Anything
else (text, booleans, nulls, ragged or nested rows, extra keys) is left to the
general parser, which accepts or refuses it as before.

and on ``/v2/models/{name}/infer`` (Open Inference Protocol v2) one input per column:
``{"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 40]}]}``.

Every failure raises :class:`PayloadError`, which names the field at fault and what
was expected, so the server can answer 422 with a useful body.

Every parser is bounded by :class:`PayloadLimits` (rows, columns, cells, JSON nesting
depth), checked *before* the columns are built: ``records`` whose rows each bring a
new key would otherwise grow to rows times keys cells. Given the column names the
endpoint's models take (``names``), a column they do not name is refused, naming the
first few unknown keys, before any column is built.

Example:
    >>> parse_predict_body({"records": [{"a": 1}, {"a": 2, "b": "x"}]})
    {'a': [1, 2], 'b': [None, 'x']}
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import simdjson

from loopml.errors import InvalidParameter

__all__ = [
    "DEFAULT_LIMITS",
    "Columns",
    "FloatRows",
    "Payload",
    "PayloadError",
    "PayloadLimits",
    "first_value",
    "json_depth",
    "parse_csv",
    "parse_float_split",
    "parse_json",
    "parse_oip_inputs",
    "parse_predict_body",
    "row_count",
    "to_columns",
]

_PREDICT_SHAPES = ("records", "columns", "dataframe_split")
_SHOWN_UNKNOWN = 5  # unknown keys named in an error


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """What one request body may hold; beyond it the parsers raise :class:`PayloadError`.

    Attributes:
        max_rows: rows per request.
        max_columns: distinct columns per request (CSV header width included).
        max_cells: rows times columns per request (``records`` with missing keys cost
            a cell each, though the body does not spell them).
        max_depth: nesting of JSON arrays and objects in the whole body.
    """

    max_rows: int = 100_000
    max_columns: int = 1_024
    max_cells: int = 4_000_000
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_columns", "max_cells", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameter(
                    f"The {name!r} parameter of PayloadLimits must be an int >= 1; "
                    f"got {value!r} instead."
                )


DEFAULT_LIMITS = PayloadLimits()

Columns = dict[str, list[Any]]
"""Column name → values; every column of one request has the same length (≥ 1)."""


@dataclass(frozen=True, slots=True, eq=False)
class FloatRows:
    """Rows of numbers only, as one 2-D float64 array (see :func:`parse_float_split`).

    Attributes:
        names: the column names, distinct, in the order of the array's columns.
        values: shape ``(rows, len(names))``, float64, at least one row.
    """

    names: tuple[str, ...]
    values: np.ndarray[Any, np.dtype[np.float64]]

    def columns_json(self) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
        """Column name → 1-D array: what the prediction log stores, as orjson encodes it."""
        by_column = np.ascontiguousarray(self.values.T)
        return dict(zip(self.names, by_column, strict=True))


Payload = Columns | FloatRows
"""A request's rows as parsed: columns, or the float fast form."""


def row_count(payload: Payload) -> int:
    """How many rows a request holds."""
    if isinstance(payload, FloatRows):
        return int(payload.values.shape[0])
    return len(next(iter(payload.values())))


def first_value(payload: Payload, name: str) -> Any:
    """The first row's value of column ``name``, or None when there is no such column."""
    if isinstance(payload, FloatRows):
        if name not in payload.names:
            return None
        return payload.values[0, payload.names.index(name)].item()
    column = payload.get(name)
    return None if column is None else column[0]


def to_columns(payload: Payload) -> Columns:
    """A request's rows as :data:`Columns`."""
    if isinstance(payload, FloatRows):
        return dict(zip(payload.names, payload.values.T.tolist(), strict=True))
    return payload


class PayloadError(InvalidParameter):
    """Raised by the payload parsers when a request body has the wrong shape.

    Attributes:
        field: where in the body the problem is (``records[3]``, ``columns.age``).
        expected: what that field should have been.
    """

    def __init__(self, field: str, expected: str, got: object = None) -> None:
        self.field = field
        self.expected = expected
        shown = _describe(got)
        super().__init__(f"The field {field!r} must be {expected}; got {shown} instead.")


def parse_json(body: bytes, max_depth: int = DEFAULT_LIMITS.max_depth) -> object:
    """Decode a JSON request body nested at most ``max_depth`` arrays and objects deep.

    Raises:
        PayloadError: the body is not UTF-8 JSON, or is nested deeper.
    """
    # An escaped quote throws the count on the bytes off: count on the decoded value
    # then (orjson itself refuses more than 1024 levels).
    exact = b'\\"' not in body
    if exact and _too_deep(body, max_depth):
        raise _too_deep_error(max_depth)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("body", "a JSON document", f"invalid JSON ({exc})") from None
    if not exact and json_depth(document) > max_depth:
        raise _too_deep_error(max_depth)
    return document


def _too_deep_error(max_depth: int) -> PayloadError:
    return PayloadError(
        "body", f"JSON nested at most {max_depth} arrays or objects deep", "deeper nesting"
    )


def json_depth(value: object) -> int:
    """How many arrays and objects deep ``value`` nests (0 for a scalar), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in item if isinstance(child, dict | list | tuple))
    return deepest


def _too_deep(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests deeper than ``limit``, counted on its bytes (vectorised).

    Brackets inside strings are not counted; exact for a text without escaped quotes
    (``\\"``), which :func:`parse_json` counts on the decoded value instead.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    data = np.frombuffer(body, dtype=np.uint8)
    in_string = (np.cumsum(data == ord('"'), dtype=np.int64) & 1).astype(bool)
    opens = ((data == ord("[")) | (data == ord("{"))) & ~in_string
    closes = ((data == ord("]")) | (data == ord("}"))) & ~in_string
    depth = np.cumsum(opens.astype(np.int32) - closes.astype(np.int32))
    return bool(depth.max(initial=0) > limit)


def parse_float_split(
    body: bytes, names: Collection[str] | None = None, limits: PayloadLimits = DEFAULT_LIMITS
) -> FloatRows | None:
    """The rows of ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``, when
    every value is a JSON number; None for any other body (parse it the general way).

    Integers are taken as floats, as the signature check does for float columns. An
    ``index`` key is allowed (numbers only) and ignored, as :func:`parse_predict_body`
    ignores it.

    Raises:
        PayloadError: the rows have a column not in ``names``, or exceed ``limits``.
    """
    if b"\\" in body:  # escapes: the bracket count below would not be exact
        return None
    try:
        document = simdjson.Parser().parse(body)
    except (ValueError, RuntimeError):  # invalid JSON (UnicodeDecodeError), too deep
        return None
    try:
        rows = _float_split(body, document)
    except (TypeError, ValueError, KeyError):  # a value that is not a number, a bad shape
        return None
    if rows is not None:
        _check_names("dataframe_split.columns", rows.names, names, limits)
        _check_size("dataframe_split.data", rows.values.shape[0], len(rows.names), limits)
    return rows


def _float_split(body: bytes, document: object) -> FloatRows | None:
    if not isinstance(document, simdjson.Object) or list(document.keys()) != ["dataframe_split"]:
        return None
    split = document["dataframe_split"]
    if not isinstance(split, simdjson.Object):
        return None
    keys = sorted(split.keys())
    if keys not in (["columns", "data"], ["columns", "data", "index"]):
        return None
    names, data = split["columns"], split["data"]
    if not isinstance(names, simdjson.Array) or not isinstance(data, simdjson.Array):
        return None
    labels = [n for n in names.as_list() if isinstance(n, str)]
    if not labels or len(labels) != len(names) or len(set(labels)) != len(labels):
        return None
    width, rows = len(labels), len(data)
    if not rows or not all(isinstance(row, simdjson.Array) and len(row) == width for row in data):
        return None
    arrays = rows + 2  # the rows, 'columns' and 'data'
    if "index" in keys:
        index = split["index"]
        if not isinstance(index, simdjson.Array):
            return None
        index.as_buffer(of_type="d")  # numbers only (raises otherwise)
        arrays += 1
    # as_buffer flattens nested lists, so rule them out: with no escapes and no text
    # but keys and column names, every '[' outside a name opens one of the arrays.
    if body.count(b"[") - sum(label.count("[") for label in labels) != arrays:
        return None
    values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
    return FloatRows(tuple(labels), values.reshape(rows, width))


def parse_csv(
    body: bytes, names: Collection[str] | None = None, limits: PayloadLimits = DEFAULT_LIMITS
) -> Columns:
    """The columns of a CSV body: a header row, then one row per example.

    Column types are inferred (integers, floats, booleans, text); empty cells are
    missing values. The header is read and checked (width, ``names``) before the rows.

    Raises:
        PayloadError: the body is not CSV with a header and at least one row, or
            exceeds ``limits``, or has a column ``names`` does not hold.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    end = body.find(b"\n")
    header_line = body if end < 0 else body[:end]
    if header_line.count(b",") >= limits.max_columns:
        raise PayloadError(
            "body", f"CSV of at most {limits.max_columns} columns", "a wider header row"
        )
    try:
        header = next(csv.reader([header_line.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PayloadError("body", "CSV with a header row", f"invalid CSV ({exc})") from None
    _check_names("body", header, names, limits)
    try:
        table = pacsv.read_csv(io.BytesIO(body))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise PayloadError("body", "CSV with a header row", f"invalid CSV ({exc})") from None
    if table.num_rows == 0:
        raise PayloadError("body", "CSV with a header row and at least one row", "no rows")
    columns = table.column_names
    if len(set(columns)) != len(columns):
        raise PayloadError("body", "CSV with distinct column names", columns)
    _check_names("body", columns, names, limits)
    _check_size("body", table.num_rows, len(columns), limits)
    return {name: table.column(name).to_pylist() for name in columns}


def parse_predict_body(
    body: object, names: Collection[str] | None = None, limits: PayloadLimits = DEFAULT_LIMITS
) -> Columns:
    """The records of a ``/v1`` predict request (see the module docstring for the shapes).

    Args:
        body: the decoded JSON body.
        names: the columns the endpoint takes; None takes any (up to the limits).
        limits: rows, columns and cells allowed.

    Raises:
        PayloadError: none or several of the shapes, a malformed one, a column not in
            ``names``, or more than ``limits`` allow.
    """
    if not isinstance(body, Mapping):
        raise PayloadError("body", "a JSON object", body)
    present = [key for key in _PREDICT_SHAPES if key in body]
    if len(present) != 1:
        raise PayloadError(
            "body", "an object with exactly one of 'records', 'columns' or 'dataframe_split'", body
        )
    key = present[0]
    value = body[key]
    if key == "records":
        return _records(value, names, limits)
    if key == "columns":
        return _columns(value, "columns", names, limits)
    return _split(value, names, limits)


def parse_oip_inputs(
    body: object, names: Collection[str] | None = None, limits: PayloadLimits = DEFAULT_LIMITS
) -> Columns:
    """The records of an OIP v2 ``infer`` request: one input tensor per column.

    Each input's ``shape`` must be ``[n]`` or ``[n, 1]``, and every input must have
    the same ``n``.

    Raises:
        PayloadError: a malformed request, an input not in ``names``, or more than
            ``limits`` allow.
    """
    if not isinstance(body, Mapping):
        raise PayloadError("body", "a JSON object", body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise PayloadError("inputs", "a non-empty list of input tensors", inputs)
    _check_names("inputs", [t.get("name") for t in inputs if isinstance(t, Mapping)], names, limits)
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, Mapping):
            raise PayloadError(where, "an object with name, shape, datatype and data", tensor)
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise PayloadError(f"{where}.name", "a non-empty string", name)
        if name in columns:
            raise PayloadError(f"{where}.name", "a name no other input uses", name)
        shape = tensor.get("shape")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)
        ):
            raise PayloadError(f"{where}.shape", "[n] or [n, 1] (one column per input)", shape)
        if not isinstance(tensor.get("datatype"), str):
            raise PayloadError(
                f"{where}.datatype", "a datatype such as FP64", tensor.get("datatype")
            )
        data = _flat(tensor.get("data"), f"{where}.data")
        if len(data) != shape[0]:
            raise PayloadError(f"{where}.data", f"{shape[0]} values (from shape {shape})", data)
        columns[name] = data
    return _columns(columns, "inputs", names, limits)


# -- internals ------------------------------------------------------------------------------


def _check_names(
    field: str, found: Sequence[object], names: Collection[str] | None, limits: PayloadLimits
) -> None:
    """Refuse more columns than ``limits`` allow, or any column ``names`` does not hold."""
    unknown = [] if names is None else [name for name in found if name not in names]
    if unknown and names is not None:
        shown = ", ".join(repr(name)[:40] for name in unknown[:_SHOWN_UNKNOWN])
        more = f" and {len(unknown) - _SHOWN_UNKNOWN} more" if len(unknown) > _SHOWN_UNKNOWN else ""
        taken = ", ".join(map(repr, sorted(names)))
        raise PayloadError(
            field, f"only columns the endpoint takes ({taken})", f"unknown keys {shown}{more}"
        )
    if len(found) > limits.max_columns:
        raise PayloadError(field, f"at most {limits.max_columns} columns", f"{len(found)} columns")


def _check_size(field: str, rows: int, columns: int, limits: PayloadLimits) -> None:
    if rows > limits.max_rows:
        raise PayloadError(field, f"at most {limits.max_rows} rows", f"{rows} rows")
    if rows * columns > limits.max_cells:
        expected = f"at most {limits.max_cells} cells (rows times columns)"
        raise PayloadError(field, expected, f"{rows * columns} cells")


def _records(value: object, names: Collection[str] | None, limits: PayloadLimits) -> Columns:
    if not isinstance(value, list) or not value:
        raise PayloadError("records", "a non-empty list of objects", value)
    if len(value) > limits.max_rows:
        raise PayloadError("records", f"at most {limits.max_rows} rows", f"{len(value)} rows")
    found: dict[str, None] = {}
    for i, record in enumerate(value):
        if not isinstance(record, dict):
            raise PayloadError(f"records[{i}]", "an object of column → value", record)
        found.update(dict.fromkeys(record))  # no more keys than the body spells
    # Checked before any column is built: rows times keys cells could be huge.
    _check_names("records", list(found), names, limits)
    _check_size("records", len(value), len(found), limits)
    return {name: [record.get(name) for record in value] for name in found}


def _columns(
    value: object, field: str, names: Collection[str] | None, limits: PayloadLimits
) -> Columns:
    if not isinstance(value, Mapping) or not value:
        raise PayloadError(field, "a non-empty object of column → list of values", value)
    _check_names(field, list(value), names, limits)
    lengths: set[int] = set()
    for name, column in value.items():
        if not isinstance(column, list):
            raise PayloadError(f"{field}.{name}", "a list of values", column)
        lengths.add(len(column))
    if len(lengths) != 1:
        raise PayloadError(field, "columns of equal length", f"lengths {sorted(lengths)}")
    if lengths == {0}:
        raise PayloadError(field, "at least one row", "empty columns")
    _check_size(field, lengths.pop(), len(value), limits)
    return dict(value)


def _split(value: object, names: Collection[str] | None, limits: PayloadLimits) -> Columns:
    if not isinstance(value, Mapping):
        raise PayloadError("dataframe_split", "an object with 'columns' and 'data'", value)
    labels = value.get("columns")
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) for n in labels):
        raise PayloadError("dataframe_split.columns", "a non-empty list of column names", labels)
    if len(set(labels)) != len(labels):
        raise PayloadError("dataframe_split.columns", "distinct column names", labels)
    _check_names("dataframe_split.columns", labels, names, limits)
    rows = value.get("data")
    if not isinstance(rows, list) or not rows:
        raise PayloadError("dataframe_split.data", "a non-empty list of rows", rows)
    _check_size("dataframe_split.data", len(rows), len(labels), limits)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(labels):
            raise PayloadError(f"dataframe_split.data[{i}]", f"a list of {len(labels)} values", row)
    return {
        name: list(column) for name, column in zip(labels, zip(*rows, strict=True), strict=True)
    }


def _flat(data: object, field: str) -> list[Any]:
    if not isinstance(data, list):
        raise PayloadError(field, "a list of values", data)
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            if len(item) != 1:
                raise PayloadError(field, "a flat list, or a list of one-value lists", item)
            flat.append(item[0])
        else:
            flat.append(item)
    return flat


def _describe(value: object, limit: int = 80) -> str:
    if isinstance(value, str) and value.startswith(("invalid JSON", "invalid CSV")):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
