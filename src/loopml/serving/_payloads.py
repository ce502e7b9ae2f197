"""Request bodies of the inference server, turned into one canonical form: columns.

A request's rows become :data:`Columns`, a dict of column name → list of values
(of equal length), which is what a DataFrame is built from fastest and what the
prediction log stores. Three JSON shapes are accepted on
``/v1/endpoints/{name}/predict``:

* ``{"records": [{"age": 31, "income": 2.5}, ...]}``
* ``{"columns": {"age": [31, 40], "income": [2.5, 3.0]}}``
* ``{"dataframe_split": {"columns": ["age", "income"], "data": [[31, 2.5], [40, 3.0]]}}``

and CSV with a header row (``Content-Type: text/csv``), its column types inferred.

and on ``/v2/models/{name}/infer`` (Open Inference Protocol v2) one input per column:
``{"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 40]}]}``.

Every failure raises :class:`PayloadError`, which names the field at fault and what
was expected, so the server can answer 422 with a useful body.

Example:
    >>> parse_predict_body({"records": [{"a": 1}, {"a": 2, "b": "x"}]})
    {'a': [1, 2], 'b': [None, 'x']}
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from loopml.errors import InvalidParameter

__all__ = [
    "OIP_DATATYPES",
    "Columns",
    "PayloadError",
    "oip_datatype",
    "parse_csv",
    "parse_json",
    "parse_oip_inputs",
    "parse_predict_body",
]

OIP_DATATYPES: dict[str, str] = {
    "integer": "INT64",
    "float": "FP64",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
"""Signature column type → Open Inference Protocol datatype."""

_PREDICT_SHAPES = ("records", "columns", "dataframe_split")

Columns = dict[str, list[Any]]
"""Column name → values; every column of one request has the same length (≥ 1)."""


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


def parse_json(body: bytes) -> object:
    """Decode a JSON request body.

    Raises:
        PayloadError: the body is not UTF-8 JSON.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("body", "a JSON document", f"invalid JSON ({exc})") from None


def parse_csv(body: bytes) -> Columns:
    """The columns of a CSV body: a header row, then one row per example.

    Column types are inferred (integers, floats, booleans, text); empty cells are
    missing values.

    Raises:
        PayloadError: the body is not CSV with a header and at least one row.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(io.BytesIO(body))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise PayloadError("body", "CSV with a header row", f"invalid CSV ({exc})") from None
    if table.num_rows == 0:
        raise PayloadError("body", "CSV with a header row and at least one row", "no rows")
    names = table.column_names
    if len(set(names)) != len(names):
        raise PayloadError("body", "CSV with distinct column names", names)
    return {name: table.column(name).to_pylist() for name in names}


def parse_predict_body(body: object) -> Columns:
    """The records of a ``/v1`` predict request (see the module docstring for the shapes).

    Raises:
        PayloadError: none or several of the shapes, or a malformed one.
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
        return _records(value)
    if key == "columns":
        return _columns(value, "columns")
    return _split(value)


def parse_oip_inputs(body: object) -> Columns:
    """The records of an OIP v2 ``infer`` request: one input tensor per column.

    Each input's ``shape`` must be ``[n]`` or ``[n, 1]``, and every input must have
    the same ``n``.

    Raises:
        PayloadError: a malformed request.
    """
    if not isinstance(body, Mapping):
        raise PayloadError("body", "a JSON object", body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise PayloadError("inputs", "a non-empty list of input tensors", inputs)
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
    return _columns(columns, "inputs")


def oip_datatype(values: Sequence[Any]) -> str:
    """The OIP datatype of a list of output values (``BYTES`` for anything else)."""
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


# -- internals ------------------------------------------------------------------------------


def _records(value: object) -> Columns:
    if not isinstance(value, list) or not value:
        raise PayloadError("records", "a non-empty list of objects", value)
    names: dict[str, None] = {}
    for i, record in enumerate(value):
        if not isinstance(record, dict):
            raise PayloadError(f"records[{i}]", "an object of column → value", record)
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in value] for name in names}


def _columns(value: object, field: str) -> Columns:
    if not isinstance(value, Mapping) or not value:
        raise PayloadError(field, "a non-empty object of column → list of values", value)
    lengths: set[int] = set()
    for name, column in value.items():
        if not isinstance(column, list):
            raise PayloadError(f"{field}.{name}", "a list of values", column)
        lengths.add(len(column))
    if len(lengths) != 1:
        raise PayloadError(field, "columns of equal length", f"lengths {sorted(lengths)}")
    if lengths == {0}:
        raise PayloadError(field, "at least one row", "empty columns")
    return dict(value)


def _split(value: object) -> Columns:
    if not isinstance(value, Mapping):
        raise PayloadError("dataframe_split", "an object with 'columns' and 'data'", value)
    names = value.get("columns")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PayloadError("dataframe_split.columns", "a non-empty list of column names", names)
    if len(set(names)) != len(names):
        raise PayloadError("dataframe_split.columns", "distinct column names", names)
    rows = value.get("data")
    if not isinstance(rows, list) or not rows:
        raise PayloadError("dataframe_split.data", "a non-empty list of rows", rows)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise PayloadError(f"dataframe_split.data[{i}]", f"a list of {len(names)} values", row)
    return {name: list(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


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
